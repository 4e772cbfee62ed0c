"""Drive the real window on a real X server (Xvfb, Qt's xcb platform). Run by test_xvfb.py.

    DISPLAY=:N QT_QPA_PLATFORM=xcb python tests/ui/xvfb_driver.py API_BASE CSV PNG OUT_DIR

Loads a CSV and a figure with every dock open, asks with Ctrl+Enter from the question field
(keys through Qt's window-system path, as X delivers them), follows up until the answer
overflows its view, then takes screenshots of the X screen in light and dark. Writes what
it measured to OUT_DIR/result.json; the test asserts on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDockWidget

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kanoa_desktop.ui.app import create_application, create_event_loop  # noqa: E402


def log(text: str) -> None:
    print(f"[driver] {text}", file=sys.stderr, flush=True)


async def until(predicate, timeout: float, what: str) -> None:
    log(f"waiting for {what}")
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


FOLLOW_UP = "In one sentence: when does the growth slow down?"


def record_earlier_conversation(w, table_name: str) -> int:
    """A finished conversation in the window's history: forty short lines of answer."""
    from kanoa_desktop.core.endpoint.chat import user_message

    question = "Interpret the growth curve."
    rec = w.history.begin_turn(
        None,
        user_message=user_message(question),
        question=question,
        model="smollm2",
        table_name=table_name,
        focus="the growth phases",
    )
    lines = [f"- Hour {h / 2:.1f}: the optical density is {0.05 * 1.35 ** (h / 2):.3f}."
             for h in range(40)]  # fmt: skip
    rec.append("The culture grows exponentially, then slows.\n\n" + "\n".join(lines))
    rec.finish("done", "stop")
    return rec.conversation_id


def size(widget) -> list[int]:
    return [widget.width(), widget.height()]


async def ask_with_ctrl_enter(w, text: str) -> str:
    """Ask with Ctrl+Enter; returns how the turn ended (done, stopped, error: ...)."""
    from kanoa_desktop.core.ask.pipeline import TurnEnded

    events: list = []
    runner = w.runner
    runner.subscribe(events.append)
    if os.environ.get("KANOA_DRIVER_DEBUG"):
        runner.subscribe(lambda e: log(f"event {type(e).__name__} {getattr(e, 'state', '')}"))
    w.inputs.question.setPlainText(text)
    if not w.isActiveWindow():
        # No window manager on Xvfb: ask X for the input focus ourselves.
        w.activateWindow()
        await until(w.isActiveWindow, 5, "the window to become active")
    w.inputs.question.setFocus()
    await until(lambda: w.inputs.question.hasFocus(), 5, "focus in the question field")
    # Through the QWindow: Qt's window-system event path, shortcuts included. From a loop
    # callback, not from this task: QTest processes events while sending, and the ask it
    # starts is a task of its own (qasync refuses to step a task inside another).
    asyncio.get_running_loop().call_soon(
        QTest.keyClick, w.windowHandle(), Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier
    )
    await until(lambda: events, 10, "Ctrl+Enter to start a turn")
    await until(lambda: any(isinstance(e, TurnEnded) for e in events), 240, "the turn to end")
    await until(lambda: not w.streaming, 10, "the window to be idle")
    runner.unsubscribe(events.append)
    ended = next(e for e in events if isinstance(e, TurnEnded))
    return ended.state + (f": {ended.error}" if ended.error else "")


async def set_theme(w, theme: str) -> None:
    w.store.set_preferences(dataclasses.replace(w.store.preferences, theme=theme))
    w.apply_preferences()  # the window's own wiring of Preferences > theme
    await asyncio.sleep(0.6)  # repaint, and let the GPU panel plots redraw


def grab_screen(path: Path) -> list[int]:
    """The X screen's pixels (the root window), not the widget's own rendering."""
    screen = QGuiApplication.primaryScreen()
    shot = screen.grabWindow(0)
    shot.save(str(path))
    return [shot.width(), shot.height()]


