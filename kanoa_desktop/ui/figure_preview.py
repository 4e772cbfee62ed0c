"""Thumbnails of the figures attached to the next question, with what will be sent.

Each card shows the prepared image (exactly the bytes that will be sent), a caption
"original W×H → sent W×H, N KB PNG", whether it goes with the next question or went with an
earlier one (:meth:`FigurePreview.show_sent`), and a remove button while it has not been
sent. Removing a card emits ``removed(index)`` after the card is gone, so the owner drops
the same figure from its list.

Also here: :func:`qt_svg_rasterizer`, a QtSvg fallback that the window may pass to
``prepare_figure(svg_rasterizer=...)`` if resvg-py is not installed. It paints on a QImage,
which Qt allows off the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.safety import plain_tooltip

if TYPE_CHECKING:  # the decoding code loads with the first figure (issue 18)
    from kanoa_desktop.core.inputs.figures import PreparedFigure

THUMB_SIZE = 180


def caption_for(fig: PreparedFigure) -> str:
    """"original 4000×3000 → sent 1024×768, 61 KB PNG" (SVG says "vector" for the original)."""
    ow, oh = fig.original_size
    sw, sh = fig.sent_size
    kb = max(1, round(len(fig.data) / 1024))
    original = f"SVG {ow}×{oh}" if fig.source_format == "SVG" else f"{ow}×{oh}"
    return f"original {original} → sent {sw}×{sh}, {kb} KB {fig.format_label}"


def qt_svg_rasterizer(svg: bytes, long_side: int) -> bytes:
    """Render SVG with QtSvg to PNG bytes whose long side is ``long_side`` (transparent page;
    prepare_figure flattens it on white). Raises ValueError for SVG Qt cannot read."""
    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise ValueError("QtSvg could not parse the SVG")
    size = renderer.defaultSize()
    w, h = max(1, size.width()), max(1, size.height())
    scale = long_side / max(w, h)
    image = QImage(QSize(max(1, round(w * scale)), max(1, round(h * scale))),
                   QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    try:
        renderer.render(painter, QRectF(0, 0, image.width(), image.height()))
    finally:
        painter.end()
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data().data())


class _FigureCard(QFrame):
    remove_clicked = Signal(object)  # the card itself, so the index is looked up when clicked

    def __init__(self, fig: PreparedFigure, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure = fig
        self.setObjectName("figureCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Figure {fig.name}")
        caption = caption_for(fig)

        self.thumb = QLabel(self)
        self.thumb.setObjectName("figureThumb")
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setFixedSize(THUMB_SIZE, THUMB_SIZE)
        pix = QPixmap()
        if pix.loadFromData(fig.data):
            self.thumb.setPixmap(pix.scaled(THUMB_SIZE, THUMB_SIZE,
                                            Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation))
        else:
            self.thumb.setText("(no preview)")
        self.thumb.setAccessibleName(f"Preview of {fig.name}")
        self.thumb.setToolTip(plain_tooltip("\n".join([fig.name, caption, *fig.notes])))

        self.name_label = QLabel(fig.name, self)
        self.name_label.setObjectName("figureName")
        self.name_label.setTextFormat(Qt.TextFormat.PlainText)
        self.name_label.setMaximumWidth(THUMB_SIZE - 28)
        metrics = self.name_label.fontMetrics()
        self.name_label.setText(metrics.elidedText(fig.name, Qt.TextElideMode.ElideMiddle,
                                                   THUMB_SIZE - 28))

        # Break after the original size so the two sizes line up in a narrow card.
        self.caption = QLabel(caption.replace(" → ", "\n→ "), self)
        self.caption.setObjectName("figureCaption")
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.caption.setWordWrap(True)
        self.caption.setFixedWidth(THUMB_SIZE)
        self.caption.setAccessibleName(f"Size of {fig.name}")
        self.caption.setAccessibleDescription(caption)
        if fig.notes:
            # Visible, not only in the thumbnail's tooltip: e.g. an SVG's removed references.
            count = len(fig.notes)
            self.caption.setText(
                self.caption.text() + f"\n⚠ {count} note{'s' if count != 1 else ''} (hover)"
            )
            self.caption.setToolTip(plain_tooltip("\n".join(fig.notes)))
            self.caption.setAccessibleDescription(" ".join([caption, *fig.notes]))

        self.remove_button = QToolButton(self)
        self.remove_button.setObjectName("removeFigureButton")
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip(plain_tooltip(f"Remove {fig.name}"))
        self.remove_button.setAccessibleName(f"Remove figure {fig.name}")
        self.remove_button.clicked.connect(lambda: self.remove_clicked.emit(self))
        self.status = QLabel(self)
        self.status.setObjectName("figureStatus")
        self.set_sent(None)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.name_label, 1)
        top.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.thumb)
        layout.addWidget(self.caption)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)


    def set_sent(self, question: int | None) -> None:
        """Say which question sent the figure (None: it goes with the next one). A sent
        figure stays in the conversation (Ctrl+N starts a new one): no remove button."""
        sent = question is not None
        self.status.setText(f"✓ Sent with question {question}" if sent else
                            "→ Goes with the next question")  # fmt: skip
        self.remove_button.setVisible(not sent)


class FigurePreview(QWidget):
    """A horizontal strip of figure cards. ``removed(index)`` fires after a card's remove
    button took it out; ``figures()`` is then the remaining list, in order."""

    removed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("figurePreview")
        self.setAccessibleName("Attached figures")
        self._cards: list[_FigureCard] = []

        self._strip = QWidget()
        self._strip_layout = QHBoxLayout(self._strip)
        self._strip_layout.setContentsMargins(4, 4, 4, 4)
        self._strip_layout.setSpacing(8)
        self._strip_layout.addStretch(1)

        self._scroll = QScrollArea(self)
        self._scroll.setWidget(self._strip)
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self._empty = QLabel("No figure attached. Drop, paste or open an image.", self)
        self._empty.setObjectName("figurePreviewEmpty")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._empty)
        layout.addWidget(self._scroll)
        self._sync()

    def figures(self) -> list[PreparedFigure]:
        return [c.figure for c in self._cards]

    def count(self) -> int:
        return len(self._cards)

    def show_sent(self, sent_with) -> None:
        """Mark each card with ``sent_with(figure)``: the question that sent it, or None."""
        for card in self._cards:
            card.set_sent(sent_with(card.figure))

    def set_figures(self, figures: list[PreparedFigure]) -> None:
        self.clear()
        for fig in figures:
            self.add_figure(fig)

    def add_figure(self, fig: PreparedFigure) -> None:
        card = _FigureCard(fig, self._strip)
        card.remove_clicked.connect(self._on_remove_clicked)
        self._strip_layout.insertWidget(len(self._cards), card)
        self._cards.append(card)
        self._sync()

    def remove_figure(self, index: int) -> PreparedFigure:
        """Remove the card at ``index`` without emitting ``removed``."""
        card = self._cards.pop(index)
        self._strip_layout.removeWidget(card)
        card.deleteLater()
        self._sync()
        return card.figure

    def clear(self) -> None:
        while self._cards:
            self.remove_figure(len(self._cards) - 1)

    def _on_remove_clicked(self, card: _FigureCard) -> None:
        index = self._cards.index(card)
        self.remove_figure(index)
        self.removed.emit(index)

    def _sync(self) -> None:
        has = bool(self._cards)
        self._empty.setVisible(not has)
        self._scroll.setVisible(has)
        # Tall enough for one card plus a horizontal scroll bar; never taller.
        card_h = 0
        if has:
            # The caption wraps: ask the layout for the height at the card's width (the
            # plain size hint is for one unwrapped line, which cut the caption off).
            card = self._cards[0]
            hint = card.sizeHint()
            card_h = max(hint.height(), card.heightForWidth(hint.width()))
        self._scroll.setFixedHeight(card_h + 8 + self._scroll.horizontalScrollBar().sizeHint()
                                    .height() if has else 0)
