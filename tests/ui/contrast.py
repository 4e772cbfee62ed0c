"""WCAG contrast of what is on screen: every visible text (and the toolbar's overflow
chevron) measured in the pixels Qt painted, so style sheets, palettes and rich text all
count as the user sees them.

For a widget, the background is the most common colour of its pixels; the text colour is
the pixel that differs most from it (the core of a glyph is painted in the full text
colour: Qt hints horizontal stems to whole pixels). The ratio is WCAG 2's
``(L1 + 0.05) / (L2 + 0.05)`` of their relative luminances.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QTabBar,
    QWidget,
)

AA_TEXT = 4.5  # WCAG 2 AA, normal text


def _channel(c: float) -> float:
    c /= 255.0
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: QColor) -> float:
    return (
        0.2126 * _channel(color.red())
        + 0.7152 * _channel(color.green())
        + 0.0722 * _channel(color.blue())
    )


def ratio(a: QColor, b: QColor) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _pixels(image: QImage, rect: QRect | None = None) -> list[QColor]:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    r = rect or image.rect()
    out = []
    step = 1 if r.width() * r.height() < 200_000 else 2
    for y in range(max(r.top(), 0), min(r.bottom() + 1, image.height()), step):
        for x in range(max(r.left(), 0), min(r.right() + 1, image.width()), step):
            out.append(QColor(image.pixel(x, y)))
    return out


def measured(image: QImage, rect: QRect | None = None) -> tuple[QColor, QColor, float] | None:
    """(background, text, ratio) of the painted pixels, or None when all are one colour."""
    pixels = _pixels(image, rect)
    if not pixels:
        return None
    counts = Counter(p.rgb() for p in pixels)
    bg = QColor.fromRgb(counts.most_common(1)[0][0])
    best, best_ratio = None, 1.0
    for rgb in counts:
        c = QColor.fromRgb(rgb)
        r = ratio(bg, c)
        if r > best_ratio:
            best, best_ratio = c, r
    if best is None:
        return None
    return bg, best, best_ratio


@dataclass
class Finding:
    widget: str
    text: str
    background: str
    foreground: str
    ratio: float

    def __str__(self) -> str:
        return (
            f"{self.widget} {self.text!r}: {self.foreground} on {self.background} "
            f"= {self.ratio:.2f}:1"
        )


def _text_of(w: QWidget) -> str:
    if isinstance(w, QLabel):
        return w.text() if not w.pixmap() or w.pixmap().isNull() else ""
    if isinstance(w, QAbstractButton):
        return w.text()
    if isinstance(w, QLineEdit):
        return w.text() or w.placeholderText()
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, QGroupBox):
        return w.title()
    return ""


def _label_rect(w: QWidget, root: QWidget) -> QRect:
    """Where ``w`` is in ``root``'s picture (a check box: only its text, not the box, a
    graphical object with its own 3:1 rule)."""
    top_left = w.mapTo(root, QPoint(0, 0))
    r = QRect(top_left, w.size())
    if isinstance(w, QCheckBox):
        r.setLeft(r.left() + 22)
    return r


def text_findings(root: QWidget, minimum: float = AA_TEXT) -> tuple[list[Finding], int]:
    """Every visible, enabled text under ``root`` under ``minimum``; and how many were
    measured (a check that checks nothing is no check)."""
    findings: list[Finding] = []
    checked = 0
    kinds = (QLabel, QAbstractButton, QLineEdit, QComboBox, QGroupBox)
    # One picture of the whole window, as it is on screen: a widget grabbed on its own is
    # repainted and polished first, and could hide a stale colour the user sees.
    picture = root.grab().toImage()
    for w in [root, *root.findChildren(QWidget)]:
        if not isinstance(w, kinds) or not w.isVisible() or not w.isEnabled():
            continue
        if w.width() < 4 or w.height() < 4:
            continue
        text = _text_of(w).strip()
        if not text or text.startswith("<img"):
            continue
        got = measured(picture, _label_rect(w, root))
        if got is None:
            continue
        checked += 1
        bg, fg, r = got
        if r < minimum:
            findings.append(
                Finding(
                    f"{type(w).__name__}#{w.objectName() or '?'}",
                    text[:60],
                    bg.name(),
                    fg.name(),
                    r,
                )  # fmt: skip
            )
    for bar in root.findChildren(QTabBar):
        if not bar.isVisible():
            continue
        origin = bar.mapTo(root, QPoint(0, 0))
        # A tab scrolled out of view, or under the scroll arrows, is not on screen.
        arrows = [b.geometry() for b in bar.findChildren(QAbstractButton) if b.isVisible()]
        for i in range(bar.count()):
            tab = bar.tabRect(i)
            if not bar.rect().contains(tab) or any(tab.intersects(a) for a in arrows):
                continue
            got = measured(picture, tab.adjusted(4, 4, -4, -4).translated(origin))
            if got is None:
                continue
            checked += 1
            bg, fg, r = got
            if r < minimum:
                findings.append(
                    Finding(f"QTabBar tab {i}", bar.tabText(i), bg.name(), fg.name(), r)
                )
    return findings, checked
