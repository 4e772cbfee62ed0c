"""The main window's non-modal dialogs: Show request, Settings, Benchmark endpoint.

Each is shown with ``show()``/``open()``, never ``exec()``: a nested event loop would stall
qasync's tasks.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Qt


def show_request(w):
    """Show request: the last request readable, with Copy as JSON / as curl."""
    from kanoa_desktop.ui.request_dialog import RequestDialog

    profile = w.profile
    dlg = RequestDialog(
        w.last_request, profile.api_base, has_key=w.keys.get(profile.id) is not None, parent=w
    )
    dlg.setObjectName("requestDialog")
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()  # non-modal
    return dlg


def open_settings(w):
    from kanoa_desktop.ui.settings import SettingsDialog
    from kanoa_desktop.ui.settings.connection import check_connection

    dlg = SettingsDialog(w.store, w.keys, w)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    async def run_check(req) -> None:
        from kanoa_desktop.ui.settings.connection import passed

        report = await check_connection(req, w.keys.get(req.profile_id))
        with contextlib.suppress(RuntimeError):  # the dialog may be gone
            dlg.show_connection_result(report)
        if passed(report) and req.profile_id == w.profile.id and req.api_base == w.profile.api_base:
            hide_first_run(w)  # the active profile answers: the card has done its job

    dlg.testConnectionRequested.connect(lambda req: w.spawn(run_check(req)))
    dlg.profilesSaved.connect(w._profiles_saved)
    dlg.open()  # no exec(): qasync must keep running
    return dlg


async def open_benchmark(w) -> None:
    """Tools > Benchmark endpoint: kanoa's per-task suite against the active profile, then
    the short chart-reading accuracy pass (its items kept in the history)."""
    import httpx

    from kanoa_desktop.core.bench.accuracy import AccuracyPass
    from kanoa_desktop.core.bench.speed import scraping_reader
    from kanoa_desktop.ui.bench_dialog import BenchmarkDialog

    profile = w.profile
    model, _ = await w.clients.resolve_model(profile)  # errors land in the banner
    vision = {"yes": True, "no": False}.get(profile.vision)
    if vision is None:
        vision = w.store.cached_vision(profile.api_base, model)  # None: the suite probes
    if w._misc_http is None:
        from kanoa_desktop.core.endpoint.tls import shared_verify

        w._misc_http = httpx.AsyncClient(verify=shared_verify())

    def accuracy(listener) -> AccuracyPass:  # the short chart-reading pass, kept in history
        return AccuracyPass(profile, w.services, model=model, vision=vision, listener=listener)

    dlg = BenchmarkDialog(
        w.clients.client_for(profile),
        model,
        vision=vision,
        metrics=scraping_reader(profile.effective_metrics_url, w._misc_http),
        accuracy=accuracy,
        parent=w,
    )
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()  # non-modal; it runs its suite as a task on this loop
    w.bench_dialog = dlg


#: While the first-run card shows, how often the active profile's server is asked again
#: (one small GET): the card goes as soon as it answers, however it was set up.
FIRST_RUN_RECHECK_S = 2.0


def hide_first_run(w) -> None:
    """Take the first-run card away (the active profile answers)."""
    card = getattr(w, "first_run", None)
    if card is not None:
        with contextlib.suppress(RuntimeError):  # deleted with the window
            card.hide()


async def _watch_first_run(w, server_answers) -> None:
    """Hide the card once the active profile answers: a server started meanwhile, a
    profile set up in Settings or chosen in the switcher, an answer that streamed."""
    import asyncio

    import shiboken6

    card = w.first_run
    while not w._closing and shiboken6.isValid(card) and card.isVisible():
        await asyncio.sleep(FIRST_RUN_RECHECK_S)
        if w._closing or not shiboken6.isValid(card) or not card.isVisible():
            return
        if await server_answers(w.profile, timeout_s=FIRST_RUN_RECHECK_S):
            hide_first_run(w)
            return


async def first_run_check(w) -> None:
    """Show the first-run card above the answer while the active server does not answer;
    it goes as soon as the active profile answers (its test passed, or it streamed)."""
    from kanoa_desktop.ui.preload import HTTP_STACK, after_first_paint, import_off_thread

    # Its module brings httpx: imported on a worker thread once the window is on screen.
    await after_first_paint(w)
    first_run = await import_off_thread("kanoa_desktop.ui.first_run", *HTTP_STACK)
    FirstRunCard, server_answers = first_run.FirstRunCard, first_run.server_answers  # noqa: N806

    if w._closing or await server_answers(w.profile) or w._closing:
        return
    if getattr(w, "first_run", None) is None:
        w.first_run = card = FirstRunCard(w.store, w)

        def done(_profile) -> None:
            card.hide()
            w.profile_switcher.refresh()
            w._on_profile_changed(w.store.active)

        # Never widen the window: the card wraps to whatever width the answer has.
        from PySide6.QtWidgets import QSizePolicy

        card.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        card.profileReady.connect(done)
        card.settingsRequested.connect(w.open_settings)
        w.answer_column.insertWidget(2, card)
    w.first_run.show()
    w.spawn(_watch_first_run(w, server_answers))


def open_document(w, item):
    """A PDF or a notebook: its picker lets the user take pages, crops or figures (a
    notebook's with the code of its cell, which goes with the figure)."""
    from kanoa_desktop.ui.pickers import show_picker_for

    def on_error(err) -> None:
        from kanoa_desktop.core.ask.pipeline import as_error

        w.banner.show_error(as_error(err), can_retry=False)

    return show_picker_for(
        item,
        parent=w,
        spawn=w.spawn,
        run_cpu=w.run_cpu,
        long_side=lambda: w.profile.image_long_side,
        add_figure=w.add_figure,
        on_error=on_error,
    )


def _tool_window(w, name: str, make):
    """The window's ``name`` tool window, made once by ``make()``; it closes (stopping what
    it runs) with the window. Shown and raised."""
    view = getattr(w, name, None)
    if view is None:
        view = make()
        setattr(w, name, view)
        w.closed.connect(view.close)
    view.show()
    view.raise_()
    view.activateWindow()
    return view


def open_compare(w):
    """Tools > Compare models…: made on the window's services; its first question takes
    the window's current inputs; its history entries refresh the window's lists."""
    from kanoa_desktop.ui.compare_view import CompareView

    def make():
        view = CompareView(w.store, w.services, inputs=lambda: w.current_inputs().copy(), parent=w)
        view.comparisonEnded.connect(lambda _ended: w._refresh_lists())
        return view

    return _tool_window(w, "compare_view", make)


def reopen_comparison(w, comparison_id: int):
    """A comparison from the history, whole, in the comparison window (None if gone)."""
    stored = w.history.load_comparison(comparison_id)
    if stored is None:
        w.banner.show_message("Comparison not found", "It may have been deleted.")
        return None
    view = open_compare(w)
    view.stop_all()
    view.show_stored(stored)
    return view


def open_score(w):
    """Tools > Score models…: made on the window's services and profiles. Closing the window
    stops a running score (what was scored is kept; Score with the same choices continues)."""
    from kanoa_desktop.ui.score_view import ScoreView

    return _tool_window(w, "score_view", lambda: ScoreView(w.store, w.services, parent=w))


def open_batch(w):
    """Tools > Batch…: made on the window's services and profiles. Closing the window
    cancels a running batch (finished items are kept; the same batch continues later)."""
    from kanoa_desktop.ui.batch_view import BatchView

    return _tool_window(w, "batch_view", lambda: BatchView(w.store, w.services, parent=w))


async def shutdown_extras(w) -> None:
    """Before the history closes: the comparison, score and batch windows record their
    stopped answers, and the first-run card's probes end."""
    import asyncio

    views = ("compare_view", "score_view", "batch_view")
    for view in (getattr(w, name, None) for name in views):
        if view is not None:
            with contextlib.suppress(RuntimeError):  # already deleted with its window
                await view.shutdown()
    card = getattr(w, "first_run", None)
    if card is not None:
        probes = [t for t in card._tasks if not t.done()]
        for t in probes:
            t.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
