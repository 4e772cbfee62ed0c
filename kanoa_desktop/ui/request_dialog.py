"""Show request: what was sent, readable — each message as text, each image as a thumbnail,
the parameters on one line — with Copy as JSON, Copy as curl and Close.

The curl command never contains the API key: when the profile has one, the command reads
it from ``$KANOA_API_KEY`` (the command line's variable too). Non-modal: the window opens
it with ``show()``, never ``exec()`` (a nested loop breaks qasync).
"""

from __future__ import annotations

import base64
import json
import shlex
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import (
    QFont,
    QGuiApplication,
    QImage,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextImageFormat,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

THUMBNAIL_PX = 220
KEY_VARIABLE = "KANOA_API_KEY"
NO_REQUEST = "No request has been sent yet. Ask a question (Ctrl+Enter) and open this again."


def chat_url(api_base: str) -> str:
    return api_base.rstrip("/") + "/chat/completions"


def request_json(payload: dict[str, Any]) -> str:
    """The body exactly as sent (images included), indented."""
    return json.dumps(payload, indent=2, ensure_ascii=False)


def curl_command(payload: dict[str, Any], api_base: str, *, has_key: bool = False) -> str:
    """A shell command that sends the same request. The key is never in it: with
    ``has_key`` it reads ``$KANOA_API_KEY``."""
    lines = [f"curl {shlex.quote(chat_url(api_base))}"]
    if payload.get("stream"):
        lines.append("-N")  # print the stream as it arrives
    lines.append("-H 'Content-Type: application/json'")
    if has_key:
        lines.append(f'-H "Authorization: Bearer ${KEY_VARIABLE}"')
    lines.append("--data-binary " + shlex.quote(json.dumps(payload, ensure_ascii=False)))
    return " \\\n  ".join(lines)


def parameters_line(payload: dict[str, Any]) -> str:
    """``model smollm2 · temperature 0.3 · max_tokens 220 · stream`` (everything but the
    messages; stream options and the like as compact JSON)."""
    parts = []
    for key, value in payload.items():
        if key == "messages":
            continue
        if value is True:
            parts.append(key)
        elif isinstance(value, dict | list):
            parts.append(f"{key} {json.dumps(value, separators=(',', ':'))}")
        else:
            parts.append(f"{key} {value}")
    return " · ".join(parts)


def _parts(content: Any) -> list[tuple[str, str]]:
    """("text", text) and ("image", url) parts of a message's content, in order."""
    if isinstance(content, str):
        return [("text", content)]
    out: list[tuple[str, str]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            out.append(("text", str(part.get("text", ""))))
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            url = url.get("url", "") if isinstance(url, dict) else str(url or "")
            out.append(("image", url))
    return out


def _decode_image(url: str) -> QImage | None:
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=False)
    except (ValueError, TypeError):
        return None
    image = QImage.fromData(raw)
    return None if image.isNull() else image


class RequestDialog(QDialog):
    """The last request, readable. ``payload`` is the body sent; ``api_base`` the profile's
    address; ``has_key`` whether the profile sends an API key (never the key itself)."""

    def __init__(
        self,
        payload: dict[str, Any] | None,
        api_base: str,
        *,
        has_key: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("requestDialog")
        self.setWindowTitle("Request sent")
        self.payload = payload
        self.api_base = api_base
        self.has_key = has_key
        lay = QVBoxLayout(self)

        self.summary = QLabel()
        self.summary.setObjectName("requestSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.view = QTextBrowser()
        self.view.setObjectName("requestView")
        self.view.setAccessibleName("Request messages")
        self.view.setOpenLinks(False)
        lay.addWidget(self.summary)
        lay.addWidget(self.view, 1)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_json_button = QPushButton("Copy as JSON")
        self.copy_json_button.setObjectName("copyJsonButton")
        self.copy_curl_button = QPushButton("Copy as curl")
        self.copy_curl_button.setObjectName("copyCurlButton")
        self.copy_curl_button.setToolTip(
            f"A curl command; the API key is read from ${KEY_VARIABLE}, never copied."
        )
        buttons.addButton(self.copy_json_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.copy_curl_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        self.close_button.setObjectName("closeButton")
        self.copy_json_button.clicked.connect(self.copy_json)
        self.copy_curl_button.clicked.connect(self.copy_curl)
        self.status = QLabel()
        self.status.setObjectName("requestCopyStatus")
        lay.addWidget(self.status)
        lay.addWidget(buttons)
        self.resize(760, 620)
        self._render()

    # -- rendering ----------------------------------------------------------------------

    def _render(self) -> None:
        doc: QTextDocument = self.view.document()
        doc.clear()
        has = self.payload is not None
        self.copy_json_button.setEnabled(has)
        self.copy_curl_button.setEnabled(has)
        if not has:
            self.summary.setText("")
            self.view.setPlainText(NO_REQUEST)
            return
        self.summary.setText(f"POST {chat_url(self.api_base)}\n{parameters_line(self.payload)}")
        cursor = QTextCursor(doc)
        heading = QTextCharFormat()
        heading.setFontWeight(QFont.Weight.Bold)
        plain = QTextCharFormat()
        self.image_count = 0
        for i, message in enumerate(self.payload.get("messages") or []):
            if i:
                cursor.insertBlock(QTextBlockFormat(), plain)
                cursor.insertBlock(QTextBlockFormat(), plain)
            role = str(message.get("role", "?")).capitalize()
            cursor.insertText(role, heading)
            for kind, value in _parts(message.get("content")):
                cursor.insertBlock(QTextBlockFormat(), plain)
                if kind == "text":
                    cursor.insertText(value, plain)
                else:
                    self._insert_image(doc, cursor, value, plain)
        self.view.moveCursor(QTextCursor.MoveOperation.Start)

    def _insert_image(self, doc, cursor: QTextCursor, url: str, plain) -> None:
        image = _decode_image(url)
        if image is None:
            cursor.insertText(f"[image: {url[:60]}…]", plain)
            return
        name = f"kanoa-request-image:{self.image_count}"
        self.image_count += 1
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
        fmt = QTextImageFormat()
        fmt.setName(name)
        scale = min(1.0, THUMBNAIL_PX / max(image.width(), image.height()))
        fmt.setWidth(round(image.width() * scale))
        fmt.setHeight(round(image.height() * scale))
        cursor.insertImage(fmt)
        kb = max(1, round(len(url) * 3 / 4 / 1024))
        cursor.insertText(f"  {image.width()}×{image.height()}, {kb} KB", plain)

    # -- actions ------------------------------------------------------------------------

    def copy_json(self) -> None:
        if self.payload is None:
            return
        QGuiApplication.clipboard().setText(request_json(self.payload))
        self.status.setText("Copied the request as JSON (images included).")

    def copy_curl(self) -> None:
        if self.payload is None:
            return
        QGuiApplication.clipboard().setText(
            curl_command(self.payload, self.api_base, has_key=self.has_key)
        )
        note = f" The key is read from ${KEY_VARIABLE}." if self.has_key else ""
        self.status.setText("Copied as a curl command." + note)
