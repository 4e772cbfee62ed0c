"""Figures from a PDF: whole pages, rectangles cropped from a page, embedded raster images.

Plain blocking functions and one document class (no Qt): the window runs every call on its
worker pool, the command line and a batch call them directly.

What a caller may rely on:

- :func:`open_pdf` refuses, with a :class:`PdfError` subclass naming the file, anything that
  is not a readable PDF: empty, not a PDF at all, damaged, encrypted (password), too large
  (``MAX_PDF_BYTES``) or without pages.
- Page numbers are 0-based in the API (``page``) and 1-based in every message and name.
- Page coordinates are PDF points (1/72 inch) of the page *as displayed* (its /Rotate
  applied), origin at the top-left corner, y growing downwards: what a viewer shows.
- Every render is sized by its output: a page or a crop is rendered so that its long side is
  the profile's ``long_side`` (never more than ``MAX_ZOOM`` times the page's natural size),
  so a hostile page size or a tiny crop cannot allocate a huge bitmap.
- Embedded images larger than ``MAX_PIXELS`` are listed but refused when taken, before they
  are decoded; at most ``MAX_IMAGES_PER_PAGE`` are listed per page, and images smaller than
  ``MIN_IMAGE_SIDE`` pixels (icons, masks, rules) are left out.
- Results are :class:`~kanoa_desktop.core.inputs.figures.PreparedFigure` objects made by
  :func:`~kanoa_desktop.core.inputs.figures.prepare_figure`, like any dropped figure.

PDFium is not thread-safe, not even across documents: every call into it here holds
:data:`PDFIUM_LOCK`, which the knowledge-base reader takes too.

Not bounded: the time PDFium takes to draw one very complex page (it has no timeout).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from kanoa_desktop.core.inputs.chosen import chosen_size, unreadable
from kanoa_desktop.core.inputs.figures import (
    MAX_PIXELS,
    FigureError,
    PreparedFigure,
    prepare_figure,
)

PDFIUM_LOCK = threading.RLock()
MAX_PDF_BYTES = 512 * 1024 * 1024
# Pages beyond this are not offered (a 100,000-page PDF is an attack, not a paper).
MAX_PAGES = 5000
# A crop is never rendered at more than this many times 72 dpi (576 dpi): more detail than
# the PDF holds for vector art is not needed, and it bounds the work for a tiny crop.
MAX_ZOOM = 8.0
THUMBNAIL_LONG_SIDE = 160
MAX_IMAGES_PER_PAGE = 64
MIN_IMAGE_SIDE = 32
MIN_CROP_POINTS = 2.0

Rect = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in page points, origin top-left (see the module docstring)."""


class PdfError(FigureError):
    """A PDF (or a page of it) cannot be used. ``message`` names the file; ``hint`` says
    what to do next."""

    title = "Cannot use this PDF"


class EmptyPdfError(PdfError):
    """0 bytes, or no pages."""


class NotAPdfError(PdfError):
    """The content is not a PDF, whatever the file is called."""


class CorruptPdfError(PdfError):
    """PDFium cannot parse the file."""


class EncryptedPdfError(PdfError):
    """The PDF needs a password, or uses a security handler PDFium does not support."""


class PdfTooLargeError(PdfError):
    """The file is larger than MAX_PDF_BYTES, or an embedded image than MAX_PIXELS."""


class PdfPageError(PdfError):
    """A page number or a crop rectangle outside the document."""


@dataclass(frozen=True)
class PdfImageInfo:
    """An embedded raster image: where it sits on its page and its native pixel size."""

    page: int  # 0-based
    index: int  # 0-based among the images listed for that page
    bbox: Rect  # page points, origin top-left (the page's /Rotate is not applied here)
    pixel_size: tuple[int, int]


def is_pdf(head: bytes) -> bool:
    """True when ``head`` (the file's first KiB) holds a PDF header."""
    return b"%PDF-" in head[:1024]


