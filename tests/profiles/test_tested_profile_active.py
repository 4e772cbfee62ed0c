"""A profile that passed Test connection and was saved becomes the active profile."""

from __future__ import annotations

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.ui.settings import SettingsDialog
from kanoa_desktop.ui.settings.connection import check_connection
from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer


def _dialog(qtbot, store):
    dlg = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dlg)
    dlg.open()
    return dlg


async def test_the_tested_and_saved_profile_becomes_active(qtbot, memory_keyring):
    store = ProfileStore()
    store.load()
    first = store.active.id
    dlg = _dialog(qtbot, store)
    dlg._new_profile()
    with VLLMTestServer() as server:
        dlg.endpoint.api_base_edit.setText(server.api_base)
        dlg.show_connection_result(await check_connection(dlg.connection_request()))
    assert "Reachable" in dlg.endpoint.result_label.text()
    assert dlg.apply()
    assert store.active.api_base == server.api_base and store.active.id != first
    again = ProfileStore()
    again.load()
    assert again.active.api_base == server.api_base


async def test_a_failed_or_outdated_test_changes_nothing(qtbot, memory_keyring):
    store = ProfileStore()
    store.load()
    first = store.active.id
    dlg = _dialog(qtbot, store)
    dlg._new_profile()
    dlg.endpoint.api_base_edit.setText(f"http://127.0.0.1:{free_port()}/v1")
    dlg.show_connection_result(await check_connection(dlg.connection_request()))
    assert dlg.apply() and store.active.id == first  # failed: not made active
    with VLLMTestServer() as server:
        dlg.endpoint.api_base_edit.setText(server.api_base)
        dlg.show_connection_result(await check_connection(dlg.connection_request()))
    dlg.endpoint.api_base_edit.setText("http://127.0.0.1:9/v1")  # changed after the test
    assert dlg.apply() and store.active.id == first
