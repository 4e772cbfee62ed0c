"""Loading a table never widens the window: long column and file names do not raise the
table's minimum width (they grew the window to 1,386 px)."""

from __future__ import annotations

import pandas as pd

from kanoa_desktop.ui.table_view import TableView


def test_long_column_and_file_names_do_not_raise_the_minimum_width(qtbot):
    view = TableView()
    qtbot.addWidget(view)
    # (No size query before the table loads: a combo measures its items when first shown.)
    long = "temperature_of_the_incubator_in_degrees_celsius_measured_hourly"
    frame = pd.DataFrame({long: [37.0, 37.1], long + "_again": [1.0, 2.0], "od600": [0.1, 0.2]})
    view.set_table(frame, name="growth_curve_of_e_coli_k12_batch_culture_in_lb_medium_2026.csv")
    view.show()
    assert view.minimumSizeHint().width() <= 460
    # The names are still there to pick from.
    assert view.y_combo.findText(long) >= 0
