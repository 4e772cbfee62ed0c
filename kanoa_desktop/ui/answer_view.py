"""The reading view: a conversation rendered as Markdown while the answer streams.

Streaming follows qtconsole's lesson: text is buffered and flushed from a timer inside one
edit block. Finished Markdown blocks are rendered once each (cost linear in the answer),
the unfinished tail shows as plain text, and one full render happens when the answer ends.

Model output never makes the app load anything: HTML in Markdown is disabled, every image
form (inline, reference, collapsed, shortcut) is turned into a plain link before rendering
(:func:`kanoa_desktop.core.safety.defang_images`, linear in the text), ``loadResource``
answers every request with a blank resource (returning nothing would let Qt fall back to
reading local files and ``data:`` URLs itself), and a link opens in the system browser only
when clicked (http, https and mailto only).

Reasoning (``end_answer(reasoning=...)``, or ``show_reasoning(text)`` after ``end_answer``)
is shown folded under the answer: one link that unfolds it as a quotation when clicked and
folds it again on a second click.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QByteArray, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QImage,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
)
from PySide6.QtWidgets import QTextBrowser

from kanoa_desktop.core.ask.markdown_stream import MarkdownStream
from kanoa_desktop.core.safety import defang_images
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.theme import mark_reading_text

MARKDOWN_FEATURES = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub
    | QTextDocument.MarkdownFeature.MarkdownNoHTML
)
FLUSH_INTERVAL_MS = 80  # ~12 updates a second: smooth to read, cheap at 2,000 tokens/s
SAFE_SCHEMES = {"http", "https", "mailto"}
REASONING_SCHEME = "kanoa-reasoning"
# A placeholder in the conversation's Markdown where turn N's reasoning goes (folded or
# not); NUL never occurs in model text that reached here as JSON-decoded UTF-8 text.
_REASONING_MARK = "\x00reasoning:{}\x00"
_REASONING_MARK_RE = re.compile("\x00reasoning:([0-9]{1,9})\x00")
_TURN_END = "\n\n---\n\n"  # closes each answer in the conversation's Markdown
_BLANK_IMAGE = QImage(1, 1, QImage.Format.Format_ARGB32)
_BLANK_IMAGE.fill(0)

# Qt lays out one unbreakable word in time that grows with the square of its length (a
# 100,000-character base64 blob takes seconds): runs of non-spaces longer than LONG_RUN in
# Markdown (never a real word or URL), or than BREAK_EVERY in the plain streaming tail,
# get a zero-width space every BREAK_EVERY characters, on screen only.
BREAK_EVERY = 200
LONG_RUN = 1000
_RUN_RE = re.compile(r"\S+")

__all__ = ["AnswerView", "MARKDOWN_FEATURES", "break_long_runs", "defang_images"]


def break_long_runs(
    text: str, carried: int = 0, *, every: int = BREAK_EVERY, longer_than: int = 0
) -> tuple[str, int]:
    """``text`` with a zero-width space after every ``every`` characters of a run of
    non-spaces (only in runs longer than ``longer_than``), and the length of the run that
    ends it. ``carried`` is the length of the run that ended the text before this piece,
    so a stream broken into pieces gets the same breaks. Linear in ``text``."""
    if not text:
        return text, carried
    out: list[str] = []
    pos = 0
    last_run = 0
    for m in _RUN_RE.finditer(text):
        start, end = m.span()
        before = carried if start == 0 else 0
        last_run = before + end - start
        if last_run <= every or last_run <= longer_than:
            continue
        out.append(text[pos:start])
        piece = text[start:end]
        offset = every - before % every  # characters of this piece before its next break
        cuts = [piece[:offset]] + [piece[i : i + every] for i in range(offset, len(piece), every)]
        if before and before % every == 0:
            cuts.insert(0, "")  # the break falls just before this piece
        out.append("\u200b".join(c for c in cuts[:1]) + "".join("\u200b" + c for c in cuts[1:]))
        pos = end
    end_run = 0 if text[-1].isspace() else last_run
    if not out:
        return text, end_run
    out.append(text[pos:])
    return "".join(out), end_run


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
        mark_reading_text(self)  # Settings > Appearance > Answer font size
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
        self._shown_tail = ""  # the stream's tail as it is on screen now
        self._tail_run = 0  # length of the unbroken run of non-spaces ending the tail
        self._reasoning: list[str] = []  # per answer that had reasoning, in order
        self._unfolded: set[int] = set()
        # Follow the stream (stay at the bottom) unless the user scrolled up. The layout
        # of a long document finishes after setMarkdown returns, so the bottom is pinned
        # again whenever the scroll range grows, not only once.
        self._follow = True
        self._scrolling = False  # our own scroll changes, not the user's
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._user_scrolled)
        bar.rangeChanged.connect(self._range_changed)

    # -- safety --------------------------------------------------------------------------

    @guarded(fallback=lambda *_: QByteArray(b" "))  # never None: see below
    def loadResource(self, type_: int, name: QUrl):  # noqa: N802 - Qt override
        # Never load images, stylesheets or anything else named by the answer. A null
        # result would make QTextDocument read local files and data: URLs by itself.
        if type_ == QTextDocument.ResourceType.ImageResource.value or type_ == 2:
            return _BLANK_IMAGE
        return QByteArray(b" ")

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme().lower() == REASONING_SCHEME:
            self._toggle_reasoning(url.path())
            return
        if url.scheme().lower() in SAFE_SCHEMES:
            self.linkOpened.emit(url)
            QDesktopServices.openUrl(url)

    # -- conversation ----------------------------------------------------------------------

    @property
    def markdown(self) -> str:
        """The whole conversation as Markdown, including a streaming answer so far
        (reasoning, if any, as a quotation after its answer)."""
        text = self._history_md + (self._stream.text if self._stream else "")
        return self._with_reasoning(text, expand_all=True)

    @property
    def following(self) -> bool:
        """True while the view keeps the newest text in view (the user has not scrolled up)."""
        return self._follow

    def clear_conversation(self) -> None:
        self._timer.stop()
        self._follow = True
        self._reasoning.clear()
        self._unfolded.clear()
        self._history_md = ""
        self._stream = None
        self._render_full("")

    def set_conversation_markdown(self, markdown: str) -> None:
        self._follow = True  # a reopened conversation shows its newest answer
        self._history_md = markdown
        self._stream = None
        self._render_full(markdown)

    def begin_answer(self, question_md: str) -> None:
        """Show the question and prepare to stream its answer below it.

        The question is added under what is shown (one small fragment), not by rendering
        the whole conversation again: after a long answer that was a 100-200 ms stall of
        the GUI thread, in every pane of a comparison at once."""
        streaming = self._stream is not None  # an answer never ended: render it all
        self._history_md += question_md
        self._stream = MarkdownStream()
        self._shown_tail, self._tail_run = "", 0
        self._follow = True  # the user just asked: show the question and its answer
        if streaming:
            self._render_full(self._history_md)
        else:
            self._append_markdown(question_md)
        self._tail_start = self._end_position()

    def append(self, text: str) -> None:
        if self._stream is None:
            return
        self._stream.feed(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Render newly finished blocks and redraw the plain-text tail.

        When no block finished since the last flush, only the new end of the tail is
        inserted (the common case inside a long paragraph), so a flush costs the new text
        and the last paragraph's layout, not the whole tail again."""
        if self._stream is None:
            return
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        new = self._stream.take_committed()
        tail = self._stream.tail
        shown = self._shown_tail
        if not new and shown and tail.startswith(shown):
            cursor.movePosition(QTextCursor.MoveOperation.End)
            text, self._tail_run = break_long_runs(tail[len(shown) :], self._tail_run)
            cursor.insertText(text, QTextCharFormat())
        else:
            cursor.setPosition(self._tail_start)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            if new.strip():
                self._insert_markdown(cursor, new, reasoning_marks=False)
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            # The tail is plain text in a plain block, whatever format the last block had.
            cursor.setBlockFormat(QTextBlockFormat())
            cursor.setBlockCharFormat(QTextCharFormat())
            self._tail_start = cursor.position()
            text, self._tail_run = break_long_runs(tail)
            if text:
                cursor.insertText(text, QTextCharFormat())
        self._shown_tail = tail
        cursor.endEditBlock()
        if self._follow:
            self._pin_bottom()

    def end_answer(self, note: str = "", *, reasoning: str = "") -> str:
        """Finish the streaming turn with one full render; returns the answer's text.

        ``note`` is shown in italics under the answer (e.g. a ``Finished.notices``
        message). ``reasoning`` (``Finished.reasoning``) is shown folded under it: a link
        that unfolds it when clicked. For an answer with only reasoning, pass the
        ``reasoning_only`` notice as ``note`` and the reasoning here."""
        self._timer.stop()
        stream = self._stream
        text = stream.text if stream else ""
        closing = ""  # what follows the answer in the conversation's Markdown
        if note:
            closing += f"\n\n*{note}*"
        if reasoning.strip():
            self._reasoning.append(reasoning)
            closing += "\n\n" + _REASONING_MARK.format(len(self._reasoning) - 1)
        closing += _TURN_END
        self._history_md += text + closing
        if stream is None:
            self._render_full(self._history_md)
            return text
        # The finished blocks are on screen already, rendered as they arrived: only the
        # plain-text tail is rendered now, with the note, in its place. Rendering the
        # whole conversation again laid out every answer anew: 170 ms for an 8,000-token
        # answer here, a stall of the window at the end of every answer (issue 25: four
        # compare panes ending together).
        self.flush()
        self._stream = None
        self._replace_tail(stream.tail + closing)
        return text

    # -- reasoning -------------------------------------------------------------------------

    def show_reasoning(self, text: str) -> None:
        """Show ``text`` (an answer's reasoning) folded under the last finished answer:
        one link that unfolds it. Same as passing ``reasoning=`` to :meth:`end_answer`."""
        if not text.strip():
            return
        self._reasoning.append(text)
        mark = "\n\n" + _REASONING_MARK.format(len(self._reasoning) - 1)
        if self._stream is None and self._history_md.endswith(_TURN_END):
            self._history_md = self._history_md[: -len(_TURN_END)] + mark + _TURN_END
        else:
            self._history_md += mark
        if self._stream is None:
            self._render_full(self._history_md)

    def is_reasoning_unfolded(self, index: int) -> bool:
        return index in self._unfolded

    def set_reasoning_unfolded(self, index: int, unfolded: bool) -> None:
        """Fold or unfold the reasoning of the ``index``-th answer that has one."""
        if not 0 <= index < len(self._reasoning):
            return
        (self._unfolded.add if unfolded else self._unfolded.discard)(index)
        if self._stream is None:
            self._render_full(self._history_md)

    def _toggle_reasoning(self, path: str) -> None:
        if path.isdigit():
            index = int(path)
            self.set_reasoning_unfolded(index, index not in self._unfolded)

    def _with_reasoning(self, markdown: str, *, expand_all: bool = False) -> str:
        if "\x00" not in markdown:
            return markdown

        def block(m: re.Match[str]) -> str:
            index = int(m.group(1))
            if index >= len(self._reasoning):
                return ""
            reasoning = self._reasoning[index].strip()
            if expand_all or index in self._unfolded:
                quoted = "\n".join("> " + line if line else ">" for line in reasoning.split("\n"))
                hide = "" if expand_all else f" — [hide]({REASONING_SCHEME}:{index})"
                return f"*Reasoning*{hide}\n\n{quoted}"
            words = len(reasoning.split())
            return f"[▸ Show the model's reasoning ({words:,} words)]({REASONING_SCHEME}:{index})"

        return _REASONING_MARK_RE.sub(block, markdown)

    # -- helpers ---------------------------------------------------------------------------

    def _end_position(self) -> int:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if cursor.block().length() > 1:  # start the answer on a fresh, plain block
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        else:
            cursor.setBlockFormat(QTextBlockFormat())
        return cursor.position()

    def _insert_markdown(
        self, cursor: QTextCursor, markdown: str, *, reasoning_marks: bool = True
    ) -> None:
        """Insert ``markdown`` at ``cursor``, rendered as the whole view renders it
        (images defanged, reasoning marks as links, long runs broken).

        A fragment's first block takes the format of the block it lands in: the heading
        that starts a chunk showed as plain text until the answer's full render. Its own
        format is put back. A list keeps its own, but Qt puts it after an empty block:
        that block is removed (a blank line between a heading and its list)."""
        tmp = QTextDocument()
        shown = defang_images(self._with_reasoning(markdown) if reasoning_marks else markdown)
        tmp.setMarkdown(break_long_runs(shown, longer_than=LONG_RUN)[0], MARKDOWN_FEATURES)
        start = cursor.position()
        cursor.insertFragment(QTextDocumentFragment(tmp))
        first = tmp.begin()
        fix = QTextCursor(self.document())
        fix.setPosition(start)
        if first.isValid() and first.textList() is None:
            fix.setBlockFormat(first.blockFormat())
        elif start > 0 and fix.block().length() == 1 and fix.block().textList() is None:
            fix.deletePreviousChar()  # the empty block before the list
        self.fragment_renders += 1

    def _append_markdown(self, markdown: str) -> None:
        """Render ``markdown`` under what is shown (a fresh block), leaving the rest."""
        if not markdown.strip():
            return
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if cursor.block().length() > 1:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        self._insert_markdown(cursor, markdown)
        cursor.endEditBlock()
        if self._follow:
            self._pin_bottom()

    def _replace_tail(self, markdown: str) -> None:
        """Put ``markdown``, rendered, in place of the streamed plain-text tail."""
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.setPosition(self._tail_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        if markdown.strip():
            cursor.setBlockFormat(QTextBlockFormat())
            cursor.setBlockCharFormat(QTextCharFormat())
            self._insert_markdown(cursor, markdown)
        cursor.endEditBlock()
        self._shown_tail = ""
        if self._follow:
            self._pin_bottom()

    def _render_full(self, markdown: str) -> None:
        # setMarkdown resets the scroll position to the top (the old "jumps to the top when
        # an answer ends"): pin the bottom when following, else put the user's place back.
        bar = self.verticalScrollBar()
        kept = bar.value()
        self._scrolling = True
        try:
            shown = defang_images(self._with_reasoning(markdown))
            shown = break_long_runs(shown, longer_than=LONG_RUN)[0]
            self.document().setMarkdown(shown, MARKDOWN_FEATURES)
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
