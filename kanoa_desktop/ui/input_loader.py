"""Everything the window takes in: files, pasted or dropped images, browser drags, plots.

Decoding and parsing run on the window's worker pool (``run_cpu``), never on the GUI thread;
results and failures come back as signals the window renders. Only what the user chose is
read: a dropped file, the clipboard's image, or the one URL a browser drag carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QIODevice, QObject, QUrl, Signal
from PySide6.QtGui import QImage

from kanoa_desktop.core.endpoint import errors as E

MAX_REMOTE_IMAGE_BYTES = 50 * 1024 * 1024
REMOTE_IMAGE_DEADLINE_S = 60.0  # a server dripping bytes cannot hold a download longer

FIGURE_PATTERNS = "*.png *.jpg *.jpeg *.gif *.bmp *.tif *.tiff *.webp *.svg *.svgz"
TABLE_PATTERNS = "*.csv *.tsv *.tab *.txt *.xlsx *.parquet"
DOCUMENT_PATTERNS = "*.pdf *.ipynb"
FILE_FILTER = (
    f"Figures, tables, papers and notebooks ({FIGURE_PATTERNS} {TABLE_PATTERNS} "
    f"{DOCUMENT_PATTERNS});;"
    f"Figures ({FIGURE_PATTERNS});;Tables ({TABLE_PATTERNS});;"
    f"PDF papers and notebooks ({DOCUMENT_PATTERNS});;All files (*)"
)


LOADING_DELAY_MS = 300  # a load shorter than this shows no "Loading…" line

def qimage_png(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


class InputLoader(QObject):
    """Loads inputs off the GUI thread and reports them.

    ``loaded(item, summary)``: a PreparedFigure, a LoadedTable with its summary (the input
    plan's, as interpret and batch send it), or a PDF or notebook for its picker (whose
    items are the plan's too); ``tableRead(table)``: a table, as soon as it is
    read, before its summary is made (the window shows it meanwhile: its layout and paint
    run beside the summary instead of after it); ``failed(err)``: a KanoaError-like object
    with title/message/hint; ``loading(text)``: what is loading, sent only for a load that
    lasts LOADING_DELAY_MS (a quick one would flash it, and laying the panel out competed
    with the load), and "" when it is done.
    """

    loaded = Signal(object, str)  # item, table summary ("" for figures)
    tableRead = Signal(object)
    failed = Signal(object)
    loading = Signal(str)

    def __init__(
        self,
        spawn: Callable[[Awaitable[Any]], Any],
        run_cpu: Callable[..., Awaitable[Any]],
        long_side: Callable[[], int],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._spawn = spawn
        self._run_cpu = run_cpu
        self._long_side = long_side

    # -- files -----------------------------------------------------------------------------

    def open_paths(self, paths: list[Path]) -> None:
        for p in paths:
            self._spawn(self._load_path(Path(p)))

    def load_sheet(self, path: Path, sheet: str) -> None:
        """Load another sheet of a workbook (the table view's sheet chooser asked for it)."""
        self._spawn(self._load_path(Path(path), sheet))

    async def _load_path(self, path: Path, sheet: str | None = None) -> None:
        from kanoa_desktop.core.inputs.load import load_input
        from kanoa_desktop.core.inputs.plan import table_summary
        from kanoa_desktop.core.inputs.tables import LoadedTable

        done = self._announce(f"Loading {path.name}…")
        try:
            long_side = self._long_side()
            item = await self._run_cpu(lambda: load_input(path, long_side=long_side, sheet=sheet))
            summary = ""
            if isinstance(item, LoadedTable):
                pending = asyncio.ensure_future(self._run_cpu(table_summary, item))
                await asyncio.sleep(0)  # the summary is on the worker: show the table meanwhile
                self.tableRead.emit(item)
                summary = await pending
        except Exception as err:  # noqa: BLE001 - typed errors and anything else: a message
            self.failed.emit(err)
            return
        finally:
            done()
        self.loaded.emit(item, summary)

    def _announce(self, text: str) -> Callable[[], None]:
        """Say ``text`` on ``loading`` if the load still runs after LOADING_DELAY_MS; the
        returned function ends it ("" if it was said)."""
        from PySide6.QtCore import QTimer

        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self.loading.emit(text))
        timer.start(LOADING_DELAY_MS)

        def done() -> None:
            said = not timer.isActive()  # it fired: the line was said
            timer.stop()
            timer.deleteLater()
            if said:
                self.loading.emit("")

        return done

    async def load_bytes(self, data: bytes, name: str) -> None:
        from kanoa_desktop.core.inputs.figures import prepare_figure

        done = self._announce(f"Preparing {name}…")
        try:
            long_side = self._long_side()
            fig = await self._run_cpu(lambda: prepare_figure(data, long_side=long_side, name=name))
        except Exception as err:  # noqa: BLE001
            self.failed.emit(err)
            return
        finally:
            done()
        self.loaded.emit(fig, "")

    async def plot(self, table, x, y, kind: str):
        """A quick plot of ``table`` prepared like a dropped figure; None when it failed."""
        from kanoa_desktop.core.ask.interpret import plot_table

        self.loading.emit("Plotting…")
        try:
            long_side = self._long_side()
            return await self._run_cpu(lambda: plot_table(table, x, y, kind, long_side=long_side))
        except Exception as err:  # noqa: BLE001
            self.failed.emit(err)
            return None
        finally:
            self.loading.emit("")

    # -- drops and pastes ----------------------------------------------------------------

    def accept_mime(self, mime) -> bool:
        """Take figures and files from a drop or a paste. True if anything was taken."""
        local = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if local:
            self.open_paths(local)
            return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self._spawn(self.load_bytes(qimage_png(image), "pasted image"))
                return True
        remote = [u for u in mime.urls() if u.scheme() in ("http", "https")]
        if remote:
            self._spawn(self._fetch_remote(remote[0]))
            return True
        return False

    async def _fetch_remote(self, url: QUrl) -> None:
        """An image dragged from a browser that came as a link only: fetch it (capped)."""
        import httpx

        name = url.fileName() or "image from the web"
        self.loading.emit(f"Downloading {name}…")
        chunks: list[bytes] = []
        try:
            async with (
                asyncio.timeout(REMOTE_IMAGE_DEADLINE_S),
                httpx.AsyncClient(timeout=20.0, follow_redirects=True) as http,
            ):
                async with http.stream("GET", url.toString()) as resp:
                    resp.raise_for_status()
                    size = 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_REMOTE_IMAGE_BYTES:
                            raise E.KanoaError(
                                f"{name} is larger than 50 MB.",
                                "Save it and open the file instead.",
                            )
                        chunks.append(chunk)
        except TimeoutError:
            self.failed.emit(
                E.KanoaError(
                    f"Downloading {name} took longer than {REMOTE_IMAGE_DEADLINE_S:.0f} s.",
                    "Save the image and drop the file instead.",
                )
            )
            return
        except httpx.HTTPError as exc:
            self.failed.emit(
                E.KanoaError(
                    f"Cannot download the image {url.toString()}: {exc}",
                    "Save the image and drop the file instead.",
                )
            )
            return
        except E.KanoaError as err:
            self.failed.emit(err)
            return
        finally:
            self.loading.emit("")
        await self.load_bytes(b"".join(chunks), name)


__all__ = ["FILE_FILTER", "InputLoader", "qimage_png"]
