"""The main window's toolbar, actions and menus, declared in one table.

Every action is a window shortcut (``Qt.WindowShortcut``) bound exactly once, so Ctrl+Enter
works from every input field (a second binding in a field made Qt call it ambiguous).
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QMainWindow, QToolBar, QToolButton

from kanoa_desktop.ui.profile_switcher import ProfileSwitcher
from kanoa_desktop.ui.qt_guard import guarded

_STD = QKeySequence.StandardKey


def _new_conversation(w) -> None:
    # Typed text must land somewhere: a new conversation starts in the Question field.
    w.new_conversation()
    w.inputs.question.setFocus(Qt.FocusReason.ShortcutFocusReason)


# attribute, text, slot, shortcut(s), object name, tooltip
ACTIONS: tuple[tuple, ...] = (
    ("open_action", "Open…", "open_dialog", _STD.Open, "openAction",
     "Open a figure, a table, a PDF or a notebook"),
    ("paste_action", "Paste", "paste", None, "pasteAction", "Paste a figure or a file (Ctrl+V)"),
    ("interpret_action", "Interpret", "interpret", ("Ctrl+Return", "Ctrl+Enter"),
     "interpretAction", "Interpret"),
    ("stop_action", "Stop", "stop", "Esc", "stopAction", "Stop the answer"),
    ("new_action", "New conversation", _new_conversation, "Ctrl+N", "newAction", ""),
    ("copy_action", "Copy answer", "copy_answer", "Ctrl+Shift+C", "copyAction",
     "Copy the conversation as Markdown"),
    ("request_action", "Show request", "show_request", None, "showRequestAction",
     "Show exactly what was sent"),
    ("compare_action", "Compare models…", "open_compare", None, "compareAction",
     "Ask 2 to 4 profiles or models the same question, side by side"),
    ("score_action", "Score models…", "open_score", None, "scoreAction",
     "Which model reads charts best: accuracy on a chart suite or your answer key"),
    ("batch_action", "Batch…", "open_batch", None, "batchAction",
     "Ask one question about every figure and table of a folder"),
    ("bench_action", "Benchmark endpoint…", "open_benchmark", None, "benchmarkAction",
     "Measure tokens/s and time to first token on kanoa's benchmark tasks"),
    ("settings_action", "Settings…", "open_settings", "Ctrl+,", "settingsAction", ""),
    ("quit_action", "Quit", "close", _STD.Quit, "quitAction", ""),
)  # fmt: skip

TOOLBAR = ("open_action", "paste_action", None, "interpret_action", "stop_action", None,
           "new_action", "copy_action", "request_action", "settings_action")  # fmt: skip
MENUS = (
    ("file_menu", "&File", ("open_action", "paste_action", "new_action", None, "quit_action")),
    ("question_menu", "&Question",
     ("interpret_action", "stop_action", "copy_action", "request_action")),
    ("view_menu", "&View", ()),
    ("tools_menu", "&Tools",
     ("compare_action", "score_action", "batch_action", None, "bench_action",
      "settings_action")),
)  # fmt: skip


def _action(w: QMainWindow, text, slot, shortcut, name, tip) -> QAction:
    a = QAction(text, w)
    a.setObjectName(name)
    keys = ""
    if shortcut:
        seqs = [QKeySequence(s) for s in (shortcut if isinstance(shortcut, tuple) else (shortcut,))]
        a.setShortcuts(seqs)
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        keys = f" ({seqs[0].toString()})"
    a.setToolTip(f"{tip or text}{keys}")
    # A slot is a window method's name, or a function of the window (opened lazily).
    a.triggered.connect(lambda *_: slot(w) if callable(slot) else getattr(w, slot)())
    w.addAction(a)
    return a


def chevron_icon(palette: QPalette, size: int = 16) -> QIcon:
    """The toolbar's overflow button: two chevrons in the palette's text colour (the
    style's own pixmap is dark grey, nearly invisible on a dark toolbar)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(palette.color(QPalette.ColorRole.ButtonText), 2.0)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    for x in (3.5, 8.5):
        p.drawPolyline([QPointF(x, 4), QPointF(x + 4, 8), QPointF(x, 12)])
    p.end()
    return QIcon(pix)


class _OverflowChevron(QObject):
    """Keeps the overflow button's chevron in the current scheme's text colour."""

    def __init__(self, toolbar: QToolBar) -> None:
        super().__init__(toolbar)
        self.toolbar = toolbar
        toolbar.installEventFilter(self)
        self.apply()

    def apply(self) -> None:
        button = self.toolbar.findChild(QToolButton, "qt_toolbar_ext_button")
        if button is not None:
            button.setIcon(chevron_icon(self.toolbar.palette()))
            button.setToolTip("More actions")
            button.setAccessibleName("More toolbar actions")

    @guarded(False)
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.apply()
        return False


def build_actions(w, docks) -> None:
    """Create the toolbar (with the profile switcher), actions and menus on window ``w``;
    ``docks`` get a toggle in the View menu."""
    tb = QToolBar("Main")
    tb.setObjectName("mainToolbar")
    tb.setMovable(False)
    w.addToolBar(tb)
    w.toolbar_chevron = _OverflowChevron(tb)
    w.profile_switcher = ProfileSwitcher(w.store)
    w.profile_switcher.setObjectName("profileSwitcher")
    w.profile_switcher.profileChanged.connect(w._on_profile_changed)
    tb.addWidget(QLabel(" Endpoint "))
    tb.addWidget(w.profile_switcher)
    tb.addSeparator()
    for attr, *spec in ACTIONS:
        setattr(w, attr, _action(w, *spec))
    for attr in TOOLBAR:
        tb.addSeparator() if attr is None else tb.addAction(getattr(w, attr))
    for attr, name, label in (("interpret_button", "interpretButton", "Interpret"),
                              ("stop_button", "stopButton", "Stop")):  # fmt: skip
        button = tb.widgetForAction(getattr(w, attr.replace("_button", "_action")))
        button.setObjectName(name)
        button.setAccessibleName(label)
        setattr(w, attr, button)
    w.stop_action.setEnabled(False)

    # Paste only where no text field wants Ctrl+V itself.
    w.paste_shortcut_action = QAction(w)
    w.paste_shortcut_action.setShortcut(QKeySequence.StandardKey.Paste)
    w.paste_shortcut_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    w.paste_shortcut_action.triggered.connect(lambda *_: w.paste())
    w.addAction(w.paste_shortcut_action)

    bar = w.menuBar()
    for attr, title, items in MENUS:
        menu = bar.addMenu(title)
        setattr(w, attr, menu)
        for item in items:
            menu.addSeparator() if item is None else menu.addAction(getattr(w, item))
    for dock in docks:
        w.view_menu.addAction(dock.toggleViewAction())
    with contextlib.suppress(ImportError):
        from kanoa_desktop.ui.help_menu import install_help_menu

        w.help_menu = install_help_menu(w)


__all__ = ["ACTIONS", "build_actions"]
