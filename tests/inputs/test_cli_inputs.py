"""What `kanoa-desktop interpret` takes from tables, workbooks and notebooks (no server)."""

from __future__ import annotations

import argparse
import base64
import io
import json

import openpyxl
from PIL import Image

from kanoa_desktop.cli import interpret as cli
from kanoa_desktop.core.config.profiles import Profile


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["interpret", *argv])


def test_sheet_option_picks_the_workbook_sheet(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "First"
    wb.active.append(["a"])
    wb.active.append([1])
    other = wb.create_sheet("Runs")
    other.append(["run", "od"])
    other.append([1, 0.5])
    wb.save(tmp_path / "book.xlsx")
    inputs = cli.load_inputs(_args(str(tmp_path / "book.xlsx"), "--sheet", "Runs"), Profile())
    assert inputs.table.sheet == "Runs" and list(inputs.table.frame.columns) == ["run", "od"]
    assert "od" in inputs.table_summary


def test_skipped_rows_are_told_on_stderr(tmp_path, capsys):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    inputs = cli.load_inputs(_args(str(path)), Profile())
    assert inputs.table.rows == 2
    err = capsys.readouterr().err
    assert "warning: ragged.csv: 1 row(s) with more fields than the header were skipped" in err


def test_notebook_figures_go_with_their_cells_code(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, "PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    cell = {
        "cell_type": "code",
        "source": "ax.plot(t, od600)",
        "outputs": [{"output_type": "display_data", "data": {"image/png": png}}],
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps({"nbformat": 4, "metadata": {}, "cells": [cell]}))
    inputs = cli.load_inputs(
        _args(str(tmp_path / "nb.ipynb"), "--context", "growth curves"), Profile()
    )
    assert [f.sent_size for f in inputs.figures] == [(40, 30)]
    # The cell's code goes with the figure, after the context given.
    text = inputs.message("", inputs.pending())["content"][-1]["text"]
    assert "Context: growth curves\n\nThe figure was drawn by cell 1" in text
    assert "ax.plot(t, od600)" in text
