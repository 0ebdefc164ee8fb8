"""PDF layout: reading order across columns, ruled tables as rows with their header, running
headers and page numbers left out, a box per line, and pages without text sent to OCR.

The PDFs are written by hand in tests/pdfgen.py, so each case knows where its text sits.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import pdfgen
from docqa.ingest.readers import Document, UnreadableFile, read_document


def read(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Document:
    (tmp_path / name).write_bytes(data)
    return read_document(tmp_path / name)


def test_two_columns_are_read_one_after_the_other(tmp_path: Path):
    doc = read(tmp_path, pdfgen.two_columns())
    positions = [doc.text.index(line) for line in [*pdfgen.LEFT, *pdfgen.RIGHT]]
    assert doc.text.startswith("Two Column Report")
    assert positions == sorted(positions), doc.text  # all of the left column, then the right one
    # The columns are separate paragraphs; each line of a column stays whole.
    assert "harbour.\n\nRight column sentence 1" in doc.text


def test_borderless_pairs_stay_on_their_rows(tmp_path: Path):
    """Short cells side by side are a table without rules, not two columns: read row by row."""
    pairs = [("Colour", "Green"), ("Origin", "Yunnan"), ("Harvest", "April"), ("Grade", "First")]
    ops = "".join(
        pdfgen.text(72, 700 - 14 * n, a) + pdfgen.text(320, 700 - 14 * n, b) for n, (a, b) in enumerate(pairs)
    )
    doc = read(tmp_path, pdfgen.make_pdf([ops]))
    assert doc.text.splitlines() == [f"{a} {b}" for a, b in pairs]


def test_definition_list_stays_on_its_rows(tmp_path: Path):
    """Short terms beside long descriptions (a manual's function list) are rows, not two columns."""
    terms = [("log(x)", "log x, natural logarithm of x"), ("log10(x)", "log10 x, common (decimal) logarithm of x")]
    terms += [("max(x1, x2, ..., xn)", "the largest of values x1, x2, ..., xn")]
    terms += [("min(x1, x2, ..., xn)", "the smallest of values x1, x2, ..., xn")]
    ops = "".join(
        pdfgen.text(72, 700 - 14 * n, a) + pdfgen.text(200, 700 - 14 * n, b) for n, (a, b) in enumerate(terms)
    )
    doc = read(tmp_path, pdfgen.make_pdf([ops]))
    assert doc.text.splitlines() == [f"{a} {b}" for a, b in terms]


def test_table_cell_comes_with_its_header_page_and_box(tmp_path: Path):
    doc = read(tmp_path, pdfgen.table_pages())
    rows = [f"Region: {r}; Year: {y}; Sales: {s}" for r, y, s in pdfgen.TABLE[1:]]
    for row in rows:
        assert row in doc.text, doc.text
        assert doc.page_at(doc.text.index(row)) == 2
    # The table sits between the paragraph before it and the line after it, in reading order.
    order = [doc.text.index(s) for s in ("Sales by region", rows[0], rows[-1], "Figures are in")]
    assert order == sorted(order)
    assert "Region Year Sales" not in doc.text  # the header is not a line of its own
    # Each row has one box, on page 2, where the row is drawn (rows 18 pt apart from y=660 down).
    start = doc.text.index(rows[1])
    (box,) = [b for b in doc.boxes if b[0] == start]
    assert box[1] == start + len(rows[1]) and box[2] == 2
    x0, y0, x1, y1 = box[3:]
    assert x0 == pytest.approx(72 / 612, abs=0.01) and x1 == pytest.approx(352 / 612, abs=0.01)
    assert y0 == pytest.approx((792 - 624) / 792, abs=0.01) and y1 == pytest.approx((792 - 606) / 792, abs=0.01)


def test_table_with_horizontal_rules_only(tmp_path: Path):
    """A booktabs-style table (no vertical lines): columns from the space between them, a cell
    left empty under its row's first column is skipped, and prose above and below stays prose."""
    rows = [["Animal", "Description", "Price ($)"], ["Gnat", "per gram", "13.65"], ["", "each", "0.01"]]
    rows += [["Armadillo", "frozen", "8.99"]]
    ops = pdfgen.text(72, 700, "The prices of the animals we sell are listed in the table below, per unit.")
    ops += pdfgen.open_table(150, 680, [90, 90, 70], rows)
    ops += pdfgen.text(72, 600, "Prices are in dollars and were last revised in the spring of this year.")
    doc = read(tmp_path, pdfgen.make_pdf([ops]))
    assert doc.text.splitlines() == [
        "The prices of the animals we sell are listed in the table below, per unit.",
        "",
        "Animal: Gnat; Description: per gram; Price ($): 13.65",
        "",
        "Description: each; Price ($): 0.01",
        "",
        "Animal: Armadillo; Description: frozen; Price ($): 8.99",
        "",
        "Prices are in dollars and were last revised in the spring of this year.",
    ]


def test_no_chunk_runs_across_a_page_break(tmp_path: Path):
    """A chunk is cited by the page it starts on: the table rows on page 2 must be in chunks of page 2."""
    from docqa.ingest.chunking import chunk_document

    doc = read(tmp_path, pdfgen.table_pages(), "sales.pdf")
    chunks = chunk_document(doc, "sales.pdf", lambda s: len(s.split()), max_tokens=400)
    assert len(chunks) == 2  # one per page, though both pages would fit in one
    for chunk in chunks:
        assert doc.page_at(chunk.start) == doc.page_at(chunk.end - 1) == chunk.page
    (row,) = [c for c in chunks if "Sales: 475" in c.text]
    assert row.page == 2 and row.heading == "sales"  # no title: the file's name heads the page's section


def test_a_page_continues_the_section_in_force():
    """A page that starts mid-section carries that section's heading path, not the file's name:
    a chunk at the top of page 3 still belongs to the bookmark placed on page 2."""
    from docqa.ingest.pdf import build_document

    line = lambda text: (text, 0.1, 0.1, 0.9, 0.12, True)  # noqa: E731
    pages = [
        [line("Widget manual")],
        [line("2 Setup"), line("Plug the widget in.")],
        [line("Wait for the green light.")],
        [line("3 Care"), line("Dust it weekly.")],
        [line("Keep it dry.")],
    ]
    doc = build_document(pages, [[2, 1, "2 Setup"], [4, 1, "3 Care"]], title=None, name="widget")
    at = {page: doc.heading_at(offset) for offset, page in doc.pages}
    assert at == {1: None, 2: "2 Setup", 3: "2 Setup", 4: "3 Care", 5: "3 Care"}


def test_running_header_and_page_numbers_are_left_out(tmp_path: Path):
    doc = read(tmp_path, pdfgen.running_headers())
    assert "Acme Tea" not in doc.text and "Review" not in doc.text
    assert not any(line.strip().isdigit() for line in doc.text.splitlines()), doc.text
    for n, body in enumerate(pdfgen.BODY, start=1):
        assert doc.page_at(doc.text.index(body)) == n
        assert f"Page {n} continues with more about step {n}." in doc.text  # body text that names a page stays


def test_chapter_headers_with_their_page_numbers_are_left_out():
    """A chapter's running header repeats on that chapter's pages only, but its number counts up
    with the page; chapter titles that happen to start with their page number (bookmarks) stay."""
    from docqa.ingest.pdf import drop_running_lines

    top = lambda text: (text, 0.1, 0.05, 0.9, 0.08, True)  # noqa: E731
    body = lambda text: (text, 0.1, 0.4, 0.9, 0.45, True)  # noqa: E731
    pages = [
        [top("1 Introduction"), body("Widgets are small.")],
        [top("Chapter 1: Introduction 2"), body("They fit in a pocket.")],
        [top("2 Setup"), body("Plug the widget in.")],
        [top("Chapter 2: Setup 4"), body("Wait for the light.")],
        [top("Chapter 2: Setup 5"), body("Press the button.")],
        [top("3 Care . . . . . . . . 6"), body("Dust it weekly.")],
    ]
    kept = drop_running_lines(pages, titles=["1 Introduction", "2 Setup"])
    texts = [[line[0] for line in page] for page in kept]
    assert texts == [
        ["1 Introduction", "Widgets are small."],
        ["They fit in a pocket."],
        ["2 Setup", "Plug the widget in."],
        ["Wait for the light."],
        ["Press the button."],
        ["3 Care . . . . . . . . 6", "Dust it weekly."],
    ]


def test_header_on_one_page_only_is_kept(tmp_path: Path):
    """A line in the top band that doesn't repeat is content (a title), not a running header."""
    pages = [pdfgen.text(72, 760, "Annual Review", 9) + pdfgen.text(72, 700, "Body one.")]
    pages += [pdfgen.text(72, 700, f"Body {n}.") for n in ("two", "three")]
    doc = read(tmp_path, pdfgen.make_pdf(pages))
    assert doc.text.startswith("Annual Review\n")


@pytest.mark.parametrize("make", [pdfgen.two_columns, pdfgen.table_pages, pdfgen.running_headers])
def test_boxes_slice_whole_lines_on_their_pages(tmp_path: Path, make):
    doc = read(tmp_path, make())
    assert doc.boxes
    covered = 0
    for start, end, page, x0, y0, x1, y1 in doc.boxes:
        line = doc.text[start:end]
        assert line.strip() == line and line and "\n" not in line
        assert (start == 0 or doc.text[start - 1] == "\n") and (end == len(doc.text) or doc.text[end] == "\n")
        assert doc.page_at(start) == page
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        covered += end - start
    assert covered == len(doc.text.replace("\n", ""))  # every character is in some box


def test_text_drawn_at_size_one_and_scaled_by_its_matrix(tmp_path: Path):
    """Many generators set "1 Tf" and scale with the text matrix: lines still get their drawn height."""
    ops = "".join(
        f"BT /F1 1 Tf 10 0 0 10 72 {y} Tm ({s}) Tj ET\n"
        for y, s in [(700, "Scaled text on the first line."), (686, "And on the second line.")]
    )
    doc = read(tmp_path, pdfgen.make_pdf([ops]))
    assert doc.text == "Scaled text on the first line.\nAnd on the second line."  # one paragraph
    for _, _, _, _, y0, _, y1 in doc.boxes:
        assert (y1 - y0) * 792 == pytest.approx(10, abs=2)


def test_left_column_boxes_run_down_the_left_half(tmp_path: Path):
    doc = read(tmp_path, pdfgen.two_columns())
    boxes = {doc.text[b[0] : b[1]]: b for b in doc.boxes}
    lefts, rights = [boxes[s] for s in pdfgen.LEFT], [boxes[s] for s in pdfgen.RIGHT]
    assert all(b[5] < 0.5 for b in lefts) and all(b[3] > 0.5 for b in rights)
    assert [b[4] for b in lefts] == sorted(b[4] for b in lefts)  # top to bottom
    assert lefts[0][4] == pytest.approx(rights[0][4])  # side by side


def fake_ocr(monkeypatch: pytest.MonkeyPatch, result: dict) -> list:
    """Stand in for docqa.ingest.ocr (written elsewhere) with a fake that records its calls."""
    calls: list = []

    def ocr_pdf_pages(path: Path, pages: list[int]) -> dict:
        calls.append((Path(path).name, list(pages)))
        return result

    monkeypatch.setitem(sys.modules, "docqa.ingest.ocr", types.SimpleNamespace(ocr_pdf_pages=ocr_pdf_pages))
    return calls


def test_page_without_text_is_read_by_ocr_with_boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    scan = pdfgen.image(0, 0, 612, 792)
    typed = pdfgen.text(72, 700, "The typed page says the kiln was rebuilt.")
    lines = [("Scanned line about the old kiln.", 0.1, 0.2, 0.6, 0.23), ("Second scanned line.", 0.1, 0.24, 0.4, 0.27)]
    calls = fake_ocr(monkeypatch, {2: lines})
    doc = read(tmp_path, pdfgen.make_pdf([typed, scan, ""]), "mixed.pdf")
    assert calls == [("mixed.pdf", [2])]  # the blank page 3 shows nothing: not sent to OCR
    assert doc.text.index("typed page") < doc.text.index("Scanned line") < doc.text.index("Second scanned")
    start = doc.text.index("Second scanned line.")
    assert doc.page_at(start) == 2
    assert (start, start + len("Second scanned line."), 2, 0.1, 0.24, 0.4, 0.27) in doc.boxes


def test_scan_that_ocr_cannot_read_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_ocr(monkeypatch, {})
    with pytest.raises(UnreadableFile, match=r"page\(s\) 1 have no text layer \(a scan\) and OCR read nothing"):
        read(tmp_path, pdfgen.make_pdf([pdfgen.image(0, 0, 612, 792)]))


def test_scan_without_an_ocr_module_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "docqa.ingest.ocr", None)  # importing it raises ImportError
    with pytest.raises(UnreadableFile, match="no text layer.*OCR is unavailable"):
        read(tmp_path, pdfgen.make_pdf([pdfgen.image(0, 0, 612, 792)]))
