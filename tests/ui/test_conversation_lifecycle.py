"""Ctrl+N, reopen and a profile switch in the middle of an answer; Ctrl+Enter from every
field; and every preference changes what the window shows (not just the settings file)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from kanoa_desktop.core.config.profiles import Preferences
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def _start_slow_answer(w, run, question="Tell me everything."):
    w.inputs.question.setPlainText(question)

    async def scenario():
        w.interpret()
        await wait_until(lambda: len(w.answer.markdown.split()) > 12, 20, "some text")

    run(scenario())
    return w.runner


def _assert_recorded_stopped(w, old_runner, note_part: str):
    conv = w.history.load_conversation(old_runner.conversation_id)
    assert conv is not None and len(conv.turns) == 1
    turn = conv.turns[0]
    assert turn.state == "stopped" and turn.answer.strip()  # the partial text, not empty
    assert turn.output_tokens and turn.output_tokens > 0  # and its stats
    assert note_part not in w.answer.toPlainText()  # nothing written into the new view


@pytest.mark.parametrize("how", ["ctrl_n", "reopen", "profile_switch"])
def test_leaving_a_conversation_mid_answer_records_it_and_leaves_a_clean_view(
    make_window, run, how
):
    with VLLMTestServer(tokens_per_second=15) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        # An earlier, finished conversation to reopen.
        w.inputs.question.setPlainText("First conversation.")

        async def first():
            w.interpret()
            await wait_until(lambda: not w.streaming and w.conversation.turns, 60)

        if how == "reopen":
            server.tokens_per_second = 2000
            run(first())
            earlier = w.runner.conversation_id
            QTest.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            server.tokens_per_second = 15
        old = _start_slow_answer(w, run)
        w.inputs.context.setPlainText("typed while it streamed")
        if how == "ctrl_n":
            QTest.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            note = "new conversation"
        elif how == "reopen":
            w.reopen_conversation(earlier)
            note = "another conversation"
        else:
            other = w.store.active.with_user_values(name="Other endpoint")
            from dataclasses import replace

            other = replace(other, id="other-profile-id")
            w.store.add(other)
            w.profile_switcher.refresh()
            w._on_profile_changed(w.store.get("Other endpoint"))
            note = "switched"
        assert w.runner is not old and not w.streaming
        run(wait_until(lambda: not old.busy, 10, "old turn ended"))
        assert w.interpret_action.isEnabled() and not w.stop_action.isEnabled()
        _assert_recorded_stopped(w, old, note)
        if how == "reopen":
            assert "First conversation." in w.answer.toPlainText()
            assert "Tell me everything." not in w.answer.toPlainText()
        else:
            assert w.answer.toPlainText() == ""
        # A new conversation starts empty: the old one's context is not sent with the next
        # question (reopen shows the reopened one's, none here).
        assert w.inputs.context.toPlainText() == "" and w.outbox.context == ""
        assert not w.status.state.text().startswith(("Stopped", "Error"))


@pytest.mark.parametrize("field", ["question", "context", "focus"])
def test_ctrl_enter_asks_from_every_input_field(make_window, run, field, capfd):
    with VLLMTestServer(answer_tokens=5) as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b")
        w.inputs.question.setPlainText("Ping?")
        widget = getattr(w.inputs, field)
        w.activateWindow()
        widget.setFocus()
        QTest.keyClick(widget, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        run(wait_until(lambda: w.conversation.turns and not w.streaming, 20, "asked"))
        assert server.received and server.received[-1].body["messages"][-1]["content"] == "Ping?"
    assert "Ambiguous shortcut" not in capfd.readouterr().err


def _set_prefs(w, **values):
    prefs = w.store.preferences
    from dataclasses import replace

    w.store.set_preferences(replace(prefs, **values))
    w.store.save()
    w._profiles_saved()  # what Settings > OK does


def test_theme_preference_changes_the_palette_at_once(make_window):
    w = make_window("http://127.0.0.1:9/v1", "m")
    _set_prefs(w, theme="dark")
    dark = QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness()
    _set_prefs(w, theme="light")
    light = QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness()
    assert dark < 100 < light


def test_font_size_preference_changes_the_font_at_once(make_window):
    w = make_window("http://127.0.0.1:9/v1", "m")
    _set_prefs(w, font_size_pt=17)
    QApplication.processEvents()  # the font change reaches widgets as an event
    assert QApplication.instance().font().pointSize() == 17
    assert QFont(w.answer.font()).pointSize() == 17
    _set_prefs(w, font_size_pt=None)
    assert QApplication.instance().font().pointSize() != 17


def test_gpu_panel_visibility_preference_hides_and_shows_the_dock(make_window):
    w = make_window("http://127.0.0.1:9/v1", "m")
    _set_prefs(w, gpu_panel_visible=False)
    assert not w.gpu_dock.isVisible()
    _set_prefs(w, gpu_panel_visible=True)
    assert w.gpu_dock.isVisible()


def test_poll_interval_and_nvml_apply_without_a_restart(make_window, run):
    w = make_window("http://127.0.0.1:9/v1", "m")
    before = w.gpu_panel.poller
    _set_prefs(w, gpu_poll_interval_s=5.0, local_nvml=False)
    after = w.gpu_panel.poller
    assert after is not before
    assert after.interval_s == 5.0 and after._gpu_reader is None  # NVML off: no reader


def test_the_profile_system_prompt_is_what_the_box_starts_from_and_what_is_sent(make_window, run):
    with VLLMTestServer(answer_tokens=5) as server:
        w = make_window(
            server.api_base, "qwen2.5-vl-7b", system_prompt="You are a terse geologist."
        )
        assert w.inputs.system_prompt.toPlainText() == "You are a terse geologist."
        w.inputs.question.setPlainText("Hi")

        async def scenario():
            w.interpret()
            await wait_until(lambda: w.conversation.turns and not w.streaming, 20)

        run(scenario())
        assert server.received[-1].body["messages"][0] == {
            "role": "system",
            "content": "You are a terse geologist.",
        }


def test_images_per_prompt_is_enforced_with_a_clear_message(
    make_window, run, sample_png, tmp_path
):
    from PIL import Image

    other = tmp_path / "other.png"
    Image.new("RGB", (64, 48), "navy").save(other)
    with VLLMTestServer() as server:
        w = make_window(server.api_base, "qwen2.5-vl-7b", max_images=1)

        async def scenario():
            w.open_paths([sample_png, sample_png, other])  # the same image once
            await wait_until(lambda: w.inputs.figures.count() == 2)
            w.interpret()
            await wait_until(lambda: not w.streaming and w.banner.isVisible(), 20)

        run(scenario())
        assert "at most 1 image" in w.banner.message.text()
        assert not [r for r in server.received if r.path.endswith("/chat/completions")]
        assert w.inputs.figures.count() == 2  # and nothing the user gave was lost


def test_preferences_default_matches_the_dataclass():
    # Guards the tests above: they flip each preference away from its default.
    p = Preferences()
    assert p.theme == "system" and p.gpu_panel_visible and p.local_nvml


def test_following_links_outside_the_knowledge_base_is_an_opt_in_kept_with_the_profile(
    make_window, run, tmp_path
):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "inside.md").write_text("# Inside\n\nAttached on purpose.\n")
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    (elsewhere / "secret.md").write_text("# Secret\n\nNever attached.\n")
    (folder / "link.md").symlink_to(elsewhere / "secret.md")
    w = make_window("http://127.0.0.1:9/v1", "m")
    panel = w.kb_panel
    assert not panel.follow_links.isChecked()  # off by default
    panel.set_folders([folder])

    def indexed():
        return panel.knowledge_base is not None and not panel.is_indexing()

    run(wait_until(indexed, 20, "indexed"))
    assert panel.knowledge_base.stats()["files"] == 1  # the link was skipped...
    tree = panel.report_view
    rows = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert any("link.md" in r for r in rows)  # ...and listed
    panel.follow_links.setChecked(True)  # the user opts in: re-indexed, kept in the profile
    run(wait_until(lambda: indexed() and panel.knowledge_base.stats()["files"] == 2, 20, "2"))
    assert w.store.active.kb_follow_links is True
    from kanoa_desktop.core.config.profiles import ProfileStore

    again = ProfileStore()
    again.load()
    assert again.get_by_id(w.profile.id).kb_follow_links is True
