"""The reading view: a conversation rendered as Markdown while the answer streams.

Streaming follows qtconsole's lesson: text is buffered and flushed from a timer inside one
edit block. Finished Markdown blocks are rendered once each (cost linear in the answer),
the unfinished tail shows as plain text, and one full render happens when the answer ends.

Model output never makes the app load anything: HTML in Markdown is disabled, images are
turned into plain links before rendering, ``loadResource`` refuses every resource, and a
link opens in the system browser only when clicked (http, https and mailto only).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
)
from PySide6.QtWidgets import QTextBrowser

from kanoa_desktop.core.ask.markdown_stream import MarkdownStream

MARKDOWN_FEATURES = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub
    | QTextDocument.MarkdownFeature.MarkdownNoHTML
)
FLUSH_INTERVAL_MS = 80  # ~12 updates a second: smooth to read, cheap at 2,000 tokens/s
_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
SAFE_SCHEMES = {"http", "https", "mailto"}


def defang_images(markdown: str) -> str:
    """Replace Markdown images by links, so nothing is fetched or read to show them."""
    return _IMAGE_RE.sub(lambda m: f"[image: {m.group(1) or 'untitled'}]({m.group(2)})", markdown)


class AnswerView(QTextBrowser):
    """Shows the conversation; ``begin_answer`` / ``append`` / ``end_answer`` stream a turn."""

    linkOpened = Signal(QUrl)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("answerView")
        self.setAccessibleName("Answer")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self.document().setUndoRedoEnabled(False)
        self.document().setDocumentMargin(12)
        # Short enough not to be cut: a placeholder does not wrap.
        self.setPlaceholderText("The interpretation appears here. Ctrl+Enter to ask.")
        self._history_md = ""  # Markdown of finished turns
        self._stream: MarkdownStream | None = None
        self._tail_start = 0
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self.flush)
        self.renders = 0  # full renders, for tests and benchmarks
        self.fragment_renders = 0
        # Follow the stream (stay at the bottom) unless the user scrolled up. The layout
        # of a long document finishes after setMarkdown returns, so the bottom is pinned
        # again whenever the scroll range grows, not only once.
        self._follow = True
        self._scrolling = False  # our own scroll changes, not the user's
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._user_scrolled)
        bar.rangeChanged.connect(self._range_changed)

    # -- safety --------------------------------------------------------------------------

    def loadResource(self, type_: int, name: QUrl):  # noqa: N802 - Qt override
        return None  # never load images, stylesheets or anything else named by the answer

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme().lower() in SAFE_SCHEMES:
            self.linkOpened.emit(url)
            QDesktopServices.openUrl(url)

    # -- conversation ----------------------------------------------------------------------

    @property
    def markdown(self) -> str:
        """The whole conversation as Markdown, including a streaming answer so far."""
        return self._history_md + (self._stream.text if self._stream else "")

    @property
    def following(self) -> bool:
        """True while the view keeps the newest text in view (the user has not scrolled up)."""
        return self._follow

    def scroll_to_newest(self) -> None:
        """Show the end of the conversation and follow it again."""
        self._follow = True
        self._pin_bottom()

    def clear_conversation(self) -> None:
        self._timer.stop()
        self._follow = True
        self._history_md = ""
        self._stream = None
        self._render_full("")

    def set_conversation_markdown(self, markdown: str) -> None:
        self._follow = True  # a reopened conversation shows its newest answer
        self._history_md = markdown
        self._stream = None
        self._render_full(markdown)

    def begin_answer(self, question_md: str) -> None:
        """Show the question and prepare to stream its answer below it."""
        self._history_md += question_md
        self._stream = MarkdownStream()
        self._follow = True  # the user just asked: show the question and its answer
        self._render_full(self._history_md)
        self._tail_start = self._end_position()

    def append(self, text: str) -> None:
        if self._stream is None:
            return
        self._stream.feed(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Render newly finished blocks and redraw the plain-text tail."""
        if self._stream is None:
            return
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        cursor.setPosition(self._tail_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        new = self._stream.take_committed()
        if new.strip():
            tmp = QTextDocument()
            tmp.setMarkdown(defang_images(new), MARKDOWN_FEATURES)
            cursor.insertFragment(QTextDocumentFragment(tmp))
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self.fragment_renders += 1
        # The tail is plain text in a plain block, whatever format the last block had.
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setBlockCharFormat(QTextCharFormat())
        self._tail_start = cursor.position()
        tail = self._stream.tail
        if tail:
            cursor.insertText(tail, QTextCharFormat())
        cursor.endEditBlock()
        if self._follow:
            self._pin_bottom()

    def end_answer(self, note: str = "") -> str:
        """Finish the streaming turn with one full render; returns the answer's text."""
        self._timer.stop()
        text = self._stream.text if self._stream else ""
        self._history_md += text
        if note:
            self._history_md += f"\n\n*{note}*"
        self._history_md += "\n\n---\n\n"
        self._stream = None
        self._render_full(self._history_md)
        return text

    # -- helpers ---------------------------------------------------------------------------

    def _end_position(self) -> int:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if cursor.block().length() > 1:  # start the answer on a fresh, plain block
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        else:
            cursor.setBlockFormat(QTextBlockFormat())
        return cursor.position()

    def _render_full(self, markdown: str) -> None:
        # setMarkdown resets the scroll position to the top (the old "jumps to the top when
        # an answer ends"): pin the bottom when following, else put the user's place back.
        bar = self.verticalScrollBar()
        kept = bar.value()
        self._scrolling = True
        try:
            self.document().setMarkdown(defang_images(markdown), MARKDOWN_FEATURES)
        finally:
            self._scrolling = False
        self.renders += 1
        if self._follow:
            self._pin_bottom()
        else:
            self._scroll_to(kept)

    def _pin_bottom(self) -> None:
        self._scroll_to(self.verticalScrollBar().maximum())

    def _scroll_to(self, value: int) -> None:
        self._scrolling = True
        try:
            self.verticalScrollBar().setValue(value)
        finally:
            self._scrolling = False

    def _user_scrolled(self, value: int) -> None:
        if not self._scrolling:
            self._follow = value >= self.verticalScrollBar().maximum() - 4

    def _range_changed(self, _low: int, _high: int) -> None:
        if self._follow:
            self._pin_bottom()
