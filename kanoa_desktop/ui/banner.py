"""A non-modal banner for errors: what happened, what to do, Retry and Dismiss."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from kanoa_desktop.core.endpoint.errors import KanoaError


class ErrorBanner(QFrame):
    retryRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setAccessibleName("Error")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Palette-aware: a warm tint that reads on light and dark themes.
        self.setStyleSheet(
            "#errorBanner { background: rgba(220, 60, 40, 0.14); border: 1px solid rgba(220, 60, 40, 0.55);"
            " border-radius: 4px; }"
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        text = QVBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("errorTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("errorMessage")
        self.message.setWordWrap(True)
        self.hint = QLabel()
        self.hint.setObjectName("errorHint")
        self.hint.setWordWrap(True)
        for w in (self.title, self.message, self.hint):
            # Server words reach these labels: never let "<img src=...>" become rich text
            # (which would load a local file or a data: image).
            w.setTextFormat(Qt.TextFormat.PlainText)
            text.addWidget(w)
        lay.addLayout(text, 1)
        # The buttons one above the other: the banner then fits a narrow answer column.
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        self.retry = QPushButton("Retry")
        self.retry.setObjectName("retryButton")
        self.retry.setAccessibleName("Retry")
        self.retry.clicked.connect(self.retryRequested)
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.setObjectName("dismissButton")
        self.dismiss.setAccessibleName("Dismiss error")
        self.dismiss.clicked.connect(self.hide)
        buttons.addWidget(self.retry)
        buttons.addWidget(self.dismiss)
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self.hide()

    def show_error(self, err: KanoaError, *, can_retry: bool = True) -> None:
        self.title.setText(err.title)
        self.message.setText(err.message)
        self.hint.setText(err.hint)
        self.hint.setVisible(bool(err.hint))
        self.retry.setVisible(can_retry)
        self.show()

    def show_message(
        self, title: str, message: str, hint: str = "", *, can_retry: bool = False
    ) -> None:
        self.show_error(KanoaError(message, hint), can_retry=can_retry)
        self.title.setText(title)
