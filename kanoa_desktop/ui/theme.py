"""Light, dark, or follow the system; and the answer's font size. One call:
:func:`apply_appearance`.

The font size is the size of the text one reads, the answers (widgets marked with
:func:`mark_reading_text`), not of the whole window: a 15 pt window would clip dock tabs
and buttons at 1,280 × 720. "System default" gives those widgets back the application's
font exactly (an empty font, so they inherit again), and the rest of the window is never
touched.

The palette is ours for both schemes (Fusion-like colours), so the window looks the same on
every desktop and under Xvfb, where no platform theme reports a scheme. "system" reads
``QStyleHints.colorScheme()`` (Unknown counts as light) and follows
``colorSchemeChanged`` while the preference stays "system". An explicit choice is also
passed to ``QStyleHints.setColorScheme`` so native parts (title bars, file dialogs) agree
where the platform supports it.

Plots (the GPU panel's sparklines, drawn with QPainter) are not styled by the palette:
:func:`plot_colours` gives the pens for the scheme applied now, read at each paint.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")
#: Text colours with a meaning, per scheme; each reads at WCAG AA (4.5:1 or more) on the
#: scheme's window, base and button backgrounds (tests/ui/test_contrast.py measures them).
SEMANTIC = {
    "light": {"ok": "#1b6e20", "warning": "#8a4500", "error": "#b3261e", "muted": "#5c5c5c"},
    "dark": {"ok": "#81c784", "warning": "#fbbf24", "error": "#ff8a80", "muted": "#a8a8a8"},
}
#: The dynamic property naming a widget's semantic text colour (see set_text_colour).
TEXT_COLOUR = "kanoaTextColour"
#: The dynamic property that marks a widget whose text follows the font-size preference.
READING_TEXT = "kanoaReadingText"
_PALETTE_BLIND_STYLES = ("windowsvista", "windows11", "windows", "macos")


@dataclass(frozen=True)
class PlotColours:
    """Pens for the GPU panel's plots, readable on the scheme's background."""

    scheme: str  # "light" | "dark"
    foreground: str  # axes, ticks, titles
    curve: str  # the data line
    shade: tuple[int, int, int, int]  # request spans behind the curve (RGBA)
    warning: str  # warning text (KV cache full, preemptions)


LIGHT_PLOTS = PlotColours("light", "#424242", "#1565c0", (255, 160, 0, 50), "#b45309")
DARK_PLOTS = PlotColours("dark", "#c8c8c8", "#64b5f6", (255, 183, 77, 60), "#fbbf24")


def _palette(dark: bool) -> QPalette:
    if dark:
        window, base, alt, text = "#2b2b2b", "#1f1f1f", "#262626", "#e6e6e6"
        button, mid, highlight, link = "#353535", "#4a4a4a", "#3d7bd9", "#7fb3ff"
        disabled, placeholder = "#7a7a7a", "#999999"
        tip_base, tip_text = "#3a3a3a", "#f0f0f0"
    else:
        window, base, alt, text = "#efefef", "#ffffff", "#f5f5f5", "#1e1e1e"
        button, mid, highlight, link = "#e6e6e6", "#b8b8b8", "#2f6fd0", "#1a56b0"
        disabled, placeholder = "#9a9a9a", "#666666"
        tip_base, tip_text = "#ffffdc", "#1e1e1e"
    p = QPalette()
    role = QPalette.ColorRole
    for r, c in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, alt),
        (role.Text, text),
        (role.Button, button),
        (role.ButtonText, text),
        (role.BrightText, "#ff5252"),
        (role.Highlight, highlight),
        (role.HighlightedText, "#ffffff"),
        (role.Link, link),
        (role.LinkVisited, link),
        (role.ToolTipBase, tip_base),
        (role.ToolTipText, tip_text),
        (role.PlaceholderText, placeholder),
        (role.Mid, mid),
        (role.Midlight, QColor(button).lighter(115).name()),
        (role.Dark, QColor(mid).darker(130).name()),
        (role.Shadow, "#000000"),
        (role.Light, QColor(button).lighter(140).name()),
    ):
        p.setColor(r, QColor(c))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(disabled))
    return p


def system_scheme() -> str:
    """ "dark" when the platform says so, else "light" (Unknown counts as light)."""
    hints = QGuiApplication.styleHints()
    return "dark" if hints.colorScheme() == Qt.ColorScheme.Dark else "light"


class _Appearance(QObject):
    """The applied preference; follows the system's scheme while the theme is "system"."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self.theme = "system"
        self.scheme = "light"
        self.default_font = QFont(app.font())
        self.reading_pt: float | None = None
        app.styleHints().colorSchemeChanged.connect(self._system_changed)

    def _system_changed(self, scheme: Qt.ColorScheme) -> None:
        # The signal's argument, not a fresh read: it is what the desktop just switched to.
        wanted = "dark" if scheme == Qt.ColorScheme.Dark else "light"
        if self.theme == "system" and wanted != self.scheme:
            self.apply_scheme(wanted)

    def apply_scheme(self, scheme: str) -> None:
        self.scheme = scheme
        # Only where such a style exists: asking for the style from Python builds QStyle's
        # eleven enums (566 members, ~20 ms of start-up, issue 18).
        native = sys.platform in ("win32", "darwin")
        if native and self.app.style().name().lower() in _PALETTE_BLIND_STYLES:
            # Native Windows/macOS styles ignore a palette that disagrees with the system.
            self.app.setStyle("Fusion")
        self.app.setPalette(_palette(scheme == "dark"))
        # A widget with a style sheet (its own, or a parent's that reaches it) keeps the
        # palette it was polished with: set every sheet again, semantic colours first, so
        # nothing keeps the old scheme's colours (seen: the error banner's and the Sources
        # heading's light-scheme text on dark backgrounds).
        for widget in QApplication.allWidgets():
            role = widget.property(TEXT_COLOUR)
            if role:
                _apply_text_colour(widget, str(role))
        for widget in QApplication.allWidgets():
            sheet = widget.styleSheet()
            if sheet:
                widget.setStyleSheet(sheet)


