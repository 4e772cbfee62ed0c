"""Light, dark, follow the system, font size; plots restyled with the scheme."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette

from kanoa_desktop.ui import theme


@pytest.fixture
def app(qapp):
    yield qapp
    theme.apply_appearance(qapp, "light", None)  # leave the shared app as other tests expect


def _window_lightness(app) -> int:
    return app.palette().color(QPalette.ColorRole.Window).lightness()


def test_dark_and_light_palettes_and_the_font_size_of_the_answers_only(app, qtbot):
    from PySide6.QtWidgets import QLabel

    from kanoa_desktop.ui.answer_view import AnswerView

    answer, label = AnswerView(), QLabel("Drop a figure")
    qtbot.addWidget(answer)
    qtbot.addWidget(label)
    default = app.font().pointSizeF()
    assert theme.apply_appearance(app, "dark", 15) == "dark"
    assert _window_lightness(app) < 80
    assert app.palette().color(QPalette.ColorRole.Text).lightness() > 180
    assert answer.font().pointSizeF() == 15
    assert answer.document().defaultFont().pointSizeF() == 15
    assert app.font().pointSizeF() == default and label.font().pointSizeF() == default
    assert theme.apply_appearance(app, "light", None) == "light"
    assert _window_lightness(app) > 200
    # "System default" gives the answer the app's font back exactly, not a copy at a size.
    assert answer.font() == app.font() and answer.font().resolveMask() == 0
    later = AnswerView()  # made after a change: takes the size at once
    qtbot.addWidget(later)
    theme.apply_appearance(app, "light", 13)
    assert later.font().pointSizeF() == 13 and answer.font().pointSizeF() == 13


def test_system_follows_the_desktop_scheme_only_while_chosen(app):
    theme.apply_appearance(app, "system", None)
    # The desktop switches to dark: what colorSchemeChanged reports (the offscreen
    # platform has no desktop to switch; the Xvfb test checks real screenshots).
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert theme.current_scheme() == "dark" and _window_lightness(app) < 80
    # With an explicit choice, the desktop's changes are ignored.
    theme.apply_appearance(app, "light", None)
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert theme.current_scheme() == "light" and _window_lightness(app) > 200


def test_unknown_theme_names_count_as_system(app):
    app.styleHints().unsetColorScheme()
    assert theme.apply_appearance(app, "solarized", None) == theme.system_scheme()
    assert theme._STATE.theme == "system"


def test_existing_plots_take_the_scheme_colours(app, qtbot):
    import pyqtgraph as pg

    plot = pg.PlotWidget(background=None)
    qtbot.addWidget(plot)
    plot.getPlotItem().setTitle("KV cache (%)", size="8pt")
    curve = plot.plot([0, 1], [0, 1], pen=pg.mkPen("#1565c0"))
    region = pg.LinearRegionItem(values=(0, 1), movable=False)
    plot.addItem(region)
    assert theme.apply_appearance(app, "dark", None) == "dark"
    assert curve.opts["pen"].color().name() == theme.DARK_PLOTS.curve
    assert plot.getPlotItem().getAxis("left").pen().color().name() == theme.DARK_PLOTS.foreground
    assert region.brush.color().alpha() == theme.DARK_PLOTS.shade[3]
    theme.apply_appearance(app, "light", None)
    assert curve.opts["pen"].color().name() == theme.LIGHT_PLOTS.curve
    assert theme.plot_colours() is theme.LIGHT_PLOTS
