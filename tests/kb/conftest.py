from __future__ import annotations

import pytest

from kanoa_desktop.core.kb.index import KnowledgeBase


@pytest.fixture(autouse=True)
def _kb_home(tmp_path, monkeypatch):
    # Never touch the developer's real data dir, whatever the top-level conftest does.
    monkeypatch.setenv("KANOA_DESKTOP_HOME", str(tmp_path / "home"))


@pytest.fixture
def make_kb(tmp_path):
    made: list[KnowledgeBase] = []

    def make(*folders, **kwargs) -> KnowledgeBase:
        kb = KnowledgeBase(list(folders), **kwargs)
        made.append(kb)
        return kb

    yield make
    for kb in made:
        kb.close()
