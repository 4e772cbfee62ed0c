"""The first-run card against real servers: probe, pick, use — a working, active profile."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.core.endpoint.discovery import START_A_SERVER_HINT
from kanoa_desktop.ui.first_run import FirstRunCard, server_answers
from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def _card(qtbot, store) -> FirstRunCard:
    card = FirstRunCard(store)
    qtbot.addWidget(card)
    card.resize(560, 320)
    return card


def _three_clicks(card: FirstRunCard, run, port: int) -> None:
    card.ports_edit.setText(str(port))
    QTest.mouseClick(card.probe_button, Qt.MouseButton.LeftButton)  # 1
    run(wait_until(lambda: not card.probing, 20, "probe"))
    row = next(i for i, f in enumerate(card.found) if f.port == port)
    item = card.server_list.item(row)
    rect = card.server_list.visualItemRect(item)
    QTest.mouseClick(card.server_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # 2
    assert card.server_list.currentRow() == row
    QTest.mouseClick(card.use_button, Qt.MouseButton.LeftButton)  # 3


@pytest.mark.llama
def test_finds_llama_server_on_a_non_default_port_and_makes_the_active_profile(
    qtbot, run, llama_server
):
    store = ProfileStore()
    store.load()
    assert not run(server_answers(store.active))  # nothing on vLLM's port 8000 here
    card = _card(qtbot, store)
    card.show()
    with qtbot.waitSignal(card.profileReady, timeout=60_000) as ready:
        _three_clicks(card, run, llama_server.port)
    profile = ready.args[0]
    assert profile.api_base == llama_server.api_base and profile.model == "smollm2"
    assert profile.preset == "llama.cpp"
    again = ProfileStore()
    again.load()  # saved, and active
    assert again.active.api_base == llama_server.api_base
    assert run(server_answers(again.active))
    assert "is now the active profile" in card.status.text()


def test_a_vllm_server_that_passes_becomes_the_active_profile(qtbot, run):
    store = ProfileStore()
    store.load()
    before = len(store.profiles)
    with VLLMTestServer() as server:
        card = _card(qtbot, store)
        card.show()
        with qtbot.waitSignal(card.profileReady, timeout=30_000) as ready:
            _three_clicks(card, run, server.port)
    assert ready.args[0].name == "vLLM (qwen2.5-vl-7b)"
    assert len(store.profiles) == before + 1 and store.active.id == ready.args[0].id
    assert store.cached_vision(server.api_base, "qwen2.5-vl-7b") is True


def test_a_server_that_fails_the_test_is_not_saved(qtbot, run):
    store = ProfileStore()
    store.load()
    active = store.active.id
    with VLLMTestServer() as server:
        card = _card(qtbot, store)
        card.show()
        card.ports_edit.setText(str(server.port))
        card.probe()
        run(wait_until(lambda: not card.probing, 20, "probe"))
        row = next(i for i, f in enumerate(card.found) if f.port == server.port)
        card.server_list.setCurrentRow(row)
    # The server is gone before Use: the connection test fails, nothing is saved.
    task = card.use_selected()
    run(task)
    assert "did not pass the connection test" in card.status.text()
    assert store.active.id == active and len(store.profiles) == 1


def test_nothing_answers_says_how_to_start_a_server(qtbot, run):
    store = ProfileStore()
    store.load()
    card = _card(qtbot, store)
    card._discover = lambda extra: __import__(
        "kanoa_desktop.core.endpoint.discovery", fromlist=["discover"]
    ).discover(ports=[free_port()])
    card.show()  # probes by itself when first shown
    run(wait_until(lambda: card.status.text() == START_A_SERVER_HINT, 20, "hint"))
    assert not card.server_list.isVisible() and not card.use_button.isEnabled()
    card.ports_edit.setText("80a")
    card.probe()
    assert "not a port number" in card.status.text()


def test_a_card_deleted_mid_probe_is_left_alone(qtbot, run):
    import asyncio

    store = ProfileStore()
    store.load()
    release = asyncio.Event()

    async def slow(extra):
        await release.wait()
        return []

    card = FirstRunCard(store, discover_fn=slow)
    card.show()  # starts a probe that waits
    task = next(iter(card._tasks))
    card.deleteLater()
    qtbot.wait(50)  # deleted now
    release.set()
    run(asyncio.sleep(0.05))
    assert task.done()
    assert task.cancelled() or task.exception() is None
