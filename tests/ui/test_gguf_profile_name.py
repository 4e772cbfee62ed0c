"""A llama-server started without --alias names its model by the GGUF's path: the first-run
card names the profile after the file, the toolbar keeps Settings in view, and history's
Model column shows the model, not the first letters of its folder."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QToolBar

from kanoa_desktop.core.config.profiles import ProfileStore
from kanoa_desktop.ui.first_run import FirstRunCard
from tests.conftest import _start_llama
from tests.servers.llama import smollm2_model
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def unnamed_llama(tmp_path_factory):
    server = _start_llama(tmp_path_factory, alias=None, parallel=1, ctx_size=2048)
    yield server
    server.stop()


def test_a_gguf_path_model_makes_a_short_profile_name_and_a_short_history_entry(
    unnamed_llama, qtbot, run, make_window
):
    store = ProfileStore()
    store.load()
    card = FirstRunCard(store)
    qtbot.addWidget(card)
    card.ports_edit.setText(str(unnamed_llama.port))
    card.probe()
    run(wait_until(lambda: not card.probing, 60, "probe"))
    row = next(i for i, f in enumerate(card.found) if f.port == unnamed_llama.port)
    card.server_list.setCurrentRow(row)
    with qtbot.waitSignal(card.profileReady, timeout=120_000) as ready:
        card.use_selected()
    profile = ready.args[0]
    served = card.found[row].model
    assert "/" in served or "\\" in served, served  # the server names the GGUF's path
    stem = smollm2_model().stem
    assert profile.name == f"llama.cpp ({stem})" and profile.model == served

    w = make_window(unnamed_llama.api_base, served, name=profile.name, max_tokens=4)
    w.resize(1280, 720)
    toolbar = w.findChild(QToolBar, "mainToolbar")
    settings = toolbar.widgetForAction(w.settings_action)
    run(wait_until(lambda: settings.isVisible(), 10, "toolbar laid out"))
    assert settings.mapTo(w, settings.rect().topRight()).x() <= w.width()
    assert w.profile_switcher.width() <= w.profile_switcher.maximumWidth() < 400
    w.inputs.question.setPlainText("Name one colour.")
    w.interpret()
    run(wait_until(lambda: w.streaming, 30, "asked"))
    run(wait_until(lambda: not w.streaming, 300, "answered"))
    run(wait_until(lambda: w.history_panel.list.topLevelItemCount() > 0, 30, "listed"))
    assert w.history_panel.list.topLevelItem(0).text(1) == stem
