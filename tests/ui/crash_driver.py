"""Start the real app (``kanoa_desktop.__main__.main``) and end it badly, or see how it
comes back. Run by test_crash_record.py, offscreen, with KANOA_DESKTOP_HOME set.

    python tests/ui/crash_driver.py crash|abort|hang|restart|quit OUT_DIR

- ``crash``/``abort``/``hang``: once the window shows, type a question, context and
  focus, open Settings and change the profile's name and temperature (and type an API
  key) without applying, wait until the draft is on disk, print ``DRAFT SAVED``, then
  segfault (``ctypes.string_at(0)``), abort (``os.abort``), or block the GUI thread
  (the test kills the process once the watchdog has written the stacks).
- ``restart``: once the window shows, write what it shows to OUT_DIR/restart.json
  (the crash line, the fields, the Settings dialog) and a screenshot, then close the
  window normally (a clean end).
- ``quit``: type a question, wait for the draft, close the window normally.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

QUESTION = "Why does strain B plateau first?"
CONTEXT = "OD600 of three strains over 24 h, 30 °C."
FOCUS = "the last six hours"
PROFILE_NAME = "Lab server (not applied)"
SECRET = "sk-never-in-a-draft-123"


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QTimer

    from kanoa_desktop.core.config import recovery
    from kanoa_desktop.ui import main_window as mw

    recovery.WATCHDOG_S = 1.5  # the test waits for the hang's dump: not 5 s
    original_show = mw.MainWindow.show

    def show(w) -> None:
        original_show(w)
        QTimer.singleShot(300, lambda: act(w))

    def act(w) -> None:
        if mode == "restart":
            report(w, out)
            QTimer.singleShot(200, w.close)
            return
        w.inputs.question.setPlainText(QUESTION)
        w.inputs.context.setPlainText(CONTEXT)
        w.inputs.focus.setText(FOCUS)
        if mode != "quit":
            w.open_settings()
            dlg = w.settings_dialog
            dlg.endpoint.name_edit.setText(PROFILE_NAME)
            dlg.pages["generation"].temperature_spin.setValue(0.7)
            dlg.endpoint.api_key_edit.setText(SECRET)
            dlg.endpoint.api_key_edit.editingFinished.emit()
        session = w.recovery.session

        def wait_for_draft() -> None:
            text = session.draft_path.read_text("utf-8") if session.draft_path.exists() else ""
            if QUESTION not in text or (mode != "quit" and PROFILE_NAME not in text):
                QTimer.singleShot(100, wait_for_draft)
                return
            say("DRAFT SAVED")
            say(f"SESSION FILE {session.path}")
            if mode == "crash":
                import ctypes

                ctypes.string_at(0)  # SIGSEGV
            elif mode == "abort":
                os.abort()
            elif mode == "hang":
                say("HANGING")
                time.sleep(120)  # the GUI thread stuck; the test kills the process
            elif mode == "quit":
                w.close()

        w.recovery.save_draft()  # as the typing timer would, a second later
        wait_for_draft()

    mw.MainWindow.show = show
    from kanoa_desktop.__main__ import main as app_main

    return app_main([])


def report(w, out: Path) -> None:
    from PySide6.QtWidgets import QApplication

    notice = w.recovery.notice
    dlg = getattr(w, "settings_dialog", None)
    data = {
        "notice": notice.label.text() if notice is not None else None,
        "notice_visible": bool(notice is not None and notice.isVisible()),
        "buttons": [b.text() for b in (notice.open_log, notice.copy)] if notice else [],
        "diagnostics": notice.diagnostics() if notice is not None else "",
        "record": str(notice.end.record) if notice is not None else None,
        "kind": notice.end.kind if notice is not None else None,
        "question": w.inputs.question.toPlainText(),
        "context": w.inputs.context.toPlainText(),
        "focus": w.inputs.focus.text(),
        "settings_open": bool(dlg is not None and dlg.isVisible()),
        "settings_name": dlg.endpoint.name_edit.text() if dlg is not None else None,
        "settings_temperature": (
            dlg.pages["generation"].temperature_spin.value() if dlg is not None else None
        ),
        "settings_status": dlg.status_label.text() if dlg is not None else None,
        "saved_profile_name": w.store.active.name,
    }
    (out / "restart.json").write_text(json.dumps(data, indent=2), "utf-8")
    from kanoa_desktop.ui.theme import apply_appearance

    for scheme in ("light", "dark"):
        apply_appearance(QApplication.instance(), scheme)
        for width, height in ((1280, 720), (900, 600)):
            w.resize(width, height)
            QApplication.processEvents()
            w.grab().save(str(out / f"window-after-crash-{width}x{height}-{scheme}.png"))
    if dlg is not None:
        dlg.grab().save(str(out / "settings-restored.png"))


if __name__ == "__main__":
    raise SystemExit(main())
