"""The window's side of core/config/recovery.py: the watchdog's heartbeat, the draft, and
the line that says the last session ended badly.

:func:`attach` (ui/app.py, once the window exists) gives the window a
:class:`RecoveryHost`:

- a 1 s timer pets the session's watchdog from the GUI thread (stuck for
  ``Session.watchdog_s``: every thread's stack is written to the crash record);
- the question, context, focus, system prompt and the Settings dialog's unapplied edits
  are saved as the session's draft, a second after typing stops and every 10 s when they
  changed (the session skips unchanged drafts);
- after an unclean end, one line above the answer: "kanoa desktop closed unexpectedly at
  14:02 — Open log · Copy diagnostics" (plain text), and what the draft held comes back:
  the fields, and the Settings dialog with its unapplied edits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolBar,
    QToolButton,
    QWidget,
)

from kanoa_desktop.core.ask.prompts import DEFAULT_SYSTEM_PROMPT
from kanoa_desktop.core.config.recovery import Draft, Session, UncleanEnd, restore_settings
from kanoa_desktop.ui.qt_guard import guarded

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

HEARTBEAT_MS = 1_000
DRAFT_AFTER_TYPING_MS = 1_000
DRAFT_EVERY_MS = 10_000


class OneLineLabel(QLabel):
    """Plain text on one line, elided at the right when the column is narrow (the full
    text in the tooltip): the notice never takes two lines from the answer."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(60)

    @guarded()
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter), text)
        painter.end()


