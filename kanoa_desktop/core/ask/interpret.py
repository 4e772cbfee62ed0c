"""Quick plots of a table, prepared like any figure (a table's summary: core.inputs.plan).

``load_input`` (from :mod:`kanoa_desktop.core.inputs.load`) is CPU work (decoding images,
parsing tables, opening PDFs): run it off the GUI thread. What the next question sends is
the conversation's :class:`~kanoa_desktop.core.ask.outbox.Outbox`.
"""

from __future__ import annotations

from kanoa_desktop.core.inputs.figures import PreparedFigure, prepare_figure

# Routing and loading live with the inputs (figures, tables, PDFs, notebooks); these names
# stay importable from here for the window and the command line.
from kanoa_desktop.core.inputs.load import TABLE_SUFFIXES, input_kind, load_input  # noqa: F401
from kanoa_desktop.core.inputs.tables import LoadedTable, quick_plot


def plot_table(
    table: LoadedTable, x: str | None, y: str | None, kind: str, *, long_side: int
) -> PreparedFigure:
    """Draw a quick plot of a table and prepare it like any dropped figure."""
    png = quick_plot(table, x, y, kind)
    return prepare_figure(png, long_side=long_side, name=f"{table.name} ({kind} of {y or x})")
