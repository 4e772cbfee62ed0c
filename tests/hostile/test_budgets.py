"""Files budgeted by what they become, not by their size on disk.

Each hostile file is small on disk and huge once read the naive way (tests/hostile/files.py
writes them into this module's temp folder). Each is loaded in a fresh process
(``load_child.py``) whose own peak resident size (``VmHWM``) must stay under 500 MB, with
a sentence saying what was refused (or the right table) and nothing printed on stdout.
The rest checks the budgets' edges in process, with budgets lowered where a real file at
the limit would take long to write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kanoa_desktop.core.inputs import tables
from kanoa_desktop.core.inputs.notebook import NotebookTooLargeError, load_notebook
from kanoa_desktop.core.inputs.pdf import PdfPageError, open_pdf
from kanoa_desktop.core.inputs.tables import (
    TableParseError,
    TableTooLargeError,
    load_table,
)
from kanoa_desktop.core.safety import JsonTooLarge, json_items, loads_json_bounded
from tests.hostile import files as F

ROOT = Path(__file__).resolve().parents[2]
PEAK_MB = 500  # the ceiling for every case (a fresh Python with pandas is ~80 MB)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile-files")
    F.sparse_corner_xlsx(d / "corner.xlsx")
    F.diagonal_xlsx(d / "diagonal.xlsx")
    F.shared_strings_bomb_xlsx(d / "strings.xlsx")
    F.empty_objects_notebook(d / "empty-objects.ipynb")
    F.short_strings_notebook(d / "short-strings.ipynb")
    F.huge_strings_parquet(d / "long-text.parquet")
    F.corrupt_footer_parquet(d / "corrupt.parquet")
    F.many_pages_pdf(d / "big.pdf")
    return d


def run_child(kind: str, path: Path, *options: str) -> tuple[dict, str]:
    """The child's result and what it printed on stdout."""
    result = path.parent / f"{path.name}.{kind}.result.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), KANOA_CHILD_RESULT=str(result))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile.load_child", kind, str(path), *options],
        capture_output=True,
        text=True,
        timeout=300,  # generous: a runaway fails here instead of blocking the suite
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result.read_text()), proc.stdout


