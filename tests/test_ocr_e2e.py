"""End to end with the small model: a scanned PDF (two image-only pages, the fact on page 2) and a
png, read by OCR, indexed, and each asked about; the answer holds the fact and cites the file and
its page.

The scans are drawn here with PIL (the PDF has no text layer at all). One `docqa ask --batch`
process indexes the folder and answers both questions, so the model loads once.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader

from support import ROOT, docqa_env, run_cli

pytestmark = pytest.mark.e2e

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
QUESTIONS = {
    "pdf": "In which year was the Marlow lighthouse built?",
    "png": "How many passengers does the Wenlock ferry carry?",
}


def scanned_page(paragraphs: list[str]) -> Image.Image:
    """A letter-size page at 150 dpi with 12 pt text, a paragraph per line, as a scanner gives it."""
    font = ImageFont.truetype(FONT, 25)
    page = Image.new("L", (1275, 1650), "white")
    pen = ImageDraw.Draw(page)
    for i, text in enumerate(paragraphs):
        pen.text((150, 180 + i * 70), text, font=font, fill="black")
    return page


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("ocr")
    docs = root / "docs"
    docs.mkdir()
    first = scanned_page(
        [
            "Harbour Office Bulletin",
            "The harbour office opens at nine in the morning.",
            "Boats must register with the harbour master before mooring.",
        ]
    )
    second = scanned_page(
        [
            "The Marlow Lighthouse",
            "The Marlow lighthouse was built in 1894 by the engineer Ada Penrose.",
            "Its lamp can be seen from 40 kilometres out at sea.",
        ]
    )
    first.save(docs / "bulletin.pdf", "PDF", resolution=150, save_all=True, append_images=[second])
    # A real scan: no text layer, so every word the answer cites came through OCR.
    assert not "".join(p.extract_text() or "" for p in PdfReader(docs / "bulletin.pdf").pages).strip()
    notice = Image.new("RGB", (1100, 300), "white")
    pen = ImageDraw.Draw(notice)
    pen.text((60, 60), "Ferry Notice", font=ImageFont.truetype(FONT, 30), fill="black")
    fact = "The Wenlock ferry carries 240 passengers across the bay."
    pen.text((60, 150), fact, font=ImageFont.truetype(FONT, 26), fill="black")
    notice.save(docs / "ferry.png")

    lines = "".join(json.dumps({"id": k, "question": q}) + "\n" for k, q in QUESTIONS.items())
    env = docqa_env(root / "index", docs_dir=docs)
    # OCR, indexing, the model and two answers: minutes on 2 cores, more when the machine is shared.
    proc = run_cli("ask", "--batch", "-", env=env, input=lines, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {a["id"]: a for a in (json.loads(line) for line in proc.stdout.splitlines() if line.strip())}


def cited(answer: dict, source: str) -> list[dict]:
    return [c for c in answer["citations"] if c["source"] == source]


def test_question_about_a_scanned_pdf_page_cites_page_2(answers: dict[str, dict]):
    a = answers["pdf"]
    assert not a["abstained"], a
    assert "1894" in a["answer"], a["answer"]
    citations = cited(a, "bulletin.pdf")
    assert citations and all(c["page"] == 2 for c in citations), a["citations"]
    assert any("1894" in c["text"] for c in citations)


def test_question_about_a_png_cites_the_image(answers: dict[str, dict]):
    a = answers["png"]
    assert not a["abstained"], a
    assert "240" in a["answer"], a["answer"]
    citations = cited(a, "ferry.png")
    assert citations and all(c["page"] == 1 for c in citations), a["citations"]
    assert any("Wenlock ferry carries 240 passengers" in c["text"] for c in citations)
