"""Settings from the window: Test connection runs on the loop (no exec), results land."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton

from kanoa_desktop.ui.settings.connection import ConnectionRequest, check_connection
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


async def test_check_connection_on_vllm_reports_vision_context_kind_and_version():
    with VLLMTestServer(max_model_len=16384) as server:
        report = await check_connection(
            ConnectionRequest("p", server.api_base, "qwen2.5-vl-7b", "auto", None, True, 10.0)
        )
    assert report.error is None
    assert report.health.state == "ok" and report.health.latency_s is not None
    assert [(m.id, m.context_length) for m in report.models] == [("qwen2.5-vl-7b", 16384)]
    assert report.server.kind == "vllm" and report.server.version == "0.33.0"
    assert report.vision is True


def test_test_connection_button_in_the_window_reports_and_caches_vision(make_window, run):
    with VLLMTestServer(multimodal=False) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.open_settings()
        dlg = w.settings_dialog
        assert dlg.isVisible()  # opened with open(): the loop kept running
        button = dlg.findChild(QPushButton, "testConnectionButton")
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        result = dlg.findChild(QLabel, "connectionResultLabel")
        run(wait_until(lambda: "vllm" in result.text().lower(), 10, "connection result"))
        combo = dlg.findChild(QComboBox, "modelCombo")
        assert [combo.itemText(i) for i in range(combo.count())] == ["qwen2.5-vl-7b"]
        # The model list shows each model's context length.
        models = dlg.endpoint.model_list
        assert models.topLevelItem(0).text(1) == "32,768"
        # The probe found a text-only model: the window will not send figures to it.
        assert w.store.cached_vision(server.api_base, "qwen2.5-vl-7b") is False
        assert w._vision_block() is not None
        dlg.reject()