class PdfDocument:
    """An open PDF. Close it (or use ``with``) to release the file.

    Every method is blocking and holds :data:`PDFIUM_LOCK`; run them off the GUI thread.
    ``page_count`` is the number of pages offered (at most ``MAX_PAGES``);
    ``total_pages`` how many the file has; ``notes`` say what was left out.
    """

    def __init__(self, path: Path, doc, total_pages: int) -> None:
        self.path = path
        self.name = path.name
        self._doc = doc
        self.total_pages = total_pages
        self.page_count = min(total_pages, MAX_PAGES)
        self.notes: list[str] = []
        if total_pages > MAX_PAGES:
            self.notes.append(f"Only the first {MAX_PAGES:,} of {total_pages:,} pages are offered.")

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self._doc is not None:
                self._doc.close()
                self._doc = None

    def __enter__(self) -> PdfDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PdfDocument({self.name!r}, pages={self.page_count})"

    # -- pages ---------------------------------------------------------------------------

    def _page(self, page: int):
        if self._doc is None:
            raise PdfPageError(f"{self.name} was closed.", "Open it again.")
        if not 0 <= page < self.page_count:
            raise PdfPageError(
                f"{self.name} has no page {page + 1} (it has {self.page_count}).",
                f"Choose a page from 1 to {self.page_count}.",
            )
        try:
            return self._doc[page]
        except Exception as exc:  # noqa: BLE001 - PdfiumError or a damaged page tree
            raise CorruptPdfError(
                f"Page {page + 1} of {self.name} cannot be read ({exc}).",
                "Try another page, or re-export the PDF.",
            ) from exc

    def page_size(self, page: int) -> tuple[float, float]:
        """(width, height) of a page in points, as displayed (rotation applied)."""
        with PDFIUM_LOCK:
            p = self._page(page)
            try:
                w, h = p.get_size()
            finally:
                p.close()
        return float(w), float(h)

    def _render(self, page: int, long_side: int, rect: Rect | None):
        """Render the page (or ``rect`` of it) with its long side ``long_side`` pixels."""
        with PDFIUM_LOCK:
            p = self._page(page)
            try:
                w, h = (float(v) for v in p.get_size())
                if w <= 0 or h <= 0:
                    raise CorruptPdfError(
                        f"Page {page + 1} of {self.name} has no area.", "Try another page."
                    )
                x0, y0, x1, y1 = (0.0, 0.0, w, h) if rect is None else _clip(rect, w, h)
                if rect is None and min(w, h) < MIN_CROP_POINTS:
                    raise PdfPageError(
                        f"Page {page + 1} of {self.name} is {w:g} × {h:g} pt: too thin to "
                        "show as a figure.",
                        "Choose another page.",
                    )
                if x1 - x0 < MIN_CROP_POINTS or y1 - y0 < MIN_CROP_POINTS:
                    raise PdfPageError(
                        f"The rectangle on page {page + 1} of {self.name} is empty or "
                        "outside the page.",
                        "Drag a larger rectangle over the figure.",
                    )
                scale = min(long_side / max(x1 - x0, y1 - y0), MAX_ZOOM)
                # pypdfium2 crops are margins cut from each side, bottom and top included.
                bitmap = p.render(scale=scale, crop=(x0, h - y1, w - x1, y0))
                try:
                    return bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                p.close()

    def thumbnail(self, page: int, long_side: int = THUMBNAIL_LONG_SIDE) -> bytes:
        """A small PNG of the whole page (for a page strip)."""
        return _png(self._render(page, long_side, None))

    def preview(self, page: int, long_side: int) -> bytes:
        """A PNG of the whole page at ``long_side`` pixels (for a page view to crop on)."""
        return _png(self._render(page, long_side, None))

    def take_page(self, page: int, *, long_side: int) -> PreparedFigure:
        """The whole page as a figure, its long side ``long_side`` pixels."""
        image = self._render(page, long_side, None)
        return prepare_figure(
            _png(image), long_side=long_side, name=f"{self.name}, page {page + 1}"
        )

    def take_crop(self, page: int, rect: Rect, *, long_side: int) -> PreparedFigure:
        """``rect`` of a page (points, origin top-left) as a figure at ``long_side``."""
        image = self._render(page, long_side, rect)
        return prepare_figure(
            _png(image), long_side=long_side, name=f"{self.name}, page {page + 1} (crop)"
        )

    # -- embedded images -----------------------------------------------------------------

    def _image_objects(self, p) -> list:
        import pypdfium2 as pdfium

        found = []
        for obj in p.get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
            try:
                w, h = obj.get_px_size()
            except Exception:  # noqa: BLE001 - a broken image object is skipped
                continue
            if min(w, h) < MIN_IMAGE_SIDE:
                continue
            found.append((obj, (int(w), int(h))))
            if len(found) >= MAX_IMAGES_PER_PAGE:
                break
        return found

    def list_images(self, page: int) -> list[PdfImageInfo]:
        """The raster images drawn on a page, in drawing order (see the module limits)."""
        with PDFIUM_LOCK:
            p = self._page(page)
            try:
                _, h = p.get_size()
                out = []
                for i, (obj, size) in enumerate(self._image_objects(p)):
                    try:
                        left, bottom, right, top = obj.get_bounds()
                    except Exception:  # noqa: BLE001
                        left = bottom = right = top = 0.0
                    bbox = (float(left), float(h - top), float(right), float(h - bottom))
                    out.append(PdfImageInfo(page, i, bbox, size))
                return out
            finally:
                p.close()

    def take_image(self, page: int, index: int, *, long_side: int) -> PreparedFigure:
        """Embedded image ``index`` of ``list_images(page)`` as a figure, at its native
        resolution downscaled to ``long_side`` (masks and colour spaces applied)."""
        with PDFIUM_LOCK:
            p = self._page(page)
            try:
                objects = self._image_objects(p)
                if not 0 <= index < len(objects):
                    raise PdfPageError(
                        f"Page {page + 1} of {self.name} has no image {index + 1}.",
                        "Choose an image from the list.",
                    )
                obj, (w, h) = objects[index]
                if w * h > MAX_PIXELS:
                    raise PdfTooLargeError(
                        f"Image {index + 1} on page {page + 1} of {self.name} is {w}×{h} "
                        f"pixels, more than the {MAX_PIXELS / 1e6:.0f} MP limit.",
                        "Crop the region from the page view instead.",
                    )
                try:
                    # A "foreign" bitmap owned by PDFium: pypdfium2 frees it with the page.
                    image = obj.get_bitmap(render=True).to_pil().copy()
                except Exception as exc:  # noqa: BLE001 - unusual colour spaces, broken data
                    raise CorruptPdfError(
                        f"Image {index + 1} on page {page + 1} of {self.name} cannot be "
                        f"decoded ({exc}).",
                        "Crop the region from the page view instead.",
                    ) from exc
            finally:
                p.close()
        return prepare_figure(
            _png(image),
            long_side=long_side,
            name=f"{self.name}, page {page + 1}, image {index + 1}",
        )