# case: (kind, file, options, expected error class or None, words the message holds)
CASES = {
    "a 1 KB workbook with one value in its last cell": (
        "table", "corner.xlsx", (), None, ""),
    "a diagonal sheet that is sparse": (
        "table", "diagonal.xlsx", (), "TableTooLargeError", "3,000 rows × 3,000 columns"),
    "shared strings that inflate to 480 MB": (
        "table", "strings.xlsx", (), "TableTooLargeError", "more than 1,000,000 shared strings"),
    "110 MB of empty JSON objects in a notebook": (
        "notebook", "empty-objects.ipynb", (), "NotebookTooLargeError", "JSON values"),
    "60 MB of short strings in a notebook": (
        "notebook", "short-strings.ipynb", (), "NotebookTooLargeError", "JSON values"),
    "Parquet holding a hundred 10 MB strings": (
        "table", "long-text.parquet", (), "TableTooLargeError", "1.0 GB of text"),
    "Parquet with a damaged footer": (
        "table", "corrupt.parquet", (), "TableParseError", "its footer"),
    # PDF pages go through the one input plan (core/inputs/plan.py): checked against the
    # real page count and the images a question carries before any page is rendered.
    "pages past a 50,000-page PDF's end": (
        "interpret", "big.pdf", ("pages=1-100000",), "PlanError",
        "big.pdf has 50,000 pages; there is no page 100,000"),
    "2,000 pages in one question": (
        "interpret", "big.pdf", ("pages=1-2000",), "PlanError",
        "These inputs make 2,000 images; one question takes at most 32"),
    "pages of a 50,000-page PDF past those offered": (
        "interpret", "big.pdf", ("pages=20000",), "PlanError",
        "big.pdf has 50,000 pages; only the first 5,000 can be used"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_file_ends_with_a_sentence_in_bounded_memory(hostile, case):
    kind, name, options, error, words = CASES[case]
    r, stdout = run_child(kind, hostile / name, *options)
    assert r["peak_mb"] < PEAK_MB, r
    assert stdout == "", stdout[:500]  # nothing a library printed reaches the terminal
    if error is None:
        assert r["outcome"] == "ok", r
    else:
        assert (r["outcome"], r["error"]) == ("error", error), r
        assert words in r["message"] and r["hint"], r
        assert "Traceback" not in r["message"]


def test_the_sparse_corner_workbook_is_the_one_cell_it_holds(hostile):
    r, _ = run_child("table", hostile / "corner.xlsx")
    assert (r["rows"], r["columns"]) == (1, 1), r  # never 16,384 columns × a million rows


# --------------------------------------------------------------------------- workbooks


def test_a_sheet_over_the_cell_budget_stops_at_the_budget(tmp_path, monkeypatch):
    path = F.many_cells_xlsx(tmp_path / "wide.xlsx", rows=300, cols=10)
    monkeypatch.setattr(tables, "MAX_XLSX_CELLS", 2_000)
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "holds more than 2,000 cells" in err.value.message
    assert "stopped at row 201" in err.value.message  # while reading, not after
    monkeypatch.setattr(tables, "MAX_XLSX_CELLS", 4_000)
    t = load_table(path)
    assert (t.rows, t.columns) == (300, 10) and t.frame["c0"].iloc[0] == 2.5


def test_only_the_first_rows_asked_for_count(tmp_path, monkeypatch):
    path = F.many_cells_xlsx(tmp_path / "long.xlsx", rows=300, cols=10)
    monkeypatch.setattr(tables, "MAX_XLSX_CELLS", 2_000)
    t = load_table(path, max_rows=50)
    assert t.rows == 50


def test_a_sheet_that_inflates_past_its_budget_stops_while_read(tmp_path, monkeypatch):
    path = F.many_cells_xlsx(tmp_path / "bulky.xlsx", rows=2000, cols=10)
    monkeypatch.setattr(tables, "MAX_XLSX_SHEET_BYTES", 200_000)
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "xl/worksheets/sheet1.xml inflates to more than 200.0 KB" in err.value.message


def test_a_zip_directory_understating_sizes_is_not_believed(tmp_path):
    # The directory claims 1 KB of shared strings; the data inflates to 48 MB.
    path = F.shared_strings_bomb_xlsx(tmp_path / "liar.xlsx", inflated_bytes=48_000_000)
    F.understated_zip(path, "xl/sharedStrings.xml", 1_000)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("xl/sharedStrings.xml").file_size == 1_000
    with pytest.raises((TableTooLargeError, TableParseError)) as err:
        load_table(path)
    assert "liar.xlsx" in err.value.message


def test_shared_strings_over_the_byte_budget_are_refused_before_parsing(tmp_path, monkeypatch):
    path = F.shared_strings_bomb_xlsx(tmp_path / "wordy.xlsx", inflated_bytes=3_000_000)
    monkeypatch.setattr(tables, "MAX_XLSX_PART_BYTES", 1_000_000)
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "shared strings inflates to more than 1.0 MB" in err.value.message


# --------------------------------------------------------------------------- Parquet


def _parquet(path: Path, rows: int, text: int = 10) -> Path:
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import fastparquet

    frame = pd.DataFrame({"x": range(rows), "s": ["t" * text] * rows})
    fastparquet.write(str(path), frame, row_group_offsets=max(rows // 4, 1))
    return path


def test_a_large_table_says_so_first(tmp_path, monkeypatch):
    path = _parquet(tmp_path / "big.parquet", 40_000)
    monkeypatch.setattr(tables, "LARGE_TABLE_BYTES", 100_000)
    t = load_table(path)
    assert t.rows == 40_000
    assert t.warnings and t.warnings[0].startswith("This is a large table: about")
    assert t.notes[0] == t.warnings[0]


def test_parquet_text_budget_counts_only_the_row_groups_read(tmp_path, monkeypatch):
    path = _parquet(tmp_path / "text.parquet", 4_000, text=100)  # 400 KB of text
    monkeypatch.setattr(tables, "MAX_PARQUET_TEXT_BYTES", 200_000)
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "of text (its footer says so)" in err.value.message
    assert load_table(path, max_rows=500).rows == 500  # one row group: within budget


# --------------------------------------------------------------------------- notebooks / JSON


def test_a_notebook_over_the_value_budget_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "metadata": {}, "cells": [{}] * 500}))
    monkeypatch.setattr("kanoa_desktop.core.inputs.notebook.MAX_NOTEBOOK_ITEMS", 100)
    with pytest.raises(NotebookTooLargeError) as err:
        load_notebook(path)
    assert "holds about 50" in err.value.message and "not read" in err.value.message


def count(v) -> int:
    """The values and keys ``v`` is made of."""
    if isinstance(v, dict):
        return 1 + sum(1 + count(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(count(x) for x in v)
    return 1


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        [[], {}, [[]]],
        {"a": 1, "b": [1, 2, {"c": None}]},
        ["a,b:c{[", 'quote " inside', "back\\slash", "\\", '\\"', "{}[]"],
        {"k,:{": "v", "\\": {"\\\\": ["\\\\\\", 3]}},
    ],
)
def test_json_items_is_exact_for_compact_json_and_a_bound_otherwise(value):
    compact = json.dumps(value, separators=(",", ":")).encode()
    assert json_items(compact, exact_above=0) == count(value)
    assert json_items(json.dumps(value, indent=2).encode(), exact_above=0) >= count(value)
    assert json_items(compact) >= count(value)  # the quick count: characters in strings too


def test_the_exact_count_reads_a_megabyte_at_a_time(monkeypatch):
    from kanoa_desktop.core import safety

    monkeypatch.setattr(safety, "_JSON_CHUNK", 5)  # chunks end inside strings and escapes
    value = {"a\\\"b,": ["x\\\\", "y,{[:", 1, {"z": "\\"}], "c": "\\\\\\\"q"}
    data = json.dumps(value, separators=(",", ":")).encode()
    exact = count(value)
    assert exact <= json_items(data, exact_above=0) <= exact + len(data) // 5


def test_loads_json_bounded_refuses_before_parsing():
    with pytest.raises(JsonTooLarge) as err:
        loads_json_bounded(b"[" + b"{}," * 100 + b"{}]", max_items=50)
    assert err.value.items == 102 and err.value.limit == 50
    # Commas inside strings do not count against the budget.
    assert loads_json_bounded(b'["' + b"," * 1000 + b'"]', max_items=3) == ["," * 1000]


# --------------------------------------------------------------------------- PDF pages


def test_a_page_too_thin_to_show_says_so_without_talking_of_rectangles(tmp_path):
    with open_pdf(F.thin_page_pdf(tmp_path / "thin.pdf")) as doc, pytest.raises(PdfPageError) as err:
        doc.take_page(0, long_side=512)
    assert err.value.message == "Page 1 of thin.pdf is 200 × 1 pt: too thin to show as a figure."
    assert "rectangle" not in err.value.hint


def test_interpret_on_the_command_line_says_the_page_problem_in_one_sentence(hostile):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "kanoa_desktop", "interpret", str(hostile / "big.pdf"),
         "--pages", "1-100000", "--no-history", "--api-base", "http://127.0.0.1:9/v1",
         "--model", "m"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "error: big.pdf has 50,000 pages; there is no page 100,000." in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_knowledge_base_skips_a_notebook_over_the_value_budget(tmp_path, monkeypatch):
    from kanoa_desktop.core.kb.readers import read_file

    path = F.empty_objects_notebook(tmp_path / "objects.ipynb", size_bytes=7_000_000)
    monkeypatch.setattr("kanoa_desktop.core.inputs.notebook.MAX_NOTEBOOK_ITEMS", 100_000)
    result = read_file(path)
    assert result.status == "skipped", result
    assert "JSON values, more than 100,000" in result.reason, result
