"""PDFs: each page's text, bookmarks and title, read in a child process since some PDFs hang or
crash parsers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from docqa.ingest.readers import Document, UnreadableFile, heading_paths, sane_title


def read_pdf(path: Path, timeout_s: float = 60.0) -> Document:
    """Extract a PDF's text in a child process, since some PDFs hang or crash parsers."""
    # An absolute path, so a file named like an option ("-rf.pdf", "--help.pdf") is never read as one.
    cmd = [sys.executable, "-m", "docqa.ingest.pdf", os.path.abspath(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, text=True)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child by now
        raise UnreadableFile(
            f"PDF parsing took longer than {timeout_s:g} s (raise pdf_timeout_s to allow more)"
        ) from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["parser crashed"])[-1]
        raise UnreadableFile(f"could not read PDF: {reason}")
    parsed = json.loads(proc.stdout)
    text_parts: list[str] = []
    marks: list[tuple[int, int]] = []
    page_starts: dict[int, tuple[int, str]] = {}
    offset = 0
    for number, page_text in enumerate(parsed["pages"], start=1):
        page_text = page_text.strip()
        if not page_text:
            continue
        marks.append((offset, number))
        page_starts[number] = (offset, page_text)
        text_parts.append(page_text)
        offset += len(page_text) + 2
    entries = sorted(_place_outline(parsed["outline"], page_starts))
    return Document("\n\n".join(text_parts), headings=heading_paths(entries, sane_title(parsed["title"])), pages=marks)


def _place_outline(outline: list[list], page_starts: dict[int, tuple[int, str]]) -> list[tuple[int, int, str]]:
    """Bookmarks as (offset, level, title): where the title is printed on its page, else the page's start."""
    out = []
    for page, level, title in outline:
        if page not in page_starts or not title.strip():
            continue
        start, page_text = page_starts[page]
        words = [re.escape(w) for w in title.split()]
        found = re.search(r"\s*".join(words), page_text, re.I) if words else None
        out.append((start + (found.start() if found else 0), level, title))
    return out


def _pdf_pages(path: str) -> dict:
    """Each page's text, the bookmarks as [page, level, title], and the metadata title."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise SystemExit("the PDF is encrypted with a password")
            except Exception:  # noqa: BLE001 - pypdf raises several types for unsupported crypto
                raise SystemExit("the PDF is encrypted and can't be opened without its password") from None
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise SystemExit(f"corrupt PDF ({exc})") from None
    try:  # bookmarks and metadata are a bonus: a broken outline must not lose the text
        outline = _outline(reader, reader.outline, 1)
        title = str(reader.metadata.title) if reader.metadata and reader.metadata.title else None
    except Exception:  # noqa: BLE001 - pypdf raises many types on damaged outlines
        outline, title = [], None
    return {"pages": pages, "outline": outline, "title": title}


def _outline(reader, items: list, level: int) -> list[list]:
    out: list[list] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_outline(reader, item, level + 1))
            continue
        page = reader.get_destination_page_number(item)
        if page is not None and page >= 0:
            out.append([page + 1, level, str(item.title or "")])
    return out


if __name__ == "__main__":  # the child process of read_pdf
    print(json.dumps(_pdf_pages(sys.argv[1])))
