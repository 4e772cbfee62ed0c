"""Clear messages where a traceback or a wrong sentence used to be (command line, batch
templates)."""

from __future__ import annotations

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.batch.runner import BatchError, Template


def test_batch_state_under_a_file_names_the_file_in_the_way(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    figure = tmp_path / "a.png"
    figure.write_bytes(b"")
    for state in (blocker / "state.sqlite3", blocker / "deeper" / "state.sqlite3"):
        status = run_cli(["batch", str(figure), "--state", str(state)])
        err = capsys.readouterr().err
        assert status == 1 and "Traceback" not in err
        assert f"error: Cannot keep the batch's progress in {state}: {blocker} is a file" in err
        assert "hint: Give --state a file inside a folder" in err


@pytest.mark.parametrize(
    ("template", "written", "field"),
    [("{name:>999}", "{name:>999}", "{name}"), ("Run {stem!r}", "{stem!r}", "{stem}")],
)
def test_a_format_after_a_field_is_what_is_refused(template, written, field):
    with pytest.raises(BatchError) as err:
        Template(question=template).check()
    message = err.value.message
    assert f"writes {written}: {field} is a field" in message and "not a field" not in message
    assert f"Write the field alone, {field}" in err.value.hint


def test_an_unknown_field_is_still_named_as_not_a_field():
    with pytest.raises(BatchError) as err:
        Template(context="{title}").check()
    assert "uses {title}, which is not a field" in err.value.message
