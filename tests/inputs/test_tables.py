"""load_table, summarise_table and quick_plot on generated files."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kanoa_desktop.core.inputs.tables import (
    EmptyTableError,
    NotATableError,
    PlotError,
    TableError,
    TableNotFoundError,
    TableTooLargeError,
    load_table,
    quick_plot,
    summarise_table,
)
from kanoa_desktop.core.tokens import CHARS_PER_TOKEN, estimate_text_tokens


def test_utf8_comma_csv(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("name,value\nalpha,1.5\nbeta,2.5\n", encoding="utf-8")
    t = load_table(path)
    assert (t.delimiter, t.encoding, t.decimal) == (",", "UTF-8", ".")
    assert (t.rows, t.columns) == (2, 2)
    assert t.frame["value"].tolist() == [1.5, 2.5]


def test_utf8_bom_does_not_leak_into_first_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,temp\n1,20\n2,21\n".encode())
    t = load_table(path)
    assert t.encoding == "UTF-8 with BOM"
    assert list(t.frame.columns) == ["id", "temp"]


def test_latin1_with_accented_names(tmp_path):
    path = tmp_path / "l1.csv"
    path.write_bytes("station,température\nZürich,12.5\nGenève,14.0\n".encode("latin-1"))
    t = load_table(path)
    assert "Latin-1" in t.encoding
    assert list(t.frame.columns) == ["station", "température"]
    assert t.frame["station"].tolist() == ["Zürich", "Genève"]


def test_latin1_after_a_long_utf8_looking_start_falls_back(tmp_path):
    # The 64 KiB sample is plain ASCII; the first non-UTF-8 byte is far beyond it.
    body = "".join(f"row{i},{i}\n" for i in range(20000))
    path = tmp_path / "late.csv"
    path.write_bytes(("name,n\n" + body + "Möller,1\n").encode("latin-1"))
    t = load_table(path)
    assert t.frame["name"].iloc[-1] == "Möller"
    assert any("not UTF-8 throughout" in n for n in t.notes)


def test_semicolon_with_comma_decimals(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Datum;Messwert;Anzahl\n2024-01-01;1,5;3\n2024-01-02;-2,25;4\n", "utf-8")
    t = load_table(path)
    assert (t.delimiter, t.decimal) == (";", ",")
    assert t.frame["Messwert"].tolist() == [1.5, -2.25]
    assert t.frame["Anzahl"].tolist() == [3, 4]


def test_semicolon_with_dot_decimals_keeps_dot(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b\n1.5;2\n3.5;4\n", "utf-8")
    t = load_table(path)
    assert (t.delimiter, t.decimal) == (";", ".")
    assert t.frame["a"].tolist() == [1.5, 3.5]


def test_tsv_by_extension_and_by_sniffing(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("x\ty\n1\t2\n3\t4\n")
    assert load_table(tsv).delimiter == "\t"
    txt = tmp_path / "d.txt"
    txt.write_text("x\ty, with comma\n1\t2\n3\t4\n")
    t = load_table(txt)
    assert t.delimiter == "\t" and list(t.frame.columns) == ["x", "y, with comma"]


def test_pipe_delimited(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a|b|c\n1|2|3\n")
    assert load_table(path).delimiter == "|"


def test_quoted_commas_do_not_fool_delimiter_detection(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('name;note\n"Smith, J.";"a, b, c"\n"Doe, A.";"d, e"\n')
    t = load_table(path)
    assert t.delimiter == ";"
    assert t.frame["name"].tolist() == ["Smith, J.", "Doe, A."]


def test_too_large_file_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: takes no disk space, reads as zeros
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "huge.csv" in err.value.message and "2.1 GB" in err.value.message
    assert err.value.hint


def test_too_large_file_with_max_rows_reads_a_preview(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(1000)))
    t = load_table(path, max_bytes=100, max_rows=10)
    assert t.rows == 10
    assert any("only the first 10 rows" in n for n in t.notes)


def test_binary_file_is_not_a_table(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00stuff" * 10)
    with pytest.raises(NotATableError) as err:
        load_table(path)
    assert "data.csv" in err.value.message


def test_empty_and_blank_files(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(EmptyTableError):
        load_table(empty)
    blank = tmp_path / "b.csv"
    blank.write_text("\n\n  \n")
    with pytest.raises(EmptyTableError):
        load_table(blank)


def test_header_only_loads_zero_rows_with_note(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b,c\n")
    t = load_table(path)
    assert (t.rows, t.columns) == (0, 3)
    assert any("no data rows" in n for n in t.notes)
    assert "0 rows" in summarise_table(t)


def test_ragged_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6,7\n8,9\n10,11,12\n")
    t = load_table(path)
    assert t.rows == 3  # the short row is padded with NaN, the long one skipped
    assert any("1 row(s) with more fields" in n for n in t.notes)


def test_missing_file_is_typed(tmp_path):
    with pytest.raises(TableNotFoundError) as err:
        load_table(tmp_path / "nope.csv")
    assert isinstance(err.value, TableError) and "nope.csv" in err.value.message


# --------------------------------------------------------------------------- summary


def _wide(rows: int = 300, cols: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(rows, cols)),
                         columns=[f"measurement_channel_{i:03d}" for i in range(cols)])
    frame["label"] = [f"sample text number {i}" for i in range(rows)]
    frame.iloc[::10, 3] = np.nan
    return frame


@pytest.mark.parametrize("budget", [20, 100, 300, 800, 1500, 4000])
def test_summary_never_exceeds_budget_on_wide_table(budget):
    text = summarise_table(_wide(), token_budget=budget, name="wide.csv")
    assert len(text) <= budget * CHARS_PER_TOKEN
    assert estimate_text_tokens(text) <= budget


@pytest.mark.parametrize("budget", [20, 150, 600])
def test_a_table_of_cjk_text_stays_within_the_budget_estimate(budget):
    # Each CJK character is a token in the estimate: a character count would overrun it.
    # (A cut at 3 characters per token gave 168 and 1,114 for budgets of 150 and 600.)
    place = "東京都千代田区観測所" * 3
    frame = pd.DataFrame({f"観測地点の名前{j}": [place[: 18 + j]] * 400 for j in range(6)})
    text = summarise_table(frame, token_budget=budget, name="観測.csv")
    assert estimate_text_tokens(text) <= budget
    assert "観測" in text


def test_summary_says_when_columns_are_hidden():
    text = summarise_table(_wide(), token_budget=1500)
    assert "201 columns" in text
    assert "Only the first" in text


def test_summary_sections_and_missing_counts():
    frame = pd.DataFrame({"t": np.arange(100.0), "v": np.where(np.arange(100) % 4, 1.0, np.nan)})
    text = summarise_table(frame, token_budget=3000, name="s.csv")
    for heading in ("## Table s.csv", "### Columns", "describe", "### First 5 rows",
                    "### Last 5 rows", "evenly spaced rows"):
        assert heading in text
    assert "- v: float64, missing 25 (25.0 %)" in text
    assert "| 99 |" in text  # the tail reaches the last row


def test_summary_is_deterministic():
    frame = _wide(1000, 12)
    assert summarise_table(frame, token_budget=700) == summarise_table(frame, token_budget=700)


def test_bigger_budget_shows_more():
    frame = _wide(1000, 30)
    assert len(summarise_table(frame, token_budget=4000)) > len(
        summarise_table(frame, token_budget=500))


# --------------------------------------------------------------------------- plots


def _png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("kind", ["line", "scatter", "hist"])
def test_quick_plot_returns_decodable_png_of_requested_size(kind):
    frame = pd.DataFrame({"x": np.arange(500.0), "y": np.sin(np.arange(500) / 20)})
    im = _png(quick_plot(frame, "x", "y", kind, width_px=600, height_px=400, dpi=100))
    assert im.format == "PNG" and im.size == (600, 400)
    # Something was drawn: not a blank page.
    assert len(np.unique(np.asarray(im.convert("L")))) > 2


def test_quick_plot_line_of_a_million_points_keeps_a_spike():
    y = np.zeros(1_000_000)
    y[654_321] = 100.0
    plain = _png(quick_plot(pd.DataFrame({"y": y}), None, "y", "line", width_px=400,
                            height_px=300))
    flat = _png(quick_plot(pd.DataFrame({"y": np.zeros(1_000_000)}), None, "y", "line",
                           width_px=400, height_px=300))
    assert plain.tobytes() != flat.tobytes()


def test_quick_plot_rejects_text_and_unknown_columns():
    frame = pd.DataFrame({"x": [1, 2], "name": ["a", "b"]})
    with pytest.raises(PlotError):
        quick_plot(frame, "x", "name", "line")
    with pytest.raises(PlotError):
        quick_plot(frame, "x", "nope", "scatter")
    with pytest.raises(PlotError):
        quick_plot(frame, "x", "x", "pie")