_STATE: _Appearance | None = None


def apply_appearance(app: QApplication, theme: str = "system", font_size_pt: int | None = None):
    """Apply a theme ("system", "light" or "dark"; anything else counts as "system") and a
    font size in points (None: the platform's default) to the whole app.

    Safe to call again whenever the preferences change; while the theme is "system" the
    app follows the desktop's colour scheme by itself. Returns the scheme now shown.
    """
    global _STATE
    if _STATE is None or _STATE.app is not app:
        _STATE = _Appearance(app)
    state = _STATE
    theme = theme if theme in THEMES else "system"
    state.theme = theme
    hints = app.styleHints()
    if theme == "system":
        hints.unsetColorScheme()
        scheme = system_scheme()
    else:
        hints.setColorScheme(Qt.ColorScheme.Dark if theme == "dark" else Qt.ColorScheme.Light)
        scheme = theme
    state.apply_scheme(scheme)
    if app.font() != state.default_font:
        app.setFont(state.default_font)  # an older version scaled the whole window
    state.reading_pt = float(font_size_pt) if font_size_pt else None
    for widget in QApplication.allWidgets():
        if widget.property(READING_TEXT):
            _apply_reading_font(widget, state.reading_pt)
    return scheme


def _apply_reading_font(widget, point_size: float | None) -> None:
    if point_size is None:
        widget.setFont(QFont())  # nothing set: the widget inherits the app's font again
    else:
        font = QFont()
        font.setPointSizeF(point_size)  # only the size is set; family and the rest inherit
        widget.setFont(font)


def mark_reading_text(widget) -> None:
    """Make ``widget``'s text follow the font-size preference, now and on every change."""
    widget.setProperty(READING_TEXT, True)
    if _STATE is not None and _STATE.reading_pt is not None:
        _apply_reading_font(widget, _STATE.reading_pt)


def colour(role: str) -> str:
    """The scheme's colour for ``role`` ("ok", "warning", "error", "muted")."""
    return SEMANTIC[current_scheme()][role]


_COLOUR_RULE = "/*kanoa-colour*/"


def _apply_text_colour(widget, role: str) -> None:
    sheet = widget.styleSheet()
    if _COLOUR_RULE in sheet:
        sheet = sheet[: sheet.index(_COLOUR_RULE)]
    widget.setStyleSheet(f"{sheet}{_COLOUR_RULE} color: {colour(role)};")


def set_text_colour(widget, role: str | None) -> None:
    """Give ``widget``'s text the scheme's ``role`` colour, now and after every scheme
    change (None: back to the palette's text colour)."""
    widget.setProperty(TEXT_COLOUR, role or "")
    if role:
        _apply_text_colour(widget, role)
    elif _COLOUR_RULE in widget.styleSheet():
        sheet = widget.styleSheet()
        widget.setStyleSheet(sheet[: sheet.index(_COLOUR_RULE)])


def current_scheme() -> str:
    """The scheme applied now: "light" or "dark" ("light" before any apply_appearance)."""
    return _STATE.scheme if _STATE is not None else "light"


def plot_colours() -> PlotColours:
    """Pens for plots in the scheme applied now (for plots created after a change)."""
    return DARK_PLOTS if current_scheme() == "dark" else LIGHT_PLOTS
