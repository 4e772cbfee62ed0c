"""Figures from PDFs: pages, crops and embedded images on PDFs made with fpdf2, checked
by their pixels; bad PDFs give typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from kanoa_desktop.core.inputs.figures import FigureError
from kanoa_desktop.core.inputs.pdf import (
    MAX_ZOOM,
    CorruptPdfError,
    EmptyPdfError,
    EncryptedPdfError,
    NotAPdfError,
    PdfPageError,
    PdfTooLargeError,
    open_pdf,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)


def _embedded_png() -> bytes:
    arr = np.zeros((100, 200, 3), np.uint8)
    arr[:, :100] = BLUE
    arr[:, 100:] = GREEN
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _paper(path, pages: int = 2):
    """Page 1 (600×400 pt): a red 200×100 pt rectangle at (100, 50) and a 200×100 px
    blue|green image at (350, 250). Later pages: a black square."""
    pdf = FPDF(unit="pt", format=(600, 400))
    pdf.add_page()
    pdf.set_fill_color(*RED)
    pdf.rect(100, 50, 200, 100, style="F")
    pdf.image(io.BytesIO(_embedded_png()), x=350, y=250, w=200, h=100)
    for _ in range(pages - 1):
        pdf.add_page()
        pdf.set_fill_color(0, 0, 0)
        pdf.rect(250, 150, 100, 100, style="F")
    pdf.output(str(path))
    return path


def _pixels(fig) -> Image.Image:
    im = Image.open(io.BytesIO(fig.data))
    im.load()
    return im.convert("RGB")


def _near(a, b, tol=12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_page_is_taken_whole_at_the_profile_long_side(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        assert (doc.page_count, doc.page_size(0)) == (2, (600.0, 400.0))
        fig = doc.take_page(0, long_side=900)
    assert fig.sent_size == (900, 600) and fig.name == "paper.pdf, page 1"
    im = _pixels(fig)
    # The red rectangle at (100..300, 50..150) pt is at 1.5 px per point.
    assert _near(im.getpixel((300, 150)), RED)
    assert _near(im.getpixel((30, 30)), (255, 255, 255))
    assert _near(im.getpixel((600, 450)), BLUE) and _near(im.getpixel((780, 450)), GREEN)


def test_crop_of_a_rectangle_holds_only_that_region(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        fig = doc.take_crop(0, (100, 50, 300, 150), long_side=1024)
    assert fig.sent_size == (1024, 512) and fig.name.endswith("(crop)")
    arr = np.asarray(_pixels(fig)).astype(int)
    red = (arr[..., 0] > 230) & (arr[..., 1] < 25) & (arr[..., 2] < 25)
    assert red.mean() > 0.97  # nothing but the red rectangle


def test_crop_across_the_embedded_image_keeps_its_colours_in_place(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        # The image's right half (green) and the white page to its right.
        fig = doc.take_crop(0, (450, 250, 600, 350), long_side=300)
    im = _pixels(fig)
    assert im.size == (300, 200)
    assert _near(im.getpixel((100, 100)), GREEN)
    assert _near(im.getpixel((280, 100)), (255, 255, 255))


def test_a_tiny_crop_is_rendered_at_most_at_max_zoom(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        fig = doc.take_crop(0, (150, 80, 160, 85), long_side=2048)
    assert fig.sent_size == (int(10 * MAX_ZOOM), int(5 * MAX_ZOOM))


def test_crop_outside_the_page_and_missing_pages_are_typed(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        with pytest.raises(PdfPageError):
            doc.take_crop(0, (700, 500, 900, 600), long_side=512)
        with pytest.raises(PdfPageError) as err:
            doc.take_page(5, long_side=512)
        assert "no page 6" in err.value.message and "1 to 2" in err.value.hint


def test_embedded_images_are_listed_and_taken_at_native_size(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        infos = doc.list_images(0)
        assert len(infos) == 1 and doc.list_images(1) == []
        info = infos[0]
        assert info.pixel_size == (200, 100)
        assert info.bbox == pytest.approx((350, 250, 550, 350), abs=0.5)
        fig = doc.take_image(0, 0, long_side=1024)
    assert fig.sent_size == (200, 100)  # never upscaled
    im = _pixels(fig)
    assert im.getpixel((50, 50)) == BLUE and im.getpixel((150, 50)) == GREEN


def test_thumbnails_are_small_pngs(tmp_path):
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        im = Image.open(io.BytesIO(doc.thumbnail(1)))
    assert im.format == "PNG" and im.size == (160, 107)
    assert _near(im.convert("RGB").getpixel((80, 53)), (0, 0, 0))


def test_rotated_page_uses_displayed_coordinates(tmp_path):
    import pypdfium2 as pdfium

    src = _paper(tmp_path / "paper.pdf", pages=1)
    doc = pdfium.PdfDocument(str(src))
    doc[0].set_rotation(90)
    doc.save(str(tmp_path / "rotated.pdf"))
    doc.close()
    with open_pdf(tmp_path / "rotated.pdf") as rotated:
        assert rotated.page_size(0) == (400.0, 600.0)
        fig = rotated.take_page(0, long_side=600)
    assert fig.sent_size == (400, 600)


# --------------------------------------------------------------------------- bad PDFs


def test_encrypted_pdf_is_refused_with_a_hint(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(tmp_path / "secret.pdf"))
    with pytest.raises(EncryptedPdfError) as err:
        open_pdf(tmp_path / "secret.pdf")
    assert "secret.pdf is encrypted" in err.value.message and err.value.hint
    assert isinstance(err.value, FigureError)


def test_truncated_empty_and_fake_pdfs(tmp_path):
    good = _paper(tmp_path / "good.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[:400])
    with pytest.raises(CorruptPdfError) as err:
        open_pdf(tmp_path / "cut.pdf")
    assert "cut.pdf is damaged" in err.value.message
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(EmptyPdfError):
        open_pdf(tmp_path / "empty.pdf")
    (tmp_path / "notes.pdf").write_text("just some text, with commas\n")
    with pytest.raises(NotAPdfError):
        open_pdf(tmp_path / "notes.pdf")


def test_oversized_pdf_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr("kanoa_desktop.core.inputs.pdf.MAX_PDF_BYTES", 1000)
    with pytest.raises(PdfTooLargeError):
        open_pdf(_paper(tmp_path / "big.pdf"))


def test_page_limit_offers_only_the_first_pages(tmp_path, monkeypatch):
    monkeypatch.setattr("kanoa_desktop.core.inputs.pdf.MAX_PAGES", 2)
    with open_pdf(_paper(tmp_path / "long.pdf", pages=4)) as doc:
        assert (doc.page_count, doc.total_pages) == (2, 4)
        assert "first 2 of 4 pages" in doc.notes[0]
        with pytest.raises(PdfPageError):
            doc.take_page(2, long_side=100)


def test_embedded_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr("kanoa_desktop.core.inputs.pdf.MAX_PIXELS", 10_000)
    with open_pdf(_paper(tmp_path / "paper.pdf")) as doc:
        assert doc.list_images(0)[0].pixel_size == (200, 100)  # still listed
        with pytest.raises(PdfTooLargeError) as err:
            doc.take_image(0, 0, long_side=512)
    assert "200×100 pixels" in err.value.message and "Crop" in err.value.hint
