"""Ctrl+N starts a new conversation in the Question field: typed text lands there."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.servers.vllm_server import VLLMTestServer


def test_ctrl_n_puts_the_focus_in_the_question_field(make_window, qtbot):
    with VLLMTestServer() as server:
        w = make_window(server.api_base, server.model)
        w.activateWindow()
        w.inputs.context.setFocus()
        w.inputs.context.setPlainText("E. coli in LB")
        qtbot.waitUntil(lambda: w.inputs.context.hasFocus())
        QTest.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: w.inputs.question.hasFocus(), timeout=5000)
        QTest.keyClicks(w.focusWidget(), "What is the lag phase?")
        assert w.inputs.question.toPlainText() == "What is the lag phase?"
        # The toolbar's button does the same.
        w.inputs.focus.setFocus()
        qtbot.waitUntil(lambda: w.inputs.focus.hasFocus())
        w.new_action.trigger()
        assert w.inputs.question.hasFocus()
