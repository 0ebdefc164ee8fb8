"""The cited spot of a passage, as HTML for the chat's viewer: the section it sits in with the passage
marked, and for a PDF the page image with the passage's lines highlighted.

The spot comes from the offsets the indexer stored with the passage (`start`/`end` into the
document's extracted text), never from searching for the text at display time: the document is read
again with the same reader, and if its text at those offsets is no longer the passage, the viewer
says the file changed and shows the stored passage instead of guessing. Everything from a document
is escaped by `render.esc`; the only image is the page rendered here, inlined as a data: address,
so nothing loads from anywhere else.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import DocsError
from docqa.ingest.readers import Document, UnreadableFile, read_document
from docqa.serve.documents import resolve_source
from docqa.serve.render import esc, esc_lines
from docqa.types import Chunk

BEFORE_CHARS = 800  # section text shown before the passage, at most
AFTER_CHARS = 1200  # and after it
PAGE_WIDTH_PX = 900  # a rendered PDF page's width
RENDER_TIMEOUT_S = 30.0
Box = tuple[int, int, int, float, float, float, float]  # Document.boxes: start, end, page, x0, y0, x1, y1


def same_text(a: str, b: str) -> bool:
    """Equal after whitespace normalisation: line breaks and runs of spaces don't count.

    >>> same_text("Tea  grows\\nin Yunnan.", "Tea grows in Yunnan.")
    True
    """
    return a.split() == b.split()


@dataclass(frozen=True)
class Section:
    """Where the passage sits in the document's text: the shown excerpt [start, end) around it."""

    start: int
    end: int
    heading: str | None
    cut_before: bool  # text of the section was left out before `start`
    cut_after: bool


def section_around(doc: Document, start: int, end: int) -> Section:
    """The section holding [start, end): from the heading at or before `start` to the next heading
    at or after `end`, cut to BEFORE_CHARS/AFTER_CHARS around the passage at a line or word break.

    >>> doc = Document("# A\\nintro\\n# B\\nthe passage here\\n# C\\nlater", headings=[(0, "A"), (10, "B"), (31, "C")])
    >>> s = section_around(doc, 14, 30)
    >>> doc.text[s.start:s.end], s.heading
    ('# B\\nthe passage here\\n', 'B')
    """
    text = doc.text
    sec_start, sec_end = 0, len(text)
    for offset, _ in doc.headings:
        if offset <= start:
            sec_start = offset
        elif offset >= end:
            sec_end = offset
            break
    cut_before = start - sec_start > BEFORE_CHARS
    if cut_before:
        sec_start = _break_after(text, start - BEFORE_CHARS, start)
    cut_after = sec_end - end > AFTER_CHARS
    if cut_after:
        sec_end = _break_before(text, end + AFTER_CHARS, end)
    return Section(sec_start, sec_end, doc.heading_at(start), cut_before, cut_after)


def _break_after(text: str, pos: int, limit: int) -> int:
    """The first line (else word) break at or after `pos`, before `limit`; `pos` if none."""
    for sep in ("\n", " "):
        found = text.find(sep, pos, limit)
        if found != -1:
            return found + 1
    return pos


def _break_before(text: str, pos: int, limit: int) -> int:
    """The last line (else word) break at or before `pos`, after `limit`; `pos` if none."""
    for sep in ("\n", " "):
        found = text.rfind(sep, limit, pos)
        if found != -1:
            return found
    return pos


def boxes_on_page(boxes: list[Box], start: int, end: int, page: int) -> list[tuple[float, float, float, float]]:
    """The boxes of the text lines that overlap [start, end) on `page`, as (x0, y0, x1, y1) fractions.

    >>> boxes = [(0, 10, 1, 0.1, 0.1, 0.9, 0.12), (11, 20, 1, 0.1, 0.13, 0.5, 0.15), (0, 5, 2, 0, 0, 1, 1)]
    >>> boxes_on_page(boxes, 12, 15, 1)
    [(0.1, 0.13, 0.5, 0.15)]
    """
    return [(x0, y0, x1, y1) for s, e, p, x0, y0, x1, y1 in boxes if p == page and s < end and e > start]


