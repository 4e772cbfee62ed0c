"""``kanoa_desktop.core.kb`` loads its names on first use (issue 18): the window's sources
list imports ``core.kb.modes`` at start-up without loading the index and its readers."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_a_light_submodule_does_not_load_the_index():
    code = ("import sys, kanoa_desktop.core.kb.modes, kanoa_desktop.ui.sources_view\n"
            "print(sorted(m for m in sys.modules if m.startswith('kanoa_desktop.core.kb')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""})  # fmt: skip
    assert out.stdout.strip() == "['kanoa_desktop.core.kb', 'kanoa_desktop.core.kb.modes']"


def test_the_package_names_still_resolve():
    import kanoa_desktop.core.kb as kb
    from kanoa_desktop.core.kb import NO_PASSAGE_NOTICE, KnowledgeBase, ground, token_budget
    from kanoa_desktop.core.kb.index import KnowledgeBase as direct
    from kanoa_desktop.core.kb.retrieval import NO_PASSAGE_NOTICE as notice

    assert KnowledgeBase is direct and NO_PASSAGE_NOTICE == notice
    assert callable(ground) and callable(token_budget)
    assert set(kb.__all__) <= set(dir(kb))
    with pytest.raises(AttributeError):
        kb.no_such_name  # noqa: B018