class CrashNotice(QFrame):
    """One line: what happened and when, Open log, Copy diagnostics, Dismiss."""

    def __init__(
        self,
        end: UncleanEnd,
        *,
        open_url: Callable[[QUrl], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("crashNotice")
        self.setAccessibleName("The last session closed unexpectedly")
        self.end = end
        self._open_url = open_url or QDesktopServices.openUrl
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 1, 2, 1)
        lay.setSpacing(2)
        self.label = OneLineLabel(f"{end.line()} —")
        self.label.setObjectName("crashNoticeText")
        self.label.setToolTip(end.line())
        self.open_log = self._link("Open log", "crashOpenLog", self.open_record)
        self.copy = self._link("Copy diagnostics", "crashCopyDiagnostics", self.copy_diagnostics)
        self.dismiss = self._link("×", "crashDismiss", self.hide)
        self.dismiss.setAccessibleName("Dismiss")
        self.dismiss.setToolTip("Dismiss")
        lay.addWidget(self.label)
        lay.addWidget(self.open_log)
        lay.addWidget(self.copy)
        lay.addStretch(1)
        lay.addWidget(self.dismiss)

    def _link(self, text: str, name: str, slot) -> QToolButton:
        # Tool buttons: as wide as their text (a push button's minimum width would leave
        # the line less room than the words need).
        button = QToolButton(objectName=name)
        button.setText(text)
        button.setAutoRaise(True)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(slot)
        return button

    def open_record(self) -> bool:
        """Open the crash record (or the log, when no record was kept); when nothing
        opens it, the line says where it is."""
        from kanoa_desktop.core.config.logs import log_path

        path = self.end.record or log_path()
        ok = bool(self._open_url(QUrl.fromLocalFile(str(path))))
        if not ok:
            self.label.setText(f"{self.end.line()}. The record is {path} —")
            self.label.setToolTip(str(path))
        return ok

    def diagnostics(self) -> str:
        from kanoa_desktop.core.config.logs import diagnostics_text

        return self.end.diagnostics(diagnostics_text(qt_version=qVersion()))

    def copy_diagnostics(self) -> None:
        QGuiApplication.clipboard().setText(self.diagnostics())
        self.copy.setText("Copied")


class RecoveryHost(QObject):
    """The heartbeat, the draft and the crash line for one window; see the module
    docstring. ``session`` may be None (tests, the self-test): nothing is recorded."""

    def __init__(self, window, session: Session | None) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.notice: CrashNotice | None = None
        self.notice_bar: QToolBar | None = None
        self.heartbeat = QTimer(self)
        self.heartbeat.setInterval(HEARTBEAT_MS)
        self.heartbeat.timeout.connect(self._pet)
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(DRAFT_AFTER_TYPING_MS)
        self._typing.timeout.connect(self.save_draft)
        self._regular = QTimer(self)
        self._regular.setInterval(DRAFT_EVERY_MS)
        self._regular.timeout.connect(self.save_draft)
        inputs = window.inputs
        for edit in (inputs.question, inputs.context, inputs.focus, inputs.system_prompt):
            edit.textChanged.connect(self._typing.start)
        if session is not None:
            self.heartbeat.start()
            self._regular.start()
            session.pet()
        closed = getattr(window, "closed", None)
        if closed is not None:
            closed.connect(self.stop)

    def _pet(self) -> None:
        if self.session is not None:
            self.session.pet()

    def stop(self) -> None:
        """The window closed: no more pets (a long shutdown must not read as a hang) and
        a last draft (the session deletes it at a clean end)."""
        self.heartbeat.stop()
        self._typing.stop()
        self._regular.stop()
        if self.session is not None:
            self.session.stop_watchdog()
            self.save_draft()

    # -- the draft

    def draft(self) -> Draft:
        """What the window holds now: the fields, the dialog's unapplied settings."""
        w, inputs = self.window, self.window.inputs
        system = inputs.system_prompt.toPlainText()
        profile_prompt = (getattr(w.profile, "system_prompt", "") or DEFAULT_SYSTEM_PROMPT).strip()
        dialog = getattr(w, "settings_dialog", None)
        settings = None
        try:
            if dialog is not None and dialog.isVisible():
                settings = dialog.unapplied()
        except RuntimeError:  # the dialog's C++ side is gone (closed, deleted)
            settings = None
        return Draft(
            question=inputs.question.toPlainText(),
            context=inputs.context.toPlainText(),
            focus=inputs.focus.text(),
            system_prompt=system if system.strip() != profile_prompt else "",
            settings=settings,
        )

    def save_draft(self) -> None:
        if self.session is not None:
            self.session.save_draft(self.draft())

    # -- after an unclean end

    def show_previous(self, open_url: Callable[[QUrl], bool] | None = None) -> None:
        """The crash line and the restored draft, when the last session ended badly."""
        if self.session is None or self.session.previous is None:
            return
        self.notice = CrashNotice(self.session.previous, open_url=open_url)
        # A row of its own under the toolbar, the window's whole width: the answer column
        # alone is too narrow for the line at 1,280 px with the docks open.
        bar = QToolBar("Last session", self.window, objectName="crashNoticeBar")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.toggleViewAction().setVisible(False)  # not a toolbar the user chooses
        bar.addWidget(self.notice)
        self.notice.dismiss.clicked.connect(bar.hide)
        self.window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.notice_bar = bar
        draft = self.session.previous_draft
        if draft is not None and not draft.is_empty():
            self.restore(draft)

    def restore(self, draft: Draft) -> None:
        """Put a draft back: each field the window left empty, and the Settings dialog
        opened with the unapplied edits."""
        inputs = self.window.inputs
        restored = []
        for edit, text, name in (
            (inputs.question, draft.question, "question"),
            (inputs.context, draft.context, "context"),
        ):
            if text and not edit.toPlainText().strip():
                edit.setPlainText(text)
                restored.append(name)
        if draft.focus and not inputs.focus.text().strip():
            inputs.focus.setText(draft.focus)
            restored.append("focus")
        if draft.system_prompt:
            inputs.system_prompt.setPlainText(draft.system_prompt)
            restored.append("system prompt")
        settings = restore_settings(draft.settings)
        if settings is not None:
            self.window.open_settings()
            self.window.settings_dialog.restore_unapplied(settings)
            restored.append("unapplied settings")
        if restored:
            self.notice.setToolTip("Restored what the window held: " + ", ".join(restored) + ".")
            log.info("Restored from the last session's draft: %s", ", ".join(restored))


def attach(window, session: Session | None, **kwargs) -> RecoveryHost:
    """Give ``window`` its RecoveryHost and show what the last session left."""
    host = RecoveryHost(window, session)
    window.recovery = host
    host.show_previous(**kwargs)
    return host
