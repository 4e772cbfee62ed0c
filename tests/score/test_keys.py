"""Answer keys: a lab's CSV of figures, questions and answers; every bad row is named at
once and nothing is asked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from kanoa_desktop.core.score.extract import extract, judge
from kanoa_desktop.core.score.keys import MAX_BYTES, KeyError_, load_key


def _png(path: Path, colour=(200, 30, 30)) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def lab(tmp_path) -> Path:
    folder = tmp_path / "lab"
    _png(folder / "fig1.png")
    _png(folder / "plots" / "fig2.png", (20, 90, 200))
    return folder


def test_a_key_gives_items_with_files_relative_to_the_csv_and_per_row_tolerance(lab):
    key = lab / "key.csv"
    key.write_text(
        "File,Question,Answer,Tolerance\n"
        "fig1.png,What is the peak?,40,0.01\n"
        "plots/fig2.png,Which condition is highest?,Treated,\n"
        'fig1.png,"Is it rising, overall?",Yes,\n'
        "fig1.png,How many mice?,12,5%\n",
        encoding="utf-8",
    )
    k = load_key(key)
    assert [i.id for i in k.items] == ["row 2", "row 3", "row 4", "row 5"]
    peak, cond, rising, mice = k.items
    assert peak.path == lab / "fig1.png" and cond.path == lab / "plots" / "fig2.png"
    assert (peak.kind, peak.tolerance) == ("number", 0.01)
    assert (cond.kind, cond.tolerance) == ("label", 0.05)  # the default
    assert rising.choices == ("yes", "no") and rising.question == "Is it rising, overall?"
    assert mice.tolerance == pytest.approx(0.05)
    assert peak.axis_span is None and peak.template == "key"
    # The row's tolerance decides: 1 % of 40 is 0.4.
    assert judge(extract("ANSWER: 40.3", "number"), peak.truth, "number",
                 tolerance=peak.tolerance).correct  # fmt: skip
    assert not judge(extract("ANSWER: 40.5", "number"), peak.truth, "number",
                     tolerance=peak.tolerance).correct  # fmt: skip
    # The digest is the key's identity: a changed figure changes it.
    before = k.digest
    _png(lab / "fig1.png", (0, 0, 0))
    assert load_key(key).digest != before


def test_every_bad_row_is_named_at_once_and_nothing_is_asked(lab):
    key = lab / "key.csv"
    key.write_text(
        "file,question,answer,tolerance\n"
        "fig1.png,ok?,40,\n"
        "missing.png,Where?,1,\n"
        "fig1.png,Tol?,3,abc\n"
        "fig1.png,Too loose?,3,1.5\n"
        "fig1.png,,3,\n"
        "fig1.png,No answer?,,\n"
        "notes.txt,A text file?,1,\n"
        "plots.png,A folder?,1,\n"
        "fig1.png,Negative?,3,-0.1\n"
        "fig1.png,NaN?,3,nan\n",
        encoding="utf-8",
    )
    (lab / "notes.txt").write_text("x")
    (lab / "plots.png").mkdir()
    with pytest.raises(KeyError_) as caught:
        load_key(key)
    msg = caught.value.message
    assert "9 bad rows" in msg
    for needle in (
        "row 3: missing.png was not found",
        "row 4: tolerance 'abc' is not a number from 0 to 1",
        "row 5: tolerance '1.5'",
        "row 6: the question is empty",
        "row 7: the answer is empty",
        "row 8: notes.txt is not a figure",
        "row 9: plots.png is a folder, not a figure",
        "row 10: tolerance '-0.1'",
        "row 11: tolerance 'nan'",
    ):
        assert needle in msg, needle
    assert "nothing was asked" in caught.value.hint


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "is empty"),
        ("\n\n  \n", "is empty"),
        ("file,question,answer\n", "has a header but no questions"),
        ("fig1.png,What?,40\n", "has no file, question, answer column"),
        ("file,question\nfig1.png,What?\n", "has no answer column"),
    ],
)
def test_an_empty_key_or_one_without_its_columns_is_a_clear_error(lab, content, needle):
    key = lab / "key.csv"
    key.write_text(content, encoding="utf-8")
    with pytest.raises(KeyError_, match=needle):
        load_key(key)


def test_a_key_that_is_missing_binary_too_large_or_not_utf8_is_refused(lab):
    # Missing, a folder, too large: the sentences of every file the user chooses.
    with pytest.raises(KeyError_, match="nope.csv was not found"):
        load_key(lab / "nope.csv")
    with pytest.raises(KeyError_, match="plots is a folder, not an answer key"):
        load_key(lab / "plots")
    binary = lab / "bin.csv"
    binary.write_bytes(b"file,question,answer\n\x00\x01\x02")
    with pytest.raises(KeyError_, match="not a CSV"):
        load_key(binary)
    latin = lab / "latin.csv"
    latin.write_bytes("file,question,answer\nfig1.png,Température?,40\n".encode("latin-1"))
    with pytest.raises(KeyError_, match="not UTF-8"):
        load_key(latin)
    big = lab / "big.csv"
    with big.open("wb") as f:
        f.write(b"file,question,answer\n")
        f.seek(MAX_BYTES + 10)
        f.write(b"\n")
    with pytest.raises(KeyError_, match="more than the 4 MB limit for answer keys"):
        load_key(big)


def test_a_file_name_with_terminal_escapes_is_shown_escaped(lab):
    key = lab / "key.csv"
    key.write_text("file,question,answer\n\x1b[31mred.png,What?,1\n", encoding="utf-8")
    with pytest.raises(KeyError_) as caught:
        load_key(key)
    assert "\x1b" not in caught.value.message and "\\x1b[31mred.png" in caught.value.message