# The child process of render_pdf_page: argv PATH PAGE WIDTH, PNG bytes on stdout. Self-contained, so
# the child imports pdfium and PIL only (a fraction of a second), not docqa.
_RENDER_CHILD = """
import io, sys
import pypdfium2 as pdfium
path, page, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    pdf = pdfium.PdfDocument(path)
    if not 1 <= page <= len(pdf):
        raise SystemExit(f"the PDF has {len(pdf)} pages, not a page {page}")
    p = pdf[page - 1]
    image = p.render(scale=max(0.25, min(4.0, width / max(p.get_width(), 1.0)))).to_pil()
except SystemExit:
    raise
except Exception as exc:
    raise SystemExit(f"{type(exc).__name__}: {exc}")
out = io.BytesIO()
image.save(out, format="PNG", optimize=True)
sys.stdout.buffer.write(out.getvalue())
"""


def render_pdf_page(path: Path, page: int, width_px: int = PAGE_WIDTH_PX, timeout_s: float = RENDER_TIMEOUT_S) -> bytes:
    """Page `page` (1-based) of a PDF as PNG bytes, rendered by pdfium in a child process, since a
    damaged PDF can hang or crash a renderer and must not take the server with it.

    Raises UnreadableFile with the reason when the page can't be rendered.
    """
    cmd = [sys.executable, "-c", _RENDER_CHILD, os.path.abspath(path), str(page), str(width_px)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UnreadableFile(f"rendering the page took longer than {timeout_s:g} s") from None
    if proc.returncode != 0 or not proc.stdout.startswith(b"\x89PNG"):
        reason = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["the renderer crashed"])[-1]
        raise UnreadableFile(f"could not render page {page}: {reason}")
    return proc.stdout


def page_html(png: bytes, boxes: list[tuple[float, float, float, float]], page: int) -> str:
    """The page image as a data: address, with a translucent rectangle over each highlighted line.

    The rectangles are positioned in percent of the page, so they stay on their lines at any width.
    """
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    marks = "".join(
        f'<div class="viewer-hl" style="left:{x0 * 100:.2f}%;top:{y0 * 100:.2f}%;'
        f'width:{(x1 - x0) * 100:.2f}%;height:{(y1 - y0) * 100:.2f}%"></div>'
        for x0, y0, x1, y1 in boxes
    )
    return f'<div class="viewer-page"><img src="{uri}" alt="Page {page}">{marks}</div>'


def marked_text_html(text: str, section: Section, start: int, end: int) -> str:
    """The section's text, escaped, with the passage [start, end) wrapped in <mark>."""
    before = ("… " if section.cut_before else "") + text[section.start : start]
    after = text[end : section.end] + (" …" if section.cut_after else "")
    return (
        f'<div class="viewer-text">{esc_lines(before)}<mark id="docqa-spot-mark">{esc_lines(text[start:end])}</mark>'
        f"{esc_lines(after)}</div>"
    )


def notice_html(text: str, css: str = "viewer-notice") -> str:
    return f'<div class="{css}">{esc(text)}</div>'


def message_html(text: str) -> str:
    """The viewer holding only a message (no passage to show)."""
    return _wrap(notice_html(text))


def empty_html() -> str:
    hint = esc("Click a citation [n] or a source card to see the passage in its document.")
    return f'<div class="docqa-viewer empty">{hint}</div>'


