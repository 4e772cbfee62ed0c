"""The window at 900 × 600 with every dock open: it fits, the answer keeps a readable
width, the toolbar keeps Settings in view, and the dock tabs keep their whole titles."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QTabBar, QToolBar

from kanoa_desktop.ui.window_layout import ANSWER_MIN_WIDTH
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until


def test_at_900_by_600_the_window_fits_and_the_answer_is_not_squeezed(make_window, run, tmp_path):
    csv = tmp_path / "growth_curve_of_strain_B_in_LB_at_37C.csv"
    csv.write_text("hour,od600_replicate_one\n" + "".join(f"{h},{0.05 * 1.3**h:.4f}\n"
                                                         for h in range(30)))  # fmt: skip
    with VLLMTestServer(answer_tokens=30) as server:
        w = make_window(server.api_base, server.model)
        # A profile named as the first-run card names a llama.cpp server without --alias.
        w.store.update(w.profile.with_user_values(name="llama.cpp (Qwen2.5-VL-7B-Instruct-Q4_K_M)"))
        w.profile_switcher.refresh()
        for dock in w.findChildren(QDockWidget):
            dock.show()
        w.open_paths([csv])
        run(wait_until(lambda: w.outbox.table is not None, 60, "table"))
        w.resize(900, 600)
        run(wait_until(lambda: w.width() == 900, 10, "resized"))
        assert w.minimumSizeHint().width() <= 900
        try:
            run(wait_until(lambda: w.splitter.widget(1).width() >= ANSWER_MIN_WIDTH, 10,
                           "the answer keeps its room"))  # fmt: skip
        except AssertionError:
            docks = [
                (d.objectName(), d.width(), d.minimumSizeHint().width())
                for d in w.findChildren(QDockWidget)
                if d.isVisible()
            ]
            from PySide6.QtWidgets import QWidget

            wide = [
                (type(x).__name__, x.objectName(), x.minimumSizeHint().width())
                for x in w.inputs.findChildren(QWidget)
                if x.isVisible() and x.minimumSizeHint().width() > 150
            ]
            raise AssertionError(
                (w.splitter.sizes(), w.inputs.minimumSizeHint().width(), docks, wide)
            ) from None
        toolbar = w.findChild(QToolBar, "mainToolbar")
        settings = toolbar.widgetForAction(w.settings_action)
        assert settings is not None and settings.isVisible()
        right = settings.mapTo(w, settings.rect().topRight()).x()
        assert right <= w.width(), "Settings is on the toolbar, not behind the chevron"
        assert toolbar.widgetForAction(w.new_action).text() == "New"  # short in a narrow window
        assert w.new_action.text() == "New conversation"  # menus keep the whole name
        tabs = [b for b in w.findChildren(QTabBar) if b.parent() is w and b.isVisible()]
        assert tabs and all(b.elideMode().name == "ElideNone" for b in tabs)
        w.resize(1280, 720)
        run(wait_until(lambda: toolbar.widgetForAction(w.new_action).text()
                       == "New conversation", 10, "full labels again"))  # fmt: skip
