"""Light, dark, follow the system, font size; plots painted with the scheme."""

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


def test_dark_and_light_palettes_and_the_font_size(app):
    assert theme.apply_appearance(app, "dark", 15) == "dark"
    assert _window_lightness(app) < 80
    assert app.palette().color(QPalette.ColorRole.Text).lightness() > 180
    assert app.font().pointSizeF() == 15
    assert theme.apply_appearance(app, "light", None) == "light"
    assert _window_lightness(app) > 200
    assert app.font().pointSizeF() == theme._STATE.default_font.pointSizeF()


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


def _reddest_and_greenest(widget) -> tuple[int, int]:
    """The strongest pure-red and pure-green excess of any pixel (antialiasing blends a
    1.5 px line with the background, but keeps its hue)."""
    image = widget.grab().toImage()
    red = green = 0
    for x in range(image.width()):
        for y in range(image.height()):
            c = image.pixelColor(x, y)
            red = max(red, c.red() - max(c.green(), c.blue()))
            green = max(green, c.green() - max(c.red(), c.blue()))
    return red, green


def test_plots_paint_with_the_scheme_applied_now(app, qtbot, monkeypatch):
    """The GPU panel's sparklines take the scheme's pens at each paint: after a switch to
    dark the curve is drawn with the dark set's pen, and back with the light one. (The two
    sets are given hues of their own here so the blend of a thin line cannot confuse them.)"""
    from dataclasses import replace

    from kanoa_desktop.ui.sparkline import Sparkline

    monkeypatch.setattr(theme, "DARK_PLOTS", replace(theme.DARK_PLOTS, curve="#ff0000"))
    monkeypatch.setattr(theme, "LIGHT_PLOTS", replace(theme.LIGHT_PLOTS, curve="#00ff00"))
    plot = Sparkline("KV cache", "%", 300.0)
    qtbot.addWidget(plot)
    plot.resize(300, 80)
    plot.set_data([-300.0 + i for i in range(301)], [50.0] * 301)
    assert theme.apply_appearance(app, "dark", None) == "dark"
    red, green = _reddest_and_greenest(plot)
    assert red > 120 and green < 30
    theme.apply_appearance(app, "light", None)
    red, green = _reddest_and_greenest(plot)
    assert green > 120 and red < 30
