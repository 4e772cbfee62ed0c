"""The settings dialog and the profile switcher, offscreen with pytest-qt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLineEdit

from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint.client import Health, ModelInfo, ServerInfo
from kanoa_desktop.ui.profile_switcher import ProfileSwitcher
from kanoa_desktop.ui.settings import ConnectionReport, ConnectionRequest, SettingsDialog

SHOTS = Path(os.environ.get("KANOA_SETTINGS_SHOTS", "/tmp"))


@pytest.fixture
def store():
    s = ProfileStore()
    s.load()
    return s


@pytest.fixture
def dialog(qtbot, store, memory_keyring):
    dlg = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dlg)
    dlg.open()  # never exec(): no nested loop under qasync
    return dlg


def type_key(qtbot, edit: QLineEdit, key: str) -> None:
    edit.setFocus()
    edit.setText(key)
    edit.editingFinished.emit()


def test_dialog_opens_without_exec_and_has_the_named_fields(dialog, qtbot):
    assert dialog.isVisible()
    for name in ("apiBaseEdit", "modelCombo", "apiKeyEdit", "testConnectionButton"):
        assert dialog.findChild(object, name) is not None, name
    assert dialog.findChild(QLineEdit, "apiKeyEdit").echoMode() == QLineEdit.EchoMode.Password
    assert [dialog.page_list.item(i).text() for i in range(dialog.page_list.count())] == [
        "Endpoint",
        "Generation",
        "Images",
        "Knowledge base",
        "GPU panel",
        "Appearance",
    ]


def test_each_page_screenshot(dialog, qtbot):
    dialog.resize(780, 620)
    for row, key in enumerate(dialog.pages):
        dialog.page_list.setCurrentRow(row)
        qtbot.wait(10)
        image = dialog.grab()
        assert not image.isNull()
        image.save(str(SHOTS / f"settings_{key}.png"))


def test_key_leaves_the_widget_after_entry_and_goes_to_the_keychain_on_ok(
    dialog, qtbot, store, memory_keyring, app_home
):
    key = "sk-dialog-key-7777"
    edit = dialog.findChild(QLineEdit, "apiKeyEdit")
    type_key(qtbot, edit, key)
    assert edit.text() == ""  # the widget no longer holds it
    assert "saved when you press OK" in edit.placeholderText()
    with qtbot.waitSignal(dialog.accepted):
        dialog.button_box.button(dialog.button_box.StandardButton.Ok).click()
    assert KeyStore().get(store.active.id).reveal() == key
    for path in app_home.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_bad_url_shows_an_inline_message_and_keeps_the_dialog_open(dialog, qtbot, store):
    dialog.endpoint.api_base_edit.setText("localhost:8000")
    dialog.page_list.setCurrentRow(3)
    dialog.button_box.button(dialog.button_box.StandardButton.Ok).click()
    assert dialog.isVisible()
    assert dialog.stack.currentWidget() is dialog.endpoint
    assert dialog.endpoint.messages.isVisible()
    assert "http://" in dialog.endpoint.messages.text()
    assert store.active.api_base == "http://localhost:8000/v1"  # nothing saved


def test_plain_http_to_another_machine_shows_the_unencrypted_warning(dialog):
    label = dialog.endpoint.unencrypted_label
    dialog.endpoint.api_base_edit.setText("http://gpu.example.org:8000/v1")
    assert label.isVisibleTo(dialog)
    assert "unencrypted" in label.text()
    dialog.grab().save(str(SHOTS / "settings_endpoint_http_warning.png"))
    dialog.endpoint.api_base_edit.setText("http://127.0.0.1:8000/v1")
    assert not label.isVisibleTo(dialog)


def test_no_keychain_offers_session_only_and_then_keeps_the_key(qtbot, store, no_keyring):
    keys = KeyStore()
    dlg = SettingsDialog(store, keys)
    qtbot.addWidget(dlg)
    dlg.show()
    page = dlg.endpoint
    # A local server with no key: nothing to say about keychains yet.
    assert not page.session_button.isVisibleTo(dlg)
    type_key(qtbot, page.api_key_edit, "sk-session-1")
    assert page.session_button.isVisibleTo(dlg)
    assert "No system keychain" in page.keychain_label.text()
    assert not dlg.apply()
    assert "cannot be saved" in page.messages.text()
    dlg.grab().save(str(SHOTS / "settings_endpoint_no_keychain.png"))
    page.session_button.click()
    assert dlg.apply()
    assert keys.get(store.active.id).reveal() == "sk-session-1"


def test_edits_are_saved_to_the_store_and_marked_as_user_values(dialog, store):
    dialog.pages["generation"].temperature_spin.setValue(0.2)
    dialog.pages["images"].long_side_spin.setValue(1536)
    dialog.pages["appearance"].theme_combo.setCurrentIndex(2)
    assert dialog.apply()
    again = ProfileStore()
    again.load()
    assert again.active.temperature == 0.2
    assert again.active.image_long_side == 1536
    assert {"temperature", "image_long_side"} <= again.active.user_set
    assert again.preferences.theme == "dark"


def test_restore_defaults_resets_the_current_page_only(dialog, store):
    gen = dialog.pages["generation"]
    gen.temperature_spin.setValue(1.5)
    dialog.endpoint.model_combo.setCurrentText("custom")
    dialog.page_list.setCurrentRow(1)
    dialog.restore_defaults()
    assert gen.temperature_spin.value() == Profile().temperature
    assert dialog.endpoint.model_combo.currentText() == "custom"


def test_preset_fills_but_keeps_the_users_model(dialog):
    dialog.endpoint.model_combo.setCurrentText("my-own-model")
    dialog.apply_preset("molmo-7b-d")
    assert dialog.endpoint.model_combo.currentText() == "my-own-model"
    assert dialog.pages["images"].max_images_spin.value() == 1
    assert dialog.pages["images"].vision_combo.currentData() == "yes"


def test_test_connection_emits_a_request_and_renders_the_report(dialog, qtbot, store):
    with qtbot.waitSignal(dialog.testConnectionRequested) as blocker:
        dialog.endpoint.test_button.click()
    request = blocker.args[0]
    assert isinstance(request, ConnectionRequest)
    assert request.api_base == "http://localhost:8000/v1"
    assert not dialog.endpoint.test_button.isEnabled()
    dialog.show_connection_result(
        ConnectionReport(
            health=Health("ok", 0.012, "/health answered"),
            models=[ModelInfo("qwen2.5-vl-7b", 32768), ModelInfo("lora-a", None)],
            server=ServerInfo("vllm", "0.33.0"),
            vision=False,
            vision_model="qwen2.5-vl-7b",
        )
    )
    text = dialog.endpoint.result_label.text()
    assert "Reachable (12 ms)" in text and "vLLM 0.33.0" in text
    assert "did not accept a test image" in text
    assert dialog.endpoint.test_button.isEnabled()
    assert dialog.endpoint.model_list.topLevelItemCount() == 2
    assert dialog.endpoint.model_list.topLevelItem(0).text(1) == "32,768"
    dialog.endpoint.pick_model("qwen2.5-vl-7b")
    assert dialog.endpoint.model_combo.currentText() == "qwen2.5-vl-7b"
    assert "32,768" in dialog.endpoint.model_info.text()
    assert store.cached_vision("http://localhost:8000/v1", "qwen2.5-vl-7b") is False
    reason = dialog.pages["images"].reason_label
    assert not reason.isHidden() and "qwen2.5-vl-7b did not accept" in reason.text()
    dialog.page_list.setCurrentRow(0)
    dialog.grab().save(str(SHOTS / "settings_endpoint_tested.png"))


def test_new_and_deleted_profiles_reach_the_store_on_apply(dialog, store):
    dialog.new_button.click()
    dialog.endpoint.name_edit.setText("Remote Gemma")
    dialog.endpoint.api_base_edit.setText("https://gpu.example.org/v1")
    dialog.profile_combo.setCurrentIndex(0)
    dialog.profile_combo.activated.emit(0)
    assert dialog.apply()
    assert store.names == ["Local vLLM", "Remote Gemma"]
    assert store.get("Remote Gemma").api_base == "https://gpu.example.org/v1"
    dialog.delete_button.click()
    assert dialog.apply()
    assert len(store.names) == 1


def test_import_renames_on_clash_and_reports_it(dialog, store, tmp_path):
    out = tmp_path / "p.json"
    store.export_profiles(out)
    dialog.import_file(str(out))
    assert store.names == ["Local vLLM", "Local vLLM (2)"]
    assert "renamed" in dialog.status_label.text()
    assert json.loads(store.path.read_text())["profiles"][1]["name"] == "Local vLLM (2)"


def test_profile_switcher_follows_the_store_and_emits_the_choice(qtbot, store):
    store.add(Profile(name="Molmo"))
    switcher = ProfileSwitcher(store)
    qtbot.addWidget(switcher)
    assert switcher.accessibleName()
    assert [switcher.itemText(i) for i in range(switcher.count())] == ["Local vLLM", "Molmo"]
    with qtbot.waitSignal(switcher.profileChanged) as blocker:
        switcher.activated.emit(1)
    assert blocker.args[0].name == "Molmo"
    assert store.active.name == "Molmo"
    assert json.loads(store.path.read_text())["active_profile"] == "Molmo"
    store.add(Profile(name="Third"))
    assert switcher.count() == 3
