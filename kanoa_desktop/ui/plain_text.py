"""Labels that show text from outside (a server, a file, a model) as the characters it is.

A QLabel left at its default ``Qt.AutoText`` *guesses* whether its text is rich text: a
Prometheus error or a model name holding ``<img src="file:///...">`` would be rendered,
and the image read from the disk. The rule of the app: a label is PlainText unless it is
built for markup, and then it says so (``setTextFormat(Qt.RichText)``) and every piece of
outside text in it goes through :func:`~kanoa_desktop.core.safety.escape_rich`. Tooltips
with outside text go through :func:`~kanoa_desktop.core.safety.plain_tooltip`.

- :func:`plain_label`: a new label that shows its text literally.
- :func:`make_labels_plain`: after a view is built, every label in it still guessing
  (AutoText) becomes PlainText; the ones built for markup were set to RichText and stay.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

__all__ = ["make_labels_plain", "plain_label"]


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A QLabel whose text is always shown as the characters it is."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


def make_labels_plain(root: QWidget) -> int:
    """Set every label under ``root`` (and ``root`` itself) that still guesses its format
    to PlainText; return how many. Call it once a view is built: labels meant for markup
    set RichText themselves and are left alone."""
    labels = root.findChildren(QLabel)
    if isinstance(root, QLabel):
        labels.append(root)
    changed = 0
    for label in labels:
        if label.textFormat() == Qt.TextFormat.AutoText:
            label.setTextFormat(Qt.TextFormat.PlainText)
            changed += 1
    return changed
