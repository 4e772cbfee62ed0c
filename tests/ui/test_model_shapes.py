"""Every model, view and header of the window survives any sequence of shapes (issue 25).

The property test runs tests/ui/model_shapes.py in a child process (a native crash
fails the test instead of killing pytest) with a fixed seed and a bounded number of
sequences; ``make soak`` runs the same driver long with a random seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 25
EXAMPLES = 25  # per surface: about 30-60 s in all on a loaded 2-core machine


def _child(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _verdict(out: subprocess.CompletedProcess) -> str:
    # A native crash's stderr ends with the steps that led to it and faulthandler's stack.
    return (
        f"exit {out.returncode}\n{out.stdout[-3000:]}\n--- stderr (end) ---\n{out.stderr[-6000:]}"
    )


def test_every_model_view_and_header_survives_random_sequences_of_shapes():
    out = _child(["-m", "tests.ui.model_shapes", "--seed", str(SEED), "--examples", str(EXAMPLES)])
    assert out.returncode == 0, _verdict(out)
    for surface in ("table", "history", "lists"):
        assert f"{surface}: " in out.stdout and "steps held" in out.stdout, _verdict(out)
    assert "all surfaces held" in out.stdout


_MID_RESET = textwrap.dedent(
    """
    import faulthandler; faulthandler.enable()
    import numpy as np, pandas as pd
    from PySide6.QtWidgets import QApplication
    from kanoa_desktop.ui import qt_guard
    from kanoa_desktop.ui.table_view import TableView

    app = QApplication([])
    view = TableView()
    view.resize(900, 600)
    view.show()
    seen = []
    vh, hh = view.view.verticalHeader(), view.view.horizontalHeader()
    # What the table view does when the horizontal header's count changes mid-reset.
    hh.sectionCountChanged.connect(
        lambda *_: seen.append((vh.count(), view.model.rowCount(), vh.sizeHint().width()))
    )
    for rows, cols in ((100_000, 7), (30, 60), (100_000, 2), (0, 5), (7, 0), (1, 1)):
        frame = pd.DataFrame(np.arange(rows * cols, dtype=float).reshape(rows, cols))
        view.set_table(frame, f"{rows} x {cols}")
        app.processEvents()
        assert vh.count() == rows and hh.count() == cols
    print("mid-reset", seen[1], flush=True)
    print("caught", len(qt_guard.caught()), flush=True)
    """
)


def test_a_30_by_60_table_after_a_100000_by_7_one_opens():
    """The issue's sequence: while the model resets, the row header still counts 100,000
    rows and the model 30; the header is asked its size then and must not read beyond."""
    out = _child(["-c", _MID_RESET], timeout=300)
    assert out.returncode == 0, _verdict(out)
    assert "mid-reset (100000, 30, " in out.stdout  # the state that crashed was reached
    assert "caught 0" in out.stdout


def test_the_model_answers_any_row_and_column_even_outside_the_table(qapp):
    import numpy as np
    import pandas as pd
    from PySide6.QtCore import QModelIndex, Qt

    from kanoa_desktop.ui.table_view import DataFrameModel

    model = DataFrameModel(pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]}))
    inside = model.index(1, 0)
    assert model.data(inside) == ""
    assert model.data(model.index(0, 1)) == "x"
    outside = model.createIndex(10**6, 5)  # an index a stale view could still hold
    assert model.data(outside) is None
    assert model.data(QModelIndex()) is None
    assert model.data(outside, Qt.ItemDataRole.TextAlignmentRole) is None
    assert model.headerData(10**6, Qt.Orientation.Vertical) is None
    assert model.headerData(-1, Qt.Orientation.Horizontal) is None
    assert model.row_label(10**6) == ""
    assert model.column_texts(9, 5) == []


def test_a_cell_no_formatter_can_read_shows_as_text_and_is_reported(qapp):
    import pandas as pd

    from kanoa_desktop.ui import qt_guard
    from kanoa_desktop.ui.table_view import DataFrameModel

    class Odd:
        def __str__(self) -> str:
            return "odd\nvalue"

    def refuse(value: object) -> str:
        raise ValueError("no")

    model = DataFrameModel()
    model.set_frame(pd.DataFrame({"a": [Odd()]}), [refuse])
    assert model.data(model.index(0, 0)) == "odd value"  # one line, not a blank table
    assert [where for where, _ in qt_guard.caught()] == ["DataFrameModel cell formatter"]
    qt_guard.clear()
