"""Tables from where they live: Excel sheets, Parquet, dates, numbers as written, the one
CSV sniffer shared with the knowledge base."""

from __future__ import annotations

import datetime as dt
import io
import warnings
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
from PIL import Image

from kanoa_desktop.core.inputs import delimited
from kanoa_desktop.core.inputs.tables import (
    EmptyTableError,
    NotATableError,
    TableError,
    TableParseError,
    TableTooLargeError,
    format_value,
    list_sheets,
    load_table,
    quick_plot,
    summarise_table,
)
from kanoa_desktop.core.kb.readers import read_file


def _workbook(path, sheets: dict[str, list[list]], formats: dict[str, str] | None = None):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
        for col, fmt in (formats or {}).items():
            for cell in ws[col][1:]:
                cell.number_format = fmt
    wb.save(path)
    return path


# --------------------------------------------------------------------------- numbers as written


def test_trailing_zeros_are_kept_for_display_and_summary(tmp_path):
    path = tmp_path / "temps.csv"
    path.write_text("id,temp,ratio\n1,37.00,1.5\n2,37.50,2.25\n3,38.10,0.001\n")
    t = load_table(path)
    assert t.frame["temp"].tolist() == [37.0, 37.5, 38.1]  # still numbers
    assert [t.format_cell(1, v) for v in t.frame["temp"]] == ["37.00", "37.50", "38.10"]
    # Mixed decimals keep their shortest exact form, never a rounded one.
    assert [t.format_cell(2, v) for v in t.frame["ratio"]] == ["1.5", "2.25", "0.001"]
    assert "| 37.00 |" in summarise_table(t)


