"""A Parquet float column shows with one number of decimals, as a CSV writer would have
written it (6.90, 7.00, 7.02), in the table view and in the summary sent to the model."""

from __future__ import annotations

import pandas as pd

from kanoa_desktop.core.inputs.tables import load_table, summarise_table


def _parquet(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "doubling.parquet"
    frame.to_parquet(path)
    return load_table(path)


def test_a_parquet_float_column_shows_even_decimals_in_the_view_and_summary(tmp_path, qtbot):
    from kanoa_desktop.ui.table_view import TableView

    table = _parquet(tmp_path, pd.DataFrame({
        "doubling_h": [6.9, 7.0, 7.02, None, 12.5],
        "count": [1, 2, 3, 4, 5],
        "tiny": [1e-9, 2e-9, 3e-9, 4e-9, 5e-9],  # beyond 6 decimals: shortest exact form
        "whole": [1.0, 2.0, 3.0, 4.0, 5.0],
    }))  # fmt: skip
    view = TableView()
    qtbot.addWidget(view)
    view.set_table(table)
    model = view.view.model()
    shown = [model.index(r, 0).data() for r in range(5)]
    assert shown == ["6.90", "7.00", "7.02", "", "12.50"]
    assert [model.index(r, 3).data() for r in range(2)] == ["1", "2"]
    assert model.index(0, 2).data() == "1e-09"
    summary = summarise_table(table)
    assert "| 6.90 |" in summary and "| 7.00 |" in summary and "| 7 |" not in summary
