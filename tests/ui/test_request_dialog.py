"""Show request: readable messages, image thumbnails, Copy as JSON, Copy as curl (no key)."""

from __future__ import annotations

import base64
import json
import subprocess

from PySide6.QtCore import QBuffer, QIODevice, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage

from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.ui.request_dialog import NO_REQUEST, RequestDialog
from tests.servers.vllm_server import VLLMTestServer

KEY = "sk-request-dialog-secret-7788"


def _png_data_url(w=300, h=200) -> str:
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(QColor("#3366cc"))
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(bytes(buf.data())).decode()


def _payload(model="qwen2.5-vl-7b", image=True) -> dict:
    images = [_png_data_url()] if image else []
    messages = [
        {"role": "system", "content": "You read figures.\nBe brief."},
        user_message("Context: growth curve.\nInterpret the table:\n| t | od |\n|---|---|", images),
    ]
    return ChatRequest(model, messages, temperature=0.3, max_tokens=12).payload()


def _dialog(qtbot, payload, api_base="http://127.0.0.1:9/v1", has_key=False) -> RequestDialog:
    dlg = RequestDialog(payload, api_base, has_key=has_key)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def _images_in(doc) -> int:
    n = 0
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isImageFormat():
                n += 1
            it += 1
        block = block.next()
    return n


def test_messages_read_as_text_and_images_as_thumbnails(qtbot):
    dlg = _dialog(qtbot, _payload())
    text = dlg.view.toPlainText()
    assert "System" in text and "User" in text
    assert "You read figures.\nBe brief." in text  # real line breaks, no \n escapes
    assert "\\n" not in text and "base64" not in text
    assert _images_in(dlg.view.document()) == 1
    assert "300×200" in text
    assert "model qwen2.5-vl-7b" in dlg.summary.text() and "max_tokens 12" in dlg.summary.text()
    assert "POST http://127.0.0.1:9/v1/chat/completions" in dlg.summary.text()


def test_copy_as_json_gives_the_exact_body(qtbot):
    payload = _payload()
    dlg = _dialog(qtbot, payload)
    qtbot.mouseClick(dlg.copy_json_button, Qt.MouseButton.LeftButton)
    assert json.loads(QGuiApplication.clipboard().text()) == payload


def test_close_button_closes(qtbot):
    dlg = _dialog(qtbot, None)
    assert dlg.view.toPlainText() == NO_REQUEST
    assert not dlg.copy_curl_button.isEnabled()
    qtbot.mouseClick(dlg.close_button, Qt.MouseButton.LeftButton)
    assert not dlg.isVisible()


def test_copied_curl_runs_against_a_real_server_and_never_holds_the_key(qtbot, tmp_path):
    with VLLMTestServer(api_key=KEY, answer_tokens=5) as server:
        dlg = _dialog(qtbot, _payload(), server.api_base, has_key=True)
        qtbot.mouseClick(dlg.copy_curl_button, Qt.MouseButton.LeftButton)
        command = QGuiApplication.clipboard().text()
        assert KEY not in command and "$KANOA_API_KEY" in command
        run = subprocess.run(
            ["bash", "-c", command + " --fail-with-body -sS"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "KANOA_API_KEY": KEY},
        )
    assert run.returncode == 0, run.stderr + run.stdout
    assert "data: [DONE]" in run.stdout and '"choices"' in run.stdout