class Viewer:
    """Shows passages in their documents, keeping the last few documents and page images read.

    Reading a document again costs a parse (a child process for a PDF) and a page render another;
    the caches are keyed by path, modification time and size, so an edited file is read afresh.
    """

    def __init__(
        self,
        docs_dir: Path,
        pdf_timeout_s: float = 60.0,
        cache_size: int = 4,
        render: Callable[[Path, int], bytes] | None = None,
    ) -> None:
        self.docs_dir = docs_dir
        self.pdf_timeout_s = pdf_timeout_s
        self.cache_size = cache_size
        self._render = render or (lambda path, page: render_pdf_page(path, page, timeout_s=pdf_timeout_s))
        self._docs: OrderedDict[tuple, Document] = OrderedDict()
        self._pages: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def document(self, path: Path) -> Document:
        """`read_document(path)`, from the cache while the file is unchanged."""
        key = _file_key(path)
        with self._lock:
            if key in self._docs:
                self._docs.move_to_end(key)
                return self._docs[key]
        doc = read_document(path, self.pdf_timeout_s)
        with self._lock:
            self._docs[key] = doc
            while len(self._docs) > self.cache_size:
                self._docs.popitem(last=False)
        return doc

    def page_png(self, path: Path, page: int) -> bytes:
        key = (*_file_key(path), page)
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        png = self._render(path, page)
        with self._lock:
            self._pages[key] = png
            while len(self._pages) > self.cache_size * 2:
                self._pages.popitem(last=False)
        return png

    def html(self, chunk: Chunk) -> str:
        """The viewer's HTML for a passage: its spot in the document, or a plain message saying
        why it can't be shown and what to do."""
        head = _head_html(chunk)
        try:
            path = resolve_source(self.docs_dir, chunk.source)
        except DocsError as exc:
            return _wrap(head + notice_html(exc.message, "viewer-notice error"))
        if not path.is_file():
            return _wrap(
                head
                + notice_html(
                    f"{chunk.source} is no longer in the documents folder. Re-index to drop its passages; "
                    "the passage as indexed:",
                    "viewer-notice stale",
                )
                + _stored_html(chunk)
            )
        try:
            doc = self.document(path)
        except (UnreadableFile, OSError) as exc:
            return _wrap(
                head
                + notice_html(f"{chunk.source} can't be read now ({exc}); the passage as indexed:", "viewer-notice")
                + _stored_html(chunk)
            )
        if not same_text(doc.text[chunk.start : chunk.end], chunk.text):
            return _wrap(
                head
                + notice_html(
                    f"{chunk.source} has changed since it was indexed (or docqa now reads it differently), so the "
                    "passage is no longer at the place the index recorded. Re-index (Documents tab) to update it; "
                    "the passage as indexed:",
                    "viewer-notice stale",
                )
                + _stored_html(chunk)
            )
        section = section_around(doc, chunk.start, chunk.end)
        body = ""
        if path.suffix.lower() == ".pdf":
            body = self._pdf_page(path, doc, chunk)
        return _wrap(head + body + marked_text_html(doc.text, section, chunk.start, chunk.end))

    def _pdf_page(self, path: Path, doc: Document, chunk: Chunk) -> str:
        page = chunk.page or doc.page_at(chunk.start) or 1
        try:
            png = self.page_png(path, page)
        except UnreadableFile as exc:
            return notice_html(f"The page image can't be shown: {exc}. The passage is marked in the text below.")
        boxes = boxes_on_page(doc.boxes, chunk.start, chunk.end, page)
        notes = []
        if not doc.boxes:
            notes.append(
                "The exact spot can't be drawn on this page: the PDF reader gave no line positions. "
                "The passage is marked in the text below."
            )
        elif not boxes:
            notes.append("No line of the passage was found on this page; it is marked in the text below.")
        later = [p for offset, p in doc.pages if chunk.start < offset < chunk.end and p > page]
        if later:
            notes.append(f"The passage continues on page {later[0]} (marked in the text below).")
        return page_html(png, boxes, page) + "".join(notice_html(n) for n in notes)


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _head_html(chunk: Chunk) -> str:
    parts = [f'<span class="viewer-file">{esc(chunk.source)}</span>']
    if chunk.page is not None:
        parts.append(f'<span class="viewer-loc">page {chunk.page}</span>')
    if chunk.heading:
        parts.append(f'<span class="viewer-heading">{esc(chunk.heading)}</span>')
    parts.append(f'<span class="viewer-loc">characters {chunk.start}–{chunk.end}</span>')
    return f'<div class="viewer-head">{" · ".join(parts)}</div>'


def _stored_html(chunk: Chunk) -> str:
    return f'<div class="viewer-text stored"><mark>{esc_lines(chunk.text)}</mark></div>'


def _wrap(inner: str) -> str:
    return f'<div class="docqa-viewer">{inner}</div>'
