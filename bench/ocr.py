"""OCR speed on scanned pages: pages/s through the path `docqa index` takes for a scanned PDF.

    python bench/ocr.py                 # 5 pages, writes bench/ocr.json
    python bench/ocr.py --pages 2 --out /tmp/ocr.json

The scans are generated: sentences of the bundled essay, wrapped and drawn in 12 pt DejaVu Serif on
letter-size pages at 150 dpi (about 35 lines, 450 words a page), saved as an image-only PDF. Each
page is rendered with pdfium and read by RapidOCR (`docqa.ingest.ocr.ocr_pdf_pages`); the engine is
loaded first and timed apart. Word accuracy is the share of the drawn words that OCR gives back in
order (difflib's matching blocks over the word lists), a check that the speed is not bought with
misreadings. On a shared machine the wall clock says more about the other jobs than about OCR, so
the process's CPU time is recorded too (pages per CPU-second: what a quiet machine with as many
cores would come close to), with the load average.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from docqa.cpu import cpu_summary, describe_cpu
from docqa.ingest import ocr

ROOT = Path(__file__).resolve().parents[1]
ESSAY = ROOT / "docs" / "poverty-alleviation-and-rural-revitalization.txt"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
DPI = 150
LINES_PER_PAGE = 35


def page_texts(pages: int) -> list[list[str]]:
    """`pages` pages of wrapped essay lines, each page starting where the last one stopped."""
    words = " ".join(ESSAY.read_text(encoding="utf-8").split())
    lines = textwrap.wrap(words, width=78)
    need = pages * LINES_PER_PAGE
    lines = (lines * (need // max(len(lines), 1) + 1))[:need]
    return [lines[i : i + LINES_PER_PAGE] for i in range(0, need, LINES_PER_PAGE)]


def draw_page(lines: list[str]) -> Image.Image:
    font = ImageFont.truetype(FONT, round(12 * DPI / 72))  # 12 pt at 150 dpi: 25 px
    page = Image.new("L", (int(8.5 * DPI), int(11 * DPI)), "white")
    pen = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        pen.text((DPI, DPI + i * 37), line, font=font, fill="black")
    return page


def word_accuracy(drawn: str, read: str) -> float:
    """Share of the drawn words read back, in order, ignoring case and punctuation."""
    a, b = (re.findall(r"\w+", s.lower()) for s in (drawn, read))
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return matched / len(a) if a else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "ocr.json")
    args = parser.parse_args()

    cpu = cpu_summary()
    load_before = os.getloadavg()[0]
    print(f"CPU {describe_cpu(cpu)}; {os.cpu_count()} cores; load average {load_before:.1f}")
    texts = page_texts(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.pdf"
        images = [draw_page(lines) for lines in texts]
        images[0].save(path, "PDF", resolution=DPI, save_all=True, append_images=images[1:])
        started = time.perf_counter()
        ocr._get_engine()
        load_s = time.perf_counter() - started
        per_page: list[float] = []
        last = time.perf_counter()

        def tick(message: str) -> None:  # a page starts: the one before it is done
            nonlocal last
            now = time.perf_counter()
            if message.startswith("OCR page") and not message.startswith("OCR page 1/"):
                per_page.append(now - last)
            last = now

        started, cpu_started = time.perf_counter(), time.process_time()
        with ocr.ocr_progress(tick):
            read = ocr.ocr_pdf_pages(path, list(range(1, args.pages + 1)))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    per_page.append(seconds - sum(per_page))
    accuracy = [
        word_accuracy(" ".join(lines), " ".join(line[0] for line in read[n])) for n, lines in enumerate(texts, start=1)
    ]
    results = {
        "pages": args.pages,
        "seconds": round(seconds, 2),
        "pages_per_s": round(args.pages / seconds, 3),
        "page_s": [round(s, 2) for s in per_page],
        "cpu_seconds": round(cpu_seconds, 2),
        "pages_per_cpu_s": round(args.pages / cpu_seconds, 3),
        "engine_load_s": round(load_s, 2),
        "word_accuracy": round(sum(accuracy) / len(accuracy), 4),
        "words_per_page": round(sum(len(" ".join(t).split()) for t in texts) / len(texts)),
        "scan": f"letter size, {DPI} dpi, 12 pt DejaVu Serif, {LINES_PER_PAGE} lines a page",
        "render": f"{ocr.RENDER_DPI} dpi, at most {ocr.RENDER_MAX_SIDE} px a side",
        "machine": {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
            "python": platform.python_version(),
        },
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        f"OCR: {args.pages} pages in {seconds:.1f} s = {results['pages_per_s']} pages/s"
        f" (engine load {load_s:.1f} s apart); {cpu_seconds:.1f} CPU s = {results['pages_per_cpu_s']} pages/CPU-s;"
        f" word accuracy {results['word_accuracy']:.3f}"
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
