"""A small time-series plot painted with QPainter: the GPU panel's five-minute lines.

A sparkline of a few hundred points needs neither numpy nor a plotting library; painting it
directly keeps a plotting library (and numpy, about 55 MB and a quarter of a second) out of the
window's start, and a repaint costs one polyline. It repaints only when its data changed
(:meth:`Sparkline.set_data` compares) or Qt asks (resize, theme change).

What it shows: a title with the unit, the x axis from ``-history_s`` to now with minute
ticks, the y axis from zero (0 and a round value below the top, or 0/50/100 for percent),
the curve with gaps where a value is unknown (NaN), and shaded spans behind it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from kanoa_desktop.ui.qt_guard import guarded


def round_down(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``value`` (> 0)."""
    exp = math.floor(math.log10(value))
    for step in (5.0, 2.0, 1.0):
        tick = step * 10.0**exp
        if tick <= value:
            return tick
    return 10.0**exp


class Sparkline(QWidget):
    """Plot ``(x, y)`` points, x in seconds before now (``-history_s`` .. 0)."""

    def __init__(self, title: str, unit: str, history_s: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.unit = unit
        self.history_s = history_s
        self._xs: tuple[float, ...] = ()
        self._ys: tuple[float, ...] = ()
        self._spans: tuple[tuple[float, float], ...] = ()
        self._top = 100.0 if unit == "%" else 1.0
        self.setMinimumHeight(64)
        self.setMaximumHeight(84)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, False)

    # -- data

    def set_data(
        self, xs: Sequence[float], ys: Sequence[float], spans: Sequence[tuple[float, float]] = ()
    ) -> bool:
        """Show these points and spans; repaints only if anything changed. True if it did."""
        xs_t, ys_t, spans_t = tuple(xs), tuple(ys), tuple(spans)
        if self.unit == "%":
            top = 100.0
        else:
            known = [y for y in ys_t if not math.isnan(y)]
            high = max(known, default=0.0)
            top = high * 1.15 if high > 0 else 1.0
        if (xs_t, spans_t, top) == (self._xs, self._spans, self._top) and _same(ys_t, self._ys):
            return False
        self._xs, self._ys, self._spans, self._top = xs_t, ys_t, spans_t, top
        self.update()
        return True

    def points(self) -> list[tuple[float, float]]:
        return list(zip(self._xs, self._ys, strict=True))

    def spans(self) -> list[tuple[float, float]]:
        return list(self._spans)

    @property
    def top(self) -> float:
        """The y value at the top of the plot (from zero; 100 for percent)."""
        return self._top

    def y_ticks(self) -> list[float]:
        if self.unit == "%":
            return [0.0, 50.0, 100.0]
        high = self._top / 1.15 if self._top != 1.0 else 0.0
        return [0.0, round_down(high) if high > 0 else 1.0]

    # -- painting

    @guarded()
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        from kanoa_desktop.ui.theme import plot_colours

        colours = plot_colours()
        fg = QColor(colours.foreground)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        fm = p.fontMetrics()
        left, top_margin, bottom_margin = 38.0, fm.height() + 2.0, fm.height() + 2.0
        area = QRectF(left, top_margin, max(1.0, self.width() - left - 4.0),
                      max(1.0, self.height() - top_margin - bottom_margin))  # fmt: skip
        p.setPen(fg)
        p.drawText(QRectF(0, 0, self.width(), top_margin), Qt.AlignmentFlag.AlignHCenter,
                   f"{self.title} ({self.unit})")  # fmt: skip

        def sx(x: float) -> float:
            return area.left() + (x + self.history_s) / self.history_s * area.width()

        def sy(y: float) -> float:
            return area.bottom() - min(max(y / self._top, 0.0), 1.0) * area.height()

        shade = QColor(*colours.shade)
        for start, end in self._spans:
            a, b = sx(max(start, -self.history_s)), sx(min(end, 0.0))
            if b > a:
                p.fillRect(QRectF(a, area.top(), b - a, area.height()), shade)

        axis = QPen(fg)
        axis.setWidthF(1.0)
        p.setPen(axis)
        p.drawLine(QPointF(area.left(), area.top()), QPointF(area.left(), area.bottom()))
        p.drawLine(QPointF(area.left(), area.bottom()), QPointF(area.right(), area.bottom()))
        for tick in self.y_ticks():
            y = sy(tick)
            p.drawLine(QPointF(area.left(), y), QPointF(area.left() + 4, y))
            p.drawText(QRectF(0, y - fm.height() / 2, left - 4, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{tick:g}")  # fmt: skip
        for x, label in ((-240, "−4 min"), (-180, "−3"), (-120, "−2"), (-60, "−1")):
            if x < -self.history_s:
                continue
            px = sx(x)
            p.drawLine(QPointF(px, area.bottom()), QPointF(px, area.bottom() - 4))
            p.drawText(QRectF(px - 40, area.bottom() + 1, 80, bottom_margin),
                       Qt.AlignmentFlag.AlignHCenter, label)  # fmt: skip

        path = QPainterPath()
        pen_down = False
        for x, y in zip(self._xs, self._ys, strict=True):
            if math.isnan(y) or x < -self.history_s:
                pen_down = False
                continue
            point = QPointF(sx(x), sy(y))
            if pen_down:
                path.lineTo(point)
            else:
                path.moveTo(point)
                pen_down = True
        curve = QPen(QColor(colours.curve))
        curve.setWidthF(1.5)
        p.setPen(curve)
        p.setClipRect(area.adjusted(-1, -1, 1, 1))
        p.drawPath(path)
        p.end()


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    # NaN != NaN: compare with gaps treated as equal.
    if len(a) != len(b):
        return False
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


__all__ = ["Sparkline", "round_down"]
