"""Take figures from a PDF: a strip of page thumbnails, a large page view to drag a crop
rectangle on, and the page's embedded images.

A non-modal dialog (shown with ``show()``, never ``exec()``: the app runs on qasync). Every
PDFium call (thumbnails, the page view, crops, images) runs through the window's
``run_cpu`` on its worker pool; the dialog only paints what comes back.

Signals:

- ``figuresChosen(list)``: a list of PreparedFigure, each time the user takes a page, a
  crop or an embedded image. The dialog stays open so several can be taken.
- ``failed(object)``: a typed error (title, message, hint) for the window's banner; it is
  also shown inside the dialog.

The dialog owns the PdfDocument it is given and closes it (on the pool) when it closes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.inputs.pdf import THUMBNAIL_LONG_SIDE, PdfDocument, PdfImageInfo
from kanoa_desktop.core.inputs.plan import PlanItem, PlanOptions, load, pdf_item
from kanoa_desktop.ui.qt_guard import guarded

Spawn = Callable[[Awaitable[Any]], Any]
RunCpu = Callable[..., Awaitable[Any]]
# The large page view is rendered at this long side (pixels); crops are rendered again at
# the profile's resolution from the PDF itself, not cut from this preview.
PREVIEW_LONG_SIDE = 1400
# Thumbnails beyond this many pages are not rendered (the strip still lists every page).
MAX_THUMBNAILS = 300
IMAGE_ICON_SIDE = 96
MIN_DRAG_PIXELS = 6


def _image_from_png(data: bytes) -> QImage:
    image = QImage()
    image.loadFromData(data, "PNG")
    return image


def _framed(image: QImage) -> QPixmap:
    """The page with a thin grey edge, so a white page shows where it ends."""
    pix = QPixmap.fromImage(image)
    if not pix.isNull():
        p = QPainter(pix)
        p.setPen(QPen(QColor(150, 150, 150), 1))
        p.drawRect(0, 0, pix.width() - 1, pix.height() - 1)
        p.end()
    return pix


class PageView(QWidget):
    """One page, scaled to fit; drag with the left button to select a rectangle.

    ``selectionChanged(object)``: the rectangle in page points (x0, y0, x1, y1; origin
    top-left), or None when cleared.
    """

    selectionChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pdfPageView")
        self.setAccessibleName("Page view: drag a rectangle around a figure")
        self.setMinimumSize(240, 240)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self._image = QImage()
        self._page_size = (0.0, 0.0)
        self._drag_from: QPointF | None = None
        self._drag_to: QPointF | None = None
        self._message = "Choose a page on the left."

    def set_message(self, text: str) -> None:
        self._message = text
        self.update()

    def set_page(self, image: QImage, page_size: tuple[float, float]) -> None:
        self._image = image
        self._page_size = page_size
        self.clear_selection()
        self.update()

    def clear_selection(self) -> None:
        had = self._drag_from is not None
        self._drag_from = self._drag_to = None
        self.update()
        if had:
            self.selectionChanged.emit(None)

    def image_rect(self) -> QRectF:
        """Where the page is drawn, in widget coordinates."""
        if self._image.isNull():
            return QRectF()
        w, h = self._image.width(), self._image.height()
        scale = min(self.width() / w, self.height() / h)
        dw, dh = w * scale, h * scale
        return QRectF((self.width() - dw) / 2, (self.height() - dh) / 2, dw, dh)

    def selection(self) -> tuple[float, float, float, float] | None:
        """The selected rectangle in page points, or None."""
        if self._drag_from is None or self._drag_to is None:
            return None
        area = self.image_rect()
        if area.isEmpty():
            return None
        sel = QRectF(self._drag_from, self._drag_to).normalized().intersected(area)
        if sel.width() < MIN_DRAG_PIXELS or sel.height() < MIN_DRAG_PIXELS:
            return None
        pw, ph = self._page_size
        sx, sy = pw / area.width(), ph / area.height()
        return (
            (sel.left() - area.left()) * sx,
            (sel.top() - area.top()) * sy,
            (sel.right() - area.left()) * sx,
            (sel.bottom() - area.top()) * sy,
        )

    @guarded()
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self._image.isNull():
            self._drag_from = self._drag_to = event.position()
            self.update()

    @guarded()
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self._drag_to = event.position()
            self.update()

    @guarded()
    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag_to = event.position()
            rect = self.selection()
            if rect is None:
                self._drag_from = self._drag_to = None
            self.update()
            self.selectionChanged.emit(rect)

    @guarded()
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if self._image.isNull():
            p.setPen(self.palette().text().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._message)
            p.end()
            return
        area = self.image_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(area, self._image)
        if self._drag_from is not None and self._drag_to is not None:
            sel = QRectF(self._drag_from, self._drag_to).normalized().intersected(area)
            p.fillRect(sel, QColor(30, 120, 255, 50))
            p.setPen(QPen(QColor(30, 120, 255), 2))
            p.drawRect(sel)
        p.end()


class PdfPicker(QDialog):
    """Pages, a crop view and embedded images of one PDF; takes figures from them."""

    figuresChosen = Signal(list)
    failed = Signal(object)

    def __init__(
        self,
        document: PdfDocument,
        *,
        spawn: Spawn,
        run_cpu: RunCpu,
        long_side: Callable[[], int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pdfPicker")
        self.setWindowTitle(f"Figures from {document.name}")
        self.setModal(False)
        self.document = document
        self._spawn = spawn
        self._run_cpu = run_cpu
        self._long_side = long_side
        self._tasks: set[Any] = set()
        self._page = -1
        self._images: list[PdfImageInfo] = []
        self._closed = False
        self.thumbnails_shown = 0  # pages whose thumbnail has replaced the placeholder

        self.pages = QListWidget(self)
        self.pages.setObjectName("pdfPages")
        self.pages.setAccessibleName("Pages")
        self.pages.setViewMode(QListView.ViewMode.IconMode)
        self.pages.setFlow(QListView.Flow.TopToBottom)
        self.pages.setWrapping(False)
        self.pages.setMovement(QListView.Movement.Static)
        self.pages.setIconSize(QSize(THUMBNAIL_LONG_SIDE, THUMBNAIL_LONG_SIDE))
        # A fixed grid: thumbnails arrive after the first layout, and items must not keep
        # the height they had as text only.
        self.pages.setGridSize(QSize(THUMBNAIL_LONG_SIDE + 16, THUMBNAIL_LONG_SIDE + 28))
        self.pages.setMinimumWidth(THUMBNAIL_LONG_SIDE + 40)
        self.pages.setMaximumWidth(THUMBNAIL_LONG_SIDE + 60)
        blank = QPixmap(THUMBNAIL_LONG_SIDE * 3 // 4, THUMBNAIL_LONG_SIDE)
        blank.fill(QColor(235, 235, 235))
        placeholder = QIcon(blank)  # shared: items have their size before thumbnails come
        for n in range(document.page_count):
            item = QListWidgetItem(placeholder, f"Page {n + 1}")
            item.setData(Qt.ItemDataRole.UserRole, n)
            item.setToolTip(f"Page {n + 1}: click to view, double-click to take it whole")
            self.pages.addItem(item)
        self.pages.currentRowChanged.connect(self._page_chosen)
        self.pages.itemDoubleClicked.connect(lambda _item: self.take_page())

        self.view = PageView(self)
        self.view.selectionChanged.connect(self._selection_changed)

        self.images = QListWidget(self)
        self.images.setObjectName("pdfImages")
        self.images.setAccessibleName("Embedded images on this page")
        self.images.setViewMode(QListView.ViewMode.IconMode)
        self.images.setIconSize(QSize(IMAGE_ICON_SIDE, IMAGE_ICON_SIDE))
        self.images.setMovement(QListView.Movement.Static)
        self.images.setGridSize(QSize(IMAGE_ICON_SIDE + 24, IMAGE_ICON_SIDE + 40))
        self.images.setMaximumHeight(IMAGE_ICON_SIDE + 48)
        self.images.itemDoubleClicked.connect(lambda _item: self.take_image())
        self.images.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.images_label = QLabel("Embedded images on this page:", self)

        self.take_page_button = QPushButton("Take page", self)
        self.take_page_button.setObjectName("takePageButton")
        self.take_page_button.setToolTip("Send the whole page as a figure")
        self.take_page_button.clicked.connect(self.take_page)
        self.take_crop_button = QPushButton("Take selection", self)
        self.take_crop_button.setObjectName("takeCropButton")
        self.take_crop_button.setToolTip("Drag a rectangle on the page first")
        self.take_crop_button.clicked.connect(self.take_crop)
        self.take_image_button = QPushButton("Take image", self)
        self.take_image_button.setObjectName("takeImageButton")
        self.take_image_button.clicked.connect(self.take_image)

        self.status = QLabel(self)
        self.status.setObjectName("pdfPickerStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        intro = (
            f"{document.page_count} page(s). Click a page to view it, double-click to take "
            "it whole, or drag a rectangle around a figure."
        )
        self.status.setText(" ".join([intro, *document.notes]))

        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.view, 1)
        rl.addWidget(self.images_label)
        rl.addWidget(self.images)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.pages)
        split.addWidget(right)
        split.setStretchFactor(1, 1)

        buttons = QHBoxLayout()
        buttons.addWidget(self.take_page_button)
        buttons.addWidget(self.take_crop_button)
        buttons.addWidget(self.take_image_button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(980, 720)
        self._update_buttons()
        self._start(self._render_thumbnails())
        if document.page_count:
            self.pages.setCurrentRow(0)

    # -- tasks ---------------------------------------------------------------------------

    def _start(self, coro) -> None:
        task = self._spawn(coro)
        if task is not None and hasattr(task, "add_done_callback"):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _report(self, err: BaseException) -> None:
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        hint = getattr(err, "hint", "")
        self.status.setText(f"{message} {hint}".strip())
        self.failed.emit(err)

    async def _render_thumbnails(self) -> None:
        for n in range(min(self.document.page_count, MAX_THUMBNAILS)):
            if self._closed:
                return
            try:
                png = await self._run_cpu(self.document.thumbnail, n)
            except Exception:  # noqa: BLE001 - a page that cannot render keeps its text label
                continue
            if self._closed:
                return
            self.pages.item(n).setIcon(QIcon(_framed(_image_from_png(png))))
            self.thumbnails_shown += 1

    # -- page view -----------------------------------------------------------------------

    def _page_chosen(self, row: int) -> None:
        if row < 0:
            return
        self._page = row
        self.view.set_page(QImage(), (0.0, 0.0))
        self.view.set_message(f"Rendering page {row + 1}…")
        self.images.clear()
        self._images = []
        self._update_buttons()
        self._start(self._show_page(row))

    async def _show_page(self, page: int) -> None:
        try:
            size = await self._run_cpu(self.document.page_size, page)
            png = await self._run_cpu(self.document.preview, page, PREVIEW_LONG_SIDE)
            infos = await self._run_cpu(self.document.list_images, page)
        except Exception as err:  # noqa: BLE001 - typed PdfError, or anything PDFium raised
            if page == self._page and not self._closed:
                self.view.set_message(f"Page {page + 1} cannot be shown.")
                self._report(err)
            return
        if page != self._page or self._closed:
            return  # the user moved on while this page rendered
        self.view.set_page(_image_from_png(png), size)
        self._images = infos
        self.images_label.setText(
            f"Embedded images on page {page + 1}: {len(infos)}"
            if infos
            else f"No embedded images on page {page + 1}."
        )
        for info in infos:
            w, h = info.pixel_size
            item = QListWidgetItem(f"Image {info.index + 1}\n{w}×{h}")
            item.setData(Qt.ItemDataRole.UserRole, info.index)
            self.images.addItem(item)
        self._update_buttons()
        for row, info in enumerate(infos):
            try:
                fig = await self._run_cpu(
                    lambda i=info: self.document.take_image(
                        i.page, i.index, long_side=IMAGE_ICON_SIDE
                    )
                )
            except Exception:  # noqa: BLE001 - the item stays, with its text
                continue
            if page != self._page or self._closed:
                return
            icon = QIcon(QPixmap.fromImage(QImage.fromData(fig.data)))
            self.images.item(row).setIcon(icon)

    def _selection_changed(self, rect) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_page = self._page >= 0
        self.take_page_button.setEnabled(has_page)
        self.take_crop_button.setEnabled(has_page and self.view.selection() is not None)
        self.take_image_button.setEnabled(self.images.currentRow() >= 0)
        self.images_label.setVisible(has_page)

    # -- taking figures ------------------------------------------------------------------

    def take_page(self) -> None:
        """Take the current page whole."""
        if self._page >= 0:
            self._take_item(pdf_item(self.document, self._page))

    def take_crop(self) -> None:
        """Take the rectangle dragged on the page view."""
        rect = self.view.selection()
        if self._page >= 0 and rect is not None:
            self._take_item(pdf_item(self.document, self._page, rect=rect))

    def take_image(self) -> None:
        """Take the embedded image chosen in the list."""
        row = self.images.currentRow()
        if 0 <= row < len(self._images):
            info = self._images[row]
            self._take_item(pdf_item(self.document, info.page, image=info.index))

    def _take_item(self, item: PlanItem) -> None:
        """Load an item of the input plan (core/inputs/plan.py) from the open document:
        the same image interpret and batch send for that page."""
        options, doc = PlanOptions(long_side=self._long_side()), self.document
        self._start(self._take(lambda: load([item], options, doc=doc).figures[0], item.label))

    async def _take(self, work: Callable[[], Any], what: str) -> None:
        self.status.setText(f"Preparing {what}…")
        try:
            fig = await self._run_cpu(work)
        except Exception as err:  # noqa: BLE001
            if not self._closed:
                self._report(err)
            return
        if self._closed:
            return
        w, h = fig.sent_size
        self.status.setText(f"Added {what} ({w}×{h}) to the figures.")
        self.figuresChosen.emit([fig])

    # -- closing -------------------------------------------------------------------------

    @guarded()
    def closeEvent(self, event) -> None:
        self._shutdown()
        super().closeEvent(event)

    @guarded()
    def done(self, result: int) -> None:  # Esc and the Close button end here
        self._shutdown()
        super().done(result)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        # Close on the pool: a render in flight holds the PDFium lock.
        self._spawn(self._close_document())

    async def _close_document(self) -> None:
        try:
            await self._run_cpu(self.document.close)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
