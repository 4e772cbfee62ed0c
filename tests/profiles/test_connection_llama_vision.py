"""Test connection against the real llama.cpp server with and without a vision projector."""

from __future__ import annotations

import pytest

from kanoa_desktop.ui.settings.connection import ConnectionReport, check_connection
from tests.profiles.test_connection_llama import request_for
from tests.servers import make_mmproj

pytestmark = pytest.mark.llama


async def test_the_projector_server_can_see_and_reports_what_a_figure_costs(llama_vision_server):
    report = await check_connection(request_for(llama_vision_server))
    assert report.error is None
    assert report.server.kind == "llama.cpp"
    assert report.vision is True and report.vision_model == "smollm2"
    # The server's own count: (image size / patch size)² for the tiny projector.
    assert report.image_tokens == make_mmproj.TOKENS_PER_IMAGE


async def test_the_plain_server_is_text_only_and_has_no_figure_price(llama_server):
    report = await check_connection(request_for(llama_server))
    assert report.error is None
    assert report.vision is False and report.image_tokens is None


def test_the_dialog_says_can_see_or_text_only(qtbot, memory_keyring):
    from kanoa_desktop.core.config.profiles import ProfileStore
    from kanoa_desktop.core.config.secrets import KeyStore
    from kanoa_desktop.ui.settings import SettingsDialog

    store = ProfileStore()
    store.load()
    dialog = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.show_connection_result(
        ConnectionReport(vision=True, vision_model="smollm2", image_tokens=16)
    )
    text = dialog.endpoint.result_label.text()
    assert "smollm2 can see" in text and "One figure costs 16 prompt tokens" in text
    dialog.show_connection_result(ConnectionReport(vision=False, vision_model="smollm2"))
    text = dialog.endpoint.result_label.text()
    assert "smollm2 is text-only" in text and "figure costs" not in text