def test_decimal_comma_is_shown_as_written(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Ort;Wert\nA;1,50\nB;2,00\n", "utf-8")
    t = load_table(path)
    assert t.frame["Wert"].tolist() == [1.5, 2.0]
    assert [t.format_cell(1, v) for v in t.frame["Wert"]] == ["1,50", "2,00"]


def test_shortest_form_never_drops_digits():
    assert format_value(123456.789) == "123456.789"  # %.6g would show 123457
    assert format_value(float("nan")) == ""
    assert format_value(np.float64(1e-9)) == "1e-09"
    assert format_value(np.int64(7)) == "7"


# --------------------------------------------------------------------------- dates


def test_iso_datetimes_become_a_time_axis(tmp_path):
    path = tmp_path / "log.csv"
    rows = "".join(f"2024-03-01 {h:02d}:00,{20 + h}\n" for h in range(24))
    path.write_text("when,temp\n" + rows)
    t = load_table(path)
    assert pd.api.types.is_datetime64_any_dtype(t.frame["when"])
    assert t.frame["when"].iloc[5] == pd.Timestamp("2024-03-01 05:00")
    assert t.format_cell(0, t.frame["when"].iloc[5]) == "2024-03-01 05:00:00"
    assert any("Read as dates" in n and "when" in n for n in t.notes)
    png = quick_plot(t, "when", "temp", "line", width_px=500, height_px=300)
    assert Image.open(io.BytesIO(png)).size == (500, 300)


def test_day_first_dates_are_recognised_from_a_day_over_twelve(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("date;value\n03/04/2024;1\n13/04/2024;2\n")
    t = load_table(path)
    assert t.frame["date"].tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-04-13")]
    assert t.format_cell(0, t.frame["date"].iloc[1]) == "2024-04-13"


def test_time_of_day_column_is_parsed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("t,v\n12:30:05,1\n12:45:10,2\n")
    t = load_table(path)
    assert pd.api.types.is_datetime64_any_dtype(t.frame["t"])
    assert t.format_cell(0, t.frame["t"].iloc[1]) == "12:45:10"


def test_numbers_and_words_are_not_taken_for_dates(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("code,name\n2024,alpha\n1999,beta\n")
    t = load_table(path)
    assert not pd.api.types.is_datetime64_any_dtype(t.frame["code"])
    assert t.frame["name"].tolist() == ["alpha", "beta"]
    assert not any("dates" in n for n in t.notes)


# --------------------------------------------------------------------------- ragged rows


def test_skipped_rows_are_counted_with_their_line_numbers(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n11,12,13,14,15\n")
    t = load_table(path)
    assert t.frame["a"].tolist() == [1, 8]
    note = next(n for n in t.notes if "skipped" in n)
    assert note.startswith("2 row(s) with more fields") and "lines 3, 5" in note


# --------------------------------------------------------------------------- Excel


def test_xlsx_first_sheet_with_data_and_number_formats(tmp_path):
    path = _workbook(
        tmp_path / "w.xlsx",
        {
            "Notes": [],
            "Data": [["day", "temp", "site"]]
            + [[dt.datetime(2024, 1, 1 + i), 37 + i / 4, f"s{i}"] for i in range(4)],
        },
        {"B": "0.00"},
    )
    assert list_sheets(path) == ["Notes", "Data"]
    t = load_table(path)
    assert (t.kind, t.sheet, t.sheets) == ("excel", "Data", ("Notes", "Data"))
    assert t.frame["temp"].tolist() == [37.0, 37.25, 37.5, 37.75]
    assert t.format_cell(1, t.frame["temp"].iloc[0]) == "37.00"
    assert pd.api.types.is_datetime64_any_dtype(t.frame["day"])
    assert t.format_cell(0, t.frame["day"].iloc[2]) == "2024-01-03"
    assert any("'Data' is shown" in n for n in t.notes)
    assert t.name == "w.xlsx [Data]" and "sheet 'Data'" in t.source_label


def test_xlsx_sheet_by_name_and_unknown_sheet(tmp_path):
    path = _workbook(tmp_path / "w.xlsx", {"A": [["x"], [1]], "B": [["y", "z"], [2, 3], [4, 5]]})
    t = load_table(path, sheet="B")
    assert list(t.frame.columns) == ["y", "z"] and t.rows == 2
    with pytest.raises(TableError) as err:
        load_table(path, sheet="C")
    assert "no sheet named 'C'" in err.value.message and "A, B" in err.value.hint


def test_workbook_with_no_data_is_a_clear_error(tmp_path):
    path = _workbook(tmp_path / "empty.xlsx", {"One": [], "Two": []})
    with pytest.raises(EmptyTableError) as err:
        load_table(path)
    assert "empty.xlsx has no data" in err.value.message and "every sheet is empty" in (
        err.value.message
    )
    with pytest.raises(EmptyTableError) as err:
        load_table(path, sheet="Two")
    assert "Sheet 'Two'" in err.value.message and "One" in err.value.hint


def test_damaged_encrypted_and_mislabelled_workbooks(tmp_path):
    good = _workbook(tmp_path / "g.xlsx", {"S": [["a"], [1]]})
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(good.read_bytes()[:300])
    with pytest.raises(TableParseError) as err:
        load_table(damaged)
    assert "damaged.xlsx" in err.value.message
    ole = tmp_path / "secret.xlsx"  # password-protected OOXML is an OLE container
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(NotATableError) as err:
        load_table(ole)
    assert "encrypted" in err.value.message
    text = tmp_path / "text.xlsx"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(NotATableError) as err:
        load_table(text)
    assert "not an Excel workbook" in err.value.message


def test_workbook_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", b"0" * 5_000_000)
    monkeypatch.setattr("kanoa_desktop.core.inputs.tables.MAX_XLSX_UNCOMPRESSED", 1_000_000)
    with pytest.raises(TableTooLargeError) as err:
        load_table(path)
    assert "expands to 5.0 MB" in err.value.message


# --------------------------------------------------------------------------- Parquet


def test_parquet_round_trip_with_datetimes(tmp_path):
    frame = pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=50, freq="min"),
            "v": np.linspace(0, 1, 50),
            "s": [f"r{i}" for i in range(50)],
        }
    )
    path = tmp_path / "p.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fastparquet reads a pandas-3-deprecated option
        import fastparquet
    fastparquet.write(str(path), frame)
    t = load_table(path)
    assert t.kind == "parquet" and (t.rows, t.columns) == (50, 3)
    assert t.frame["v"].iloc[-1] == 1.0 and t.frame["s"].iloc[3] == "r3"
    assert t.format_cell(0, t.frame["t"].iloc[1]) == "2024-01-01 00:01:00"
    assert load_table(path, max_rows=10).rows == 10


def test_damaged_parquet_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1" + b"\x07" * 100 + b"PAR1")
    with pytest.raises(TableParseError) as err:
        load_table(path)
    assert "bad.parquet" in err.value.message
    text = tmp_path / "text.parquet"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(NotATableError):
        load_table(text)


# --------------------------------------------------------------------------- one sniffer


def test_utf16_without_bom_is_text_for_tables_and_the_index(tmp_path):
    body = "species,count\nÄsche,3\nforelle,5\n"
    for codec in ("utf-16", "utf-16-le"):  # with and without a BOM
        path = tmp_path / f"{codec}.csv"
        path.write_bytes(body.encode(codec))
        t = load_table(path)
        assert t.encoding == "UTF-16" and t.frame["species"].tolist() == ["Äsche", "forelle"]
        result = read_file(path)
        assert result.status == "indexed", result.reason
        assert "species, count" in result.segments[0].text
        assert "Äsche" in result.segments[0].text


def test_the_index_uses_the_table_sniffer_for_semicolons(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("Ort;Wert\nBern;1,5\nBasel;2,5\n")
    seg = read_file(path).segments[0].text
    assert "2 columns" in seg and "Columns: Ort, Wert" in seg


def test_sniffer_reports_binary_and_delimiters():
    assert delimited.sniff(b"\x89PNG\r\n\x1a\n\x00\x00", complete=True).binary
    d = delimited.sniff(b"a\tb\n1\t2\n", suffix=".tsv", complete=True)
    assert (d.delimiter, d.decimal, d.binary) == ("\t", ".", False)
    assert delimited.sniff(b"a;b\n1,5;2,5\n", complete=True).decimal == ","


def test_missing_values_do_not_hide_a_columns_decimals(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("id,od\n1,0.250\n2,NA\n3,\n4,1.500\n")
    t = load_table(path)
    assert [t.format_cell(1, v) for v in t.frame["od"]] == ["0.250", "", "", "1.500"]


def test_warnings_are_the_notes_that_say_data_was_lost(tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_text("when,v\n2024-01-01,1.0\n2024-01-02,2.0\n")
    t = load_table(clean)
    assert t.notes and t.warnings == []  # "read as dates" is not a warning
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    t = load_table(ragged)
    assert len(t.warnings) == 1 and "skipped" in t.warnings[0] and t.warnings[0] in t.notes
    big = tmp_path / "big.csv"
    big.write_text("a\n" + "1\n" * 100)
    t = load_table(big, max_bytes=10, max_rows=5)
    assert any("only the first 5 rows" in w for w in t.warnings)