def _clip(rect: Rect, w: float, h: float) -> Rect:
    x0, y0, x1, y1 = rect
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    return max(0.0, x0), max(0.0, y0), min(w, x1), min(h, y1)


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)  # re-encoded by prepare_figure: be quick
    return buf.getvalue()


def open_pdf(path: Path | str) -> PdfDocument:
    """Open a PDF for taking figures. Raises a :class:`PdfError` subclass for bad files."""
    import pypdfium2 as pdfium

    path = Path(path)
    label = path.name
    size = chosen_size(path, "a PDF", CorruptPdfError)
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise unreadable(path, exc, CorruptPdfError) from exc
    if size == 0:
        raise EmptyPdfError(f"{label} is empty (0 bytes).", "Check that it finished saving.")
    if size > MAX_PDF_BYTES:
        raise PdfTooLargeError(
            f"{label} is {size / 1e6:.0f} MB, more than the {MAX_PDF_BYTES / 1e6:.0f} MB "
            "limit for PDFs.",
            "Extract the pages you need into a smaller PDF.",
        )
    if not is_pdf(head):
        raise NotAPdfError(
            f"{label} is not a PDF (it has no PDF header).",
            "Check the file, or rename it to what it holds.",
        )
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            code = getattr(exc, "err_code", None)
            if code == pdfium.raw.FPDF_ERR_PASSWORD:
                raise EncryptedPdfError(
                    f"{label} is encrypted: it needs a password to open.",
                    "Save an unprotected copy (print to PDF) and open that.",
                ) from exc
            if code == pdfium.raw.FPDF_ERR_SECURITY:
                raise EncryptedPdfError(
                    f"{label} uses a security handler that cannot be opened here.",
                    "Save an unprotected copy (print to PDF) and open that.",
                ) from exc
            raise CorruptPdfError(
                f"{label} is damaged or not a valid PDF ({str(exc).strip()}).",
                "Re-download or re-export it and try again.",
            ) from exc
        try:
            total = len(doc)
        except Exception as exc:  # noqa: BLE001
            doc.close()
            raise CorruptPdfError(f"{label} has a damaged page tree.", "Re-export it.") from exc
        if total <= 0:
            doc.close()
            raise EmptyPdfError(f"{label} has no pages.", "Check the file.")
    return PdfDocument(path, doc, total)
