"""Drive the real window on a qasync loop, offscreen.

Tests are plain functions that run a scenario coroutine with ``run(scenario())`` on a
qasync loop bound to pytest-qt's QApplication, as the app itself runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from pathlib import Path

import pytest

from kanoa_desktop.ui.app import close_event_loop, create_event_loop


@pytest.fixture
def qloop(qapp, qtbot):
    """A qasync loop marked running on pytest-qt's QApplication.

    Marked running (``already_running=True``) because pytest-qt processes Qt events between
    and around tests: qasync steps tasks from Qt events, and they must always find their
    loop, exactly as in the app where the loop runs for the window's whole life.
    """
    loop = create_event_loop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop

    # Let the loop finish what it runs, and finalise abandoned async generators (httpx's
    # byte iterators) while it can still run their aclose(), as the app does at exit.
    def pending():
        return [t for t in asyncio.all_tasks(loop) if not t.done()]

    gc.collect()
    with contextlib.suppress(Exception):
        qtbot.waitUntil(lambda: not pending(), timeout=5_000)
    agens = asyncio.ensure_future(loop.shutdown_asyncgens(), loop=loop)
    qtbot.waitUntil(agens.done, timeout=5_000)
    left = pending()
    for t in left:
        t.cancel()
    if left:
        qtbot.waitUntil(lambda: all(t.done() for t in left), timeout=10_000)
    asyncio.events._set_running_loop(None)
    # close() refuses a running loop: mark it stopped the way run_forever's exit does
    # (loop.stop() would call QApplication.exit(), which ends pytest-qt's later waits).
    loop._QEventLoop__is_running = False
    close_event_loop(loop)
    asyncio.set_event_loop(None)


@pytest.fixture
def run(qloop, qtbot):
    """Run a coroutine to its end on the loop, spinning Qt meanwhile; return its result."""

    def _run(coro, timeout: float = 60.0):
        fut = asyncio.ensure_future(coro, loop=qloop)
        qtbot.waitUntil(fut.done, timeout=int(timeout * 1000))
        return fut.result()

    return _run


async def wait_until(predicate, timeout: float = 10.0, message: str = "") -> None:
    """Await until ``predicate()`` is true, keeping the loop (and Qt) running."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
def make_window(qloop, run):
    """Build a MainWindow pointed at ``api_base`` (and ``model``) inside the running loop,
    as the app does; shut it down, close and delete it after the test."""
    from kanoa_desktop.ui.main_window import MainWindow

    made = []

    async def _create(api_base: str, model: str, profile_values: dict):
        w = MainWindow()
        p = w.store.active.with_user_values(api_base=api_base, model=model, **profile_values)
        w.store.update(p)
        w.store.save()
        w.profile_switcher.refresh()
        w._on_profile_changed(w.store.active)
        w.show()
        await asyncio.sleep(0)
        return w

    def _make(api_base: str, model: str = "", **profile_values):
        w = run(_create(api_base, model, profile_values))
        made.append(w)
        return w

    yield _make
    for w in made:
        run(w.shutdown())
        w.close()
        w.deleteLater()


@pytest.fixture
def sample_png(tmp_path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2, 3], [1, 4, 9, 16], label="y = x²")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("signal")
    ax.legend()
    path = tmp_path / "plot.png"
    fig.savefig(path)
    return path


@pytest.fixture
def sample_csv(tmp_path) -> Path:
    path = tmp_path / "growth.csv"
    lines = ["day,temperature,od600"] + [
        f"{d},{20 + d * 0.5:.1f},{0.05 * 1.3**d:.4f}" for d in range(40)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