async def main(api_base: str, csv: Path, png: Path, out: Path) -> dict:
    from kanoa_desktop.ui.main_window import MainWindow

    result: dict = {}
    w = MainWindow()
    try:
        p = w.store.active.with_user_values(
            name="llama.cpp (SmolLM2)",
            api_base=api_base,
            model="smollm2",
            max_tokens=48,
            temperature=0.2,
            vision="no",  # SmolLM2 reads text only: the figure stays on screen, not sent
        )
        w.store.update(p)
        w.store.save()
        w.profile_switcher.refresh()
        w._on_profile_changed(w.store.active)
        await set_theme(w, "light")
        w.resize(1280, 720)
        w.show()
        for dock in w.findChildren(QDockWidget):
            dock.show()  # every dock open (they tab on the right)
        await until(lambda: w.isVisible() and w.windowHandle().isExposed(), 10, "exposed")
        await asyncio.sleep(0.5)
        screen = QGuiApplication.primaryScreen().geometry()
        result["screen"] = [screen.width(), screen.height()]
        result["docks_open"] = [d.objectName() for d in w.findChildren(QDockWidget)
                                if d.isVisible()]  # fmt: skip
        result["size_before"] = size(w)

        # An earlier conversation, reopened from the history, longer than the answer view:
        # the follow-up's answer must end in view. (One real question, not several: the
        # server here is a 135M model on two shared cores.)
        conv_id = record_earlier_conversation(w, csv.name)
        w.reopen_conversation(conv_id)
        await asyncio.sleep(0.3)

        w.open_paths([csv, png])
        await until(lambda: w.outbox.table is not None, 30, "the CSV")
        await until(lambda: len(w.inputs.figures.figures()) >= 1, 30, "the figure")
        await asyncio.sleep(1.0)  # layouts settle; a growing window would have grown now
        result["size_after_load"] = size(w)
        result["minimum_after_load"] = [w.minimumSizeHint().width(), w.minimumSizeHint().height()]
        result["frame_after_load"] = [w.frameGeometry().right() + 1,
                                      w.frameGeometry().bottom() + 1]  # fmt: skip

        bar = w.answer.verticalScrollBar()
        bar.setValue(0)  # the user reads the earlier answer from its top
        result["scroll_before_ask"] = [bar.value(), bar.maximum()]
        result["turns"] = [await ask_with_ctrl_enter(w, FOLLOW_UP)]
        await asyncio.sleep(0.5)
        result["asks"] = len(result["turns"])
        text = w.answer.toPlainText()
        result["answer_chars"] = len(text)
        result["follow_up_shown"] = FOLLOW_UP in text
        result["new_answer_chars"] = len(text) - text.rfind(FOLLOW_UP) - len(FOLLOW_UP)
        result["scroll"] = [bar.value(), bar.maximum()]
        end = w.answer.document().characterCount() - 1
        cursor = w.answer.textCursor()
        cursor.setPosition(end)
        rect = w.answer.cursorRect(cursor)
        result["end_visible"] = w.answer.viewport().rect().contains(rect.center())
        result["size_after_answers"] = size(w)
        result["state"] = w.status.state.text()

        QApplication.processEvents()
        result["light_shot"] = grab_screen(out / "light.png")
        w.grab().save(str(out / "window-light.png"))
        await set_theme(w, "dark")
        result["dark_shot"] = grab_screen(out / "dark.png")
        w.grab().save(str(out / "window-dark.png"))
        result["window_geometry"] = [w.x(), w.y(), w.width(), w.height()]
        from PySide6.QtWidgets import QLabel

        name = next(lab for lab in w.gpu_panel.findChildren(QLabel) if lab.text() == "Requests")
        top_left = name.mapToGlobal(name.rect().topLeft())
        result["gpu_label_rect"] = [top_left.x(), top_left.y(), name.width(), name.height()]
    finally:
        await w.shutdown()
        w.close()
    return result


if __name__ == "__main__":
    api_base, csv, png, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    app = create_application()
    loop = create_event_loop(app)
    with loop:
        res = loop.run_until_complete(main(api_base, csv, png, out))
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))
