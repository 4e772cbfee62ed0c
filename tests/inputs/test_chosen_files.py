"""Every kind of file reads the same when it is missing, a folder or unreadable
(core/inputs/chosen.py): one sentence, the loader's own error class, never a traceback."""

from __future__ import annotations

import os

import pytest

from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.inputs.load import load_input

NAMES = ["plot.png", "data.csv", "paper.pdf", "analysis.ipynb", "book.xlsx"]


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_file_says_so(tmp_path, name):
    with pytest.raises(KanoaError) as err:
        load_input(tmp_path / name)
    assert err.value.message == f"{name} was not found."
    assert "still exists" in err.value.hint


@pytest.mark.parametrize("name", NAMES)
def test_a_folder_is_not_a_file(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(KanoaError) as err:
        load_input(tmp_path / name)
    assert err.value.message.startswith(f"{name} is a folder, not a")
    assert err.value.hint == "Choose a file."


@pytest.mark.parametrize("name", NAMES)
def test_an_unreadable_file_says_why(tmp_path, name):
    """A link that points to itself: stat fails with ELOOP, for root too (permissions
    would not stop root, who runs CI)."""
    path = tmp_path / name
    os.symlink(path, path)
    with pytest.raises(KanoaError) as err:
        load_input(path)
    assert err.value.message == f"{name} cannot be read (Too many levels of symbolic links)."
    assert "permissions" in err.value.hint


@pytest.mark.parametrize("name", ["plot.png", "analysis.ipynb"])
def test_a_file_over_its_limit_is_not_read(tmp_path, name, monkeypatch):
    from kanoa_desktop.core.inputs import figures, notebook

    monkeypatch.setattr(figures, "MAX_FILE_BYTES", 1_000_000)
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 1_000_000)
    path = tmp_path / name
    with path.open("wb") as fh:
        fh.truncate(3_000_000)  # sparse: the size is what is checked, before reading
    with pytest.raises(KanoaError) as err:
        load_input(path)
    assert err.value.message == f"{name} is 3 MB, more than the 1 MB limit for " + (
        "figures." if name.endswith("png") else "notebooks."
    )
