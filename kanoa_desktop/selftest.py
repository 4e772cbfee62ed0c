"""``kanoa-desktop --self-test``: check that this installation works, and say what fails.

For the frozen build (``make package-test`` runs it on the bundle: a missing Qt plugin, data
file or native library shows up here, not on a user's desktop) and for users reporting a
problem (paste the report into the issue). Each check prints one line::

    OK    image        PNG 640x480 -> image/png 640x480               0.03 s
    FAIL  server       Cannot reach http://localhost:8000/v1 ...       0.01 s

and :func:`run_self_test` returns 0 when every check passed, 1 otherwise. A check never
raises: whatever goes wrong becomes its FAIL line, and the next check still runs.

The window is built offscreen (``QT_QPA_PLATFORM=offscreen``) when there is no display, and
with a throwaway ``KANOA_DESKTOP_HOME``, so a self-test never changes the user's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kanoa_desktop import APP_NAME, __version__

DEFAULT_TIMEOUT_S = 60.0
STREAM_MAX_TOKENS = 16

# keyring's native backend per platform: it must be importable in a bundle even on a
# machine where it is not usable (a headless Linux box has no Secret Service).
NATIVE_KEYRING = {
    "linux": "keyring.backends.SecretService",
    "darwin": "keyring.backends.macOS",
    "win32": "keyring.backends.Windows",
}


@dataclass(frozen=True)
class CheckResult:
    """One line of the report. ``detail`` says what was found, or what failed and why."""

    name: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        status = "OK" if self.ok else "FAIL"
        return f"{status:<5} {self.name:<12} {self.detail}  ({self.seconds:.2f} s)"


class CheckFailed(Exception):
    """A check found something wrong; the message is the report's detail."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ") or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    t0 = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a self-test reports every failure, whatever it is
        detail = str(exc) if isinstance(exc, CheckFailed) else _one_line(exc)
        ok = False
    return CheckResult(name, ok, detail, time.perf_counter() - t0)


