"""The first-run card goes as soon as the active profile answers, however that came about,
and Settings shows the test result the card just got."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from kanoa_desktop.ui.settings.dialog import SettingsDialog
from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def _card_shown(w, run):
    run(wait_until(lambda: getattr(w, "first_run", None) is not None
                   and w.first_run.isVisible(), 60, "first-run card"))  # fmt: skip
    return w.first_run


def test_the_card_goes_when_the_active_servers_comes_up(make_window, run):
    port = free_port()
    w = make_window(f"http://127.0.0.1:{port}/v1", "qwen2.5-vl-7b")
    card = _card_shown(w, run)
    squeezed = w.answer.height()
    # The user starts the server the card told them about: nothing else is clicked.
    with VLLMTestServer(port=port):
        run(wait_until(lambda: not card.isVisible(), 30, "card gone once the server answers"))
        run(wait_until(lambda: w.answer.height() > squeezed, 10, "the answer takes the room"))


def test_the_card_goes_when_settings_tests_the_active_profile_and_settings_keeps_it(
    make_window, run, qtbot, monkeypatch
):
    from kanoa_desktop.ui import window_dialogs

    # Only the passed test can hide the card here: its own periodic look is off.
    monkeypatch.setattr(window_dialogs, "FIRST_RUN_RECHECK_S", 3600.0)
    port = free_port()
    w = make_window(f"http://127.0.0.1:{port}/v1", "qwen2.5-vl-7b")
    card = _card_shown(w, run)
    with VLLMTestServer(port=port):
        w.open_settings()
        dlg = w.settings_dialog
        dlg.endpoint.test_button.click()
        run(wait_until(lambda: "Reachable" in dlg.endpoint.result_label.text(), 60, "tested"))
        assert not card.isVisible()
        dlg.reject()
        w.open_settings()
        again = w.settings_dialog
        text = again.endpoint.result_label.text()
        again.reject()
    assert "Not tested yet" not in text and "Last test at" in text and "Reachable" in text


def test_settings_shows_the_test_the_first_run_card_just_ran(qtbot, run):
    from kanoa_desktop.core.config.profiles import ProfileStore
    from kanoa_desktop.core.config.secrets import KeyStore
    from kanoa_desktop.ui.first_run import FirstRunCard
    from tests.profiles.conftest import MemoryKeyring

    store = ProfileStore()
    store.load()
    with VLLMTestServer() as server:
        card = FirstRunCard(store)
        qtbot.addWidget(card)
        card.ports_edit.setText(str(server.port))
        card.probe()
        run(wait_until(lambda: not card.probing, 20, "probe"))
        card.server_list.setCurrentRow(
            next(i for i, f in enumerate(card.found) if f.port == server.port)
        )
        with qtbot.waitSignal(card.profileReady, timeout=30_000) as ready:
            card.use_selected()
    dlg = SettingsDialog(store, KeyStore(backend=MemoryKeyring()))
    qtbot.addWidget(dlg)
    assert dlg.current_profile().id == ready.args[0].id
    text = dlg.endpoint.result_label.text()
    assert "Not tested yet" not in text
    assert "Reachable" in text and "vLLM" in text and "can see" in text
    QApplication.processEvents()
