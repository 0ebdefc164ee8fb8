"""OCR of images and scanned PDF pages with the real RapidOCR models (a few seconds a page here).

The scans are made in each test: PIL draws text on a white image, saved as an image or as an
image-only PDF (no text layer), so what OCR should read is known exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from docqa.ingest import ocr
from docqa.ingest.readers import UnreadableFile, read_document

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SENTENCE = "The Marlow lighthouse was built in 1894."


def draw(lines: list[tuple[int, int, str]], size: tuple[int, int] = (900, 220), mode: str = "L") -> Image.Image:
    """A white image with each (x, y, text) drawn in black, 26 px DejaVu Sans."""
    font = ImageFont.truetype(FONT, 26)
    image = Image.new(mode, size, "white")
    pen = ImageDraw.Draw(image)
    for x, y, text in lines:
        pen.text((x, y), text, font=font, fill="black")
    return image


def test_ocr_image_reads_the_drawn_sentence_with_its_box():
    image = draw([(60, 80, SENTENCE)])
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((60, 80), SENTENCE, font=ImageFont.truetype(FONT, 26))
    lines = ocr.ocr_image(image)
    assert [line[0] for line in lines] == [SENTENCE]
    _, x0, y0, x1, y1 = lines[0]
    width, height = image.size
    # The box is in fractions of the image, origin top left, around the ink (a few pixels of margin).
    assert x0 == pytest.approx(left / width, abs=0.02) and x1 == pytest.approx(right / width, abs=0.02)
    assert y0 == pytest.approx(top / height, abs=0.05) and y1 == pytest.approx(bottom / height, abs=0.05)
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_reading_order_top_to_bottom_and_a_split_line_is_merged_left_to_right():
    image = draw([(60, 140, "Second line of the notice."), (60, 40, "Opening hours:"), (560, 40, "nine to five.")])
    texts = [line[0] for line in ocr.ocr_image(image)]
    assert texts == ["Opening hours: nine to five.", "Second line of the notice."]


def test_boxes_are_sorted_and_merged_whatever_order_the_engine_gives(monkeypatch: pytest.MonkeyPatch):
    class FakeEngine:  # pixel boxes as RapidOCR gives them: four corners, clockwise from top left
        def __call__(self, image, **options):
            def box(x0, y0, x1, y1):
                return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

            return [
                [box(100, 300, 400, 330), "third", 0.9],
                [box(500, 102, 900, 128), "right half", 0.9],
                [box(100, 100, 450, 130), "left half", 0.9],
                [box(100, 200, 300, 230), "second", 0.9],
            ], [0.1]

    monkeypatch.setattr(ocr, "_engine", FakeEngine())
    lines = ocr.ocr_image(Image.new("L", (1000, 500), "white"))
    assert [line[0] for line in lines] == ["left half right half", "second", "third"]
    assert lines[0][1:] == pytest.approx((0.1, 0.2, 0.9, 0.26))  # the union of the two boxes


def test_engine_is_loaded_once_per_process():
    assert ocr._get_engine() is ocr._get_engine()


def test_png_and_jpg_are_read_as_one_page_with_boxes(tmp_path: Path):
    image = draw([(60, 40, "Harbour notice"), (60, 140, "The Wenlock ferry carries 240 passengers.")])
    image.save(tmp_path / "notice.jpg", quality=90)
    doc = read_document(tmp_path / "notice.jpg")
    assert doc.text == "Harbour notice\n\nThe Wenlock ferry carries 240 passengers."  # a gap: a new paragraph
    assert doc.pages == [(0, 1)]
    start = doc.text.index("The Wenlock")
    assert [b[:3] for b in doc.boxes] == [(0, 14, 1), (start, len(doc.text), 1)]
    assert doc.heading_at(start) == "Harbour notice"  # a short line standing alone, like a .txt heading


def test_transparent_png_with_dark_text_is_read(tmp_path: Path):
    # Screenshots often have dark text on a transparent background: dropping the alpha would make it
    # black on black.
    image = Image.new("RGBA", (900, 160), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((60, 50), SENTENCE, font=ImageFont.truetype(FONT, 26), fill=(0, 0, 0, 255))
    image.save(tmp_path / "clear.png")
    assert read_document(tmp_path / "clear.png").text == SENTENCE


def test_multi_page_tiff_gives_one_page_per_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    first = draw([(60, 80, "Page one is about the harbour.")])
    second = draw([(60, 80, SENTENCE)])
    first.save(tmp_path / "scan.tiff", save_all=True, append_images=[second])
    with caplog.at_level(logging.INFO, logger="docqa.ingest.ocr"):
        doc = read_document(tmp_path / "scan.tiff")
    assert doc.text == "Page one is about the harbour.\n\n" + SENTENCE
    assert doc.page_at(doc.text.index("harbour")) == 1 and doc.page_at(doc.text.index("Marlow")) == 2
    assert [b[2] for b in doc.boxes] == [1, 2]
    messages = [r.getMessage() for r in caplog.records]
    assert "OCR page 2/2 of scan.tiff" in " ".join(messages)
    assert any(m.startswith("OCR of scan.tiff: 2 pages in") and m.endswith("pages/s)") for m in messages), messages


def test_damaged_and_renamed_images_are_reported(tmp_path: Path):
    draw([(60, 80, SENTENCE)]).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # a download that stopped half way
    with pytest.raises(UnreadableFile, match="damaged image"):
        read_document(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("these are notes, not a picture\n")
    with pytest.raises(UnreadableFile, match=r"not a readable png image \(damaged, or another format renamed\)"):
        read_document(tmp_path / "notes.png")


def test_blank_image_has_no_text(tmp_path: Path):
    Image.new("RGB", (800, 600), "white").save(tmp_path / "blank.png")
    with pytest.raises(UnreadableFile, match="no text found in the image"):
        read_document(tmp_path / "blank.png")


def test_ocr_pdf_pages_reads_only_the_pages_asked_for(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    first = draw([(60, 80, "Page one is about the harbour.")], size=(1240, 400))
    second = draw([(60, 80, SENTENCE), (60, 200, "It stands 36 metres tall.")], size=(1240, 400))
    first.save(tmp_path / "scan.pdf", "PDF", resolution=150, save_all=True, append_images=[second])

    from pypdf import PdfReader

    assert not "".join(page.extract_text() or "" for page in PdfReader(tmp_path / "scan.pdf").pages).strip()
    seen: list[str] = []
    with caplog.at_level(logging.INFO, logger="docqa.ingest.ocr"), ocr.ocr_progress(seen.append):
        pages = ocr.ocr_pdf_pages(tmp_path / "scan.pdf", [2])
    assert list(pages) == [2]
    assert [line[0] for line in pages[2]] == [SENTENCE, "It stands 36 metres tall."]
    assert pages[2][0][2] < pages[2][1][2]  # top to bottom, in fractions of the page
    assert seen[0] == "OCR page 1/1 of scan.pdf (page 2)"
    assert seen[-1].startswith("OCR of scan.pdf: 1 page in") and seen[-1].endswith("pages/s)")
    assert [r.getMessage() for r in caplog.records if r.name == "docqa.ingest.ocr"][-1] == seen[-1]
    with pytest.raises(ValueError, match="pages \\[3\\] are not in scan.pdf, which has 2 pages"):
        ocr.ocr_pdf_pages(tmp_path / "scan.pdf", [3])


def test_a_damaged_pdf_is_reported(tmp_path: Path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(UnreadableFile, match="could not open the PDF to read its scanned pages"):
        ocr.ocr_pdf_pages(tmp_path / "bad.pdf", [1])


def test_indexing_a_scan_shows_ocr_progress_per_page(settings, embedder, docs: Path):
    from docqa.ingest.indexer import update_index

    draw([(60, 80, "Page one is about the harbour.")]).save(
        docs / "scan.tif", save_all=True, append_images=[draw([(60, 80, SENTENCE)])]
    )
    statuses: list[str] = []
    report = update_index(settings, embedder, progress=lambda done, total, message: statuses.append(message))
    assert "scan.tif" in report.added and not report.failed
    ocr_statuses = [s for s in statuses if "OCR" in s]
    # The status `docqa index` shows next to its bar: the file being read, then the page being OCRed.
    assert any("(reading scan.tif: OCR page 2/2 of scan.tif" in s for s in ocr_statuses), statuses
    assert any("reading scan.tif: OCR of scan.tif: 2 pages in" in s and "pages/s)" in s for s in ocr_statuses)


def test_an_engine_that_cannot_load_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import rapidocr_onnxruntime

    def broken(**kwargs):
        raise FileNotFoundError("ch_PP-OCRv4_det_infer.onnx does not exist")

    monkeypatch.setattr(ocr, "_engine", None)  # restored after the test, with the real engine
    monkeypatch.setattr(rapidocr_onnxruntime, "RapidOCR", broken)
    draw([(60, 80, SENTENCE)]).save(tmp_path / "a.png")
    with pytest.raises(UnreadableFile, match=r"OCR engine could not load \(FileNotFoundError: .*reinstall"):
        read_document(tmp_path / "a.png")