@contextlib.contextmanager
def _temporary_home() -> Iterator[Path]:
    """A throwaway KANOA_DESKTOP_HOME: the window may save its state; not into the user's."""
    old = os.environ.get("KANOA_DESKTOP_HOME")
    with tempfile.TemporaryDirectory(prefix="kanoa-selftest-") as tmp:
        os.environ["KANOA_DESKTOP_HOME"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("KANOA_DESKTOP_HOME", None)
            else:
                os.environ["KANOA_DESKTOP_HOME"] = old


# -- checks ---------------------------------------------------------------------------------


def check_window() -> str:
    """Build the main window on the app's qasync loop, show it, shut it down."""
    from kanoa_desktop.ui.app import (
        create_application,
        create_event_loop,
        display_problem,
        platform_library_problem,
    )

    if display_problem() or platform_library_problem():
        # No display (or the display's Qt plugin lacks libraries: the app names them at
        # start): the offscreen platform still loads Qt, its plugins and every widget.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = create_application([])
    from kanoa_desktop.ui.app import close_event_loop

    loop = create_event_loop(app)
    asyncio.set_event_loop(loop)
    size: tuple[int, int] = (0, 0)

    async def build() -> None:
        nonlocal size
        from kanoa_desktop.ui.main_window import MainWindow

        window = MainWindow()
        window.show()
        await asyncio.sleep(0.05)  # let Qt lay it out and the shown-widgets start
        size = (window.width(), window.height())
        # hide, not close: closing the last window would quit the app and stop the loop.
        window.hide()
        await window.shutdown()
        window.deleteLater()
        # Whatever the window left running (a GPU read orphaned by a cancelled poll) is
        # cancelled here, as asyncio.run does, not destroyed pending when the loop closes.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    try:
        with _temporary_home():
            loop.run_until_complete(build())
    finally:
        # close() stops qasync's default executor (QThreads): a QThread still running when
        # the process exits aborts it. close_event_loop also kills qasync's pending timers.
        close_event_loop(loop)
        # Leave no loop set (asking for the old one would create one nobody closes).
        asyncio.set_event_loop(None)
    if app.windowIcon().isNull():
        raise CheckFailed(
            "window built, but the application icon did not load (missing "
            "kanoa_desktop/resources/kanoa-desktop.svg or Qt's SVG icon plugin)"
        )
    return f"main window {size[0]}x{size[1]} on Qt platform {app.platformName()}, icon loaded"


def check_image() -> str:
    """Decode and prepare a generated PNG as the app does for a dropped figure."""
    from PIL import Image

    from kanoa_desktop.core.inputs.figures import prepare_figure

    im = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    fig = prepare_figure(buf.getvalue(), name="selftest.png")
    w, h = fig.sent_size
    return f"PNG 640x480 -> {fig.mime} {w}x{h}, {len(fig.data):,} bytes"


def check_svg() -> str:
    """Rasterise the app's own icon through resvg, as for a dropped SVG figure."""
    from kanoa_desktop.core.inputs.figures import prepare_figure

    svg = Path(__file__).resolve().parent / "resources" / "kanoa-desktop.svg"
    if not svg.exists():
        raise CheckFailed(f"the package's icon is missing: {svg}")
    fig = prepare_figure(svg.read_bytes(), name=svg.name)
    w, h = fig.sent_size
    return f"SVG -> {fig.mime} {w}x{h} (resvg)"


def check_pdf() -> str:
    """Open pdfium (a native library the knowledge base uses to read PDFs) and render."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    try:
        page = doc.new_page(200, 100)
        bitmap = page.render(scale=1)
        w, h = bitmap.width, bitmap.height
        page.close()
    finally:
        doc.close()
    from pypdfium2.version import PDFIUM_INFO, PYPDFIUM_INFO

    return f"pypdfium2 {PYPDFIUM_INFO} (pdfium {PDFIUM_INFO}) rendered a {w}x{h} page"


def check_plot() -> str:
    """Render a matplotlib plot of a small table (fonts and matplotlib data must load)."""
    import pandas as pd
    from PIL import Image

    from kanoa_desktop.core.inputs.tables import quick_plot

    frame = pd.DataFrame({"time": range(50), "signal": [(i % 10) ** 1.5 for i in range(50)]})
    png = quick_plot(frame, "time", "signal", "line", width_px=400, height_px=300)
    with Image.open(io.BytesIO(png)) as im:
        size = im.size
    import matplotlib

    return (
        f"matplotlib {matplotlib.__version__} ({matplotlib.get_backend()}) PNG {size[0]}x{size[1]}"
    )


def check_keyring() -> str:
    """Name the keychain backend; the platform's native backend must at least import."""
    import importlib

    from kanoa_desktop.core.config.secrets import KeychainState, KeyStore

    status = KeyStore().status()
    native = NATIVE_KEYRING.get(sys.platform)
    if native:
        try:
            importlib.import_module(native)
        except ImportError as exc:
            raise CheckFailed(
                f"backend {status.backend}; the native backend {native} cannot be imported "
                f"({_one_line(exc)}), so keys can never be saved in this installation"
            ) from exc
    usable = status.state is KeychainState.KEYCHAIN
    note = "usable" if usable else "not usable here: keys can be kept for the session only"
    return f"{status.backend} ({note})"


def check_certificates() -> str:
    """Load the CA certificates httpx verifies HTTPS servers with."""
    import certifi
    import httpx

    bundle = certifi.where()
    if not Path(bundle).is_file():
        raise CheckFailed(f"certifi's CA bundle is missing: {bundle}")
    ctx = ssl.create_default_context(cafile=bundle)
    count = ctx.cert_store_stats().get("x509_ca", 0)
    if not count:
        raise CheckFailed(f"certifi's CA bundle {bundle} holds no certificates")
    httpx.AsyncClient(verify=ctx)  # builds the transport with it; nothing is sent
    return f"{count} CA certificates from certifi {certifi.__version__}; {ssl.OPENSSL_VERSION}"


async def _stream_once(api_base: str, model: str | None, read_s: float) -> str:
    # Through the pipeline every face uses, on services of its own (nothing recorded).
    from kanoa_desktop.core.ask.pipeline import ConversationRunner
    from kanoa_desktop.core.ask.services import Services
    from kanoa_desktop.core.config.profiles import Profile
    from kanoa_desktop.core.endpoint.pool import ClientPool

    profile = Profile(name="self-test", api_base=api_base, model=model or "",
                      max_tokens=STREAM_MAX_TOKENS, temperature=0.0, request_timeout_s=read_s,
                      first_token_timeout_s=read_s, progress_timeout_s=read_s)  # fmt: skip
    services = Services(ClientPool())
    runner = ConversationRunner(profile, services)
    try:
        ended = await runner.ask("Reply with one short sentence: is this server working?")
    finally:
        await services.aclose()
    if ended.error is not None:
        raise ended.error
    if not ended.answer.strip() or ended.stats is None:
        raise CheckFailed(f"{runner.model} at {api_base} streamed no text")
    ttft = ended.stats.ttft_s
    ttft_text = f"{ttft * 1000:.0f} ms" if ttft is not None else "n/a"
    return f"{runner.model} at {api_base}: {ended.stats.output_tokens} tokens, TTFT {ttft_text}"


def check_server(api_base: str, model: str | None, timeout: float) -> str:
    """Stream a few tokens from ``api_base`` (the first model it lists unless ``model``)."""
    from kanoa_desktop.core.endpoint.errors import KanoaError

    async def bounded() -> str:
        return await asyncio.wait_for(_stream_once(api_base, model, timeout), timeout)

    # A fresh plain loop: the window check's qasync loop is gone by now.
    try:
        return asyncio.run(bounded())
    except KanoaError as err:
        raise CheckFailed(str(err)) from err
    except TimeoutError as err:
        raise CheckFailed(f"no complete answer from {api_base} within {timeout:g} s") from err


# -- report ---------------------------------------------------------------------------------


def header() -> str:
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "Python install"
    return (
        f"{APP_NAME} {__version__} self-test: Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()} ({frozen}, {sys.executable})"
    )


def run_self_test(
    server: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    model: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run every check, print the report to ``out`` (stdout), return 0 if all passed, else 1.

    ``server`` is an OpenAI-compatible API base (``http://host:8000/v1``); without it the
    streaming check is left out. ``timeout`` bounds the server check, in seconds.
    """
    from kanoa_desktop.cli.output import echo
    from kanoa_desktop.core.config.logs import log_path

    # Through the commands' one output function: a server's model name or error message
    # cannot send an escape sequence to the terminal.
    def say(text: str) -> None:
        echo(text, file=sys.stdout if out is None else out, flush=True)

    say(header())
    say(f"Log file: {log_path()}")
    checks: list[tuple[str, Callable[[], str]]] = [
        ("window", check_window),
        ("image", check_image),
        ("svg", check_svg),
        ("pdf", check_pdf),
        ("plot", check_plot),
        ("keyring", check_keyring),
        ("certificates", check_certificates),
    ]
    if server:
        checks.append(("server", lambda: check_server(server, model, timeout)))
    results = []
    for name, check in checks:
        result = _run(name, check)
        results.append(result)
        say(result.line())
    failed = [r.name for r in results if not r.ok]
    if failed:
        say(f"FAILED: {len(failed)} of {len(results)} checks ({', '.join(failed)})")
        return 1
    say(f"PASSED: all {len(results)} checks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kanoa-desktop --self-test",
        description="Check that this installation of kanoa desktop works; exit 0 or 1.",
    )
    parser.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server", metavar="URL", help="also stream from this API base (…/v1)")
    parser.add_argument("--model", help="model to stream from (default: the first listed)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds allowed for the server check (default {DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``kanoa-desktop --self-test [--server URL] [--model M] [--timeout S]``."""
    args, _unknown = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return run_self_test(args.server, args.timeout, model=args.model)


if __name__ == "__main__":
    sys.exit(main())
