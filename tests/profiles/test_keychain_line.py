"""Settings > Endpoint: the keychain line is short, shown only when a key matters, and never
clipped after Test connection."""

from __future__ import annotations

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint.client import Health, ModelInfo, ServerInfo
from kanoa_desktop.ui.settings import ConnectionReport, SettingsDialog


def _dialog(qtbot):
    store = ProfileStore()
    store.load()
    dlg = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dlg)
    dlg.resize(780, 620)
    dlg.open()
    return dlg, dlg.endpoint


def test_a_local_server_without_a_key_shows_no_keychain_warning(qtbot, no_keyring):
    dlg, page = _dialog(qtbot)
    assert page.api_base_edit.text().startswith("http://localhost")
    assert not page.keychain_label.isVisibleTo(dlg)
    page.api_base_edit.setText("https://gpu.example.org/v1")
    assert page.keychain_label.isVisibleTo(dlg)
    assert page.keychain_label.text() == "No system keychain: keys cannot be saved."
    assert "Secret Service" in page.keychain_label.toolTip()  # the full story, on demand
    page.api_base_edit.setText("http://127.0.0.1:8080/v1")
    assert not page.keychain_label.isVisibleTo(dlg)


def test_a_working_keychain_is_one_plain_line_when_a_key_is_set(qtbot, memory_keyring):
    dlg, page = _dialog(qtbot)
    page.api_key_edit.setText("sk-keychain-line")
    page.api_key_edit.editingFinished.emit()
    assert page.keychain_label.isVisibleTo(dlg)
    assert page.keychain_label.text() == "Keys are saved in the system keychain."
    assert not page.session_button.isVisibleTo(dlg)


def test_warnings_keep_their_height_after_test_connection(qtbot, no_keyring):
    dlg, page = _dialog(qtbot)
    page.api_base_edit.setText("http://gpu.example.org:8000/v1")
    page.api_key_edit.setText("sk-clip")
    page.api_key_edit.editingFinished.emit()
    models = [ModelInfo(f"model-{i}", 32768) for i in range(6)]
    page.show_connection_result(
        ConnectionReport(
            Health("ok", 0.012, "/health answered"), models, ServerInfo("vllm", "0.33.0"), True
        )
    )
    qtbot.wait(50)
    for label in (page.keychain_label, page.unencrypted_label, page.result_label):
        assert label.isVisibleTo(dlg)
        needed = (
            label.heightForWidth(label.width()) if label.wordWrap() else (label.sizeHint().height())
        )
        assert label.height() >= needed, label.objectName()
