"""PDFs: each page's lines in reading order with where they sit, ruled tables as rows with their
header, bookmarks and title; read in a child process since some PDFs hang or crash parsers.

The child (`python -m docqa.ingest.pdf FILE`) takes the characters and their boxes, and the
strokes a page draws, from pypdfium2 (fast, and lenient with damaged files); ruled tables are
found by pdfplumber's table geometry run on those strokes (its own page parsing costs seconds a
page). It orders a page's lines itself: runs of lines side by side with a clear gutter between
them are columns, read one after the other. Lines in the top or bottom band of a page that repeat
on many pages (digits ignored), and bare page numbers, are running headers and footers: left out.
Pages without text are read by OCR in the parent. pymupdf was left out: it is AGPL.
bench/pdf_extract.py measures the choice (bench/README.md, "PDF extraction").
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from docqa.ingest.readers import Document, UnreadableFile, heading_paths, sane_title

# A line as the child reports it: text, box in fractions of the page (origin top left), and
# whether a paragraph break comes before it.
Line = tuple[str, float, float, float, float, bool]

BAND = 0.2  # running headers and footers sit in the top or bottom fifth of the page
_LEADER = re.compile(r"(\. ?){4,}|…{2,}")  # the dots that lead a contents line to its page number
_PAGE_NUMBER = re.compile(r"^(page\s+)?[-–—\s]*(\d{1,4}|[ivxlcdm]{1,7})[-–—\s]*((of|/)\s*\d{1,4})?$", re.I)


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
    pages: list[list[Line]] = parsed["pages"]
    warnings: list[str] = []
    if parsed["no_text"]:
        found, warning = _ocr(path, parsed["no_text"])
        if warning:
            warnings.append(warning)
        for number, lines in found.items():
            if 1 <= number <= len(pages):
                pages[number - 1] = [(t, x0, y0, x1, y1, False) for t, x0, y0, x1, y1 in lines if t.strip()]
    # After OCR, so a scanned page's running header goes too.
    titles = [title for _, _, title in parsed["outline"]]
    doc = build_document(drop_running_lines(pages, titles), parsed["outline"], parsed["title"], Path(path).stem)
    if not doc.text.strip():
        if parsed["no_text"]:
            shown = ", ".join(str(n) for n in parsed["no_text"][:10])
            raise UnreadableFile(
                f"no text found: page(s) {shown} have no text layer (a scan) and OCR read nothing"
                f"{' (' + warnings[0] + ')' if warnings else ''}; run OCR on the file (e.g. ocrmypdf) and add it again"
            )
        raise UnreadableFile("no text found (the PDF's pages are empty)")
    doc.warnings.extend(warnings)
    return doc


def _ocr(path: Path, pages: list[int]) -> tuple[dict[int, list], str | None]:
    """Lines read by OCR for pages without a text layer; a warning instead when OCR is unavailable."""
    try:
        from docqa.ingest.ocr import ocr_pdf_pages
    except ImportError as exc:
        return {}, f"pages without text left out: OCR is unavailable ({exc})"
    try:
        return ocr_pdf_pages(Path(path), list(pages)), None
    except Exception as exc:  # noqa: BLE001 - OCR failing must not lose the pages that have text
        return {}, f"pages without text left out: OCR failed ({type(exc).__name__}: {exc})"


def build_document(pages: list[list[Line]], outline: list[list], title: str | None, name: str = "") -> Document:
    """The Document for pages of lines: pages apart by a blank line, a box per line, page marks.

    Every page after the first starts a section under the heading in force (the title, else
    `name`, when none is), so no chunk runs across a page break: a chunk is cited by the page it
    starts on, and a table row at the top of page 2 must not be cited as page 1.
    """
    text_parts: list[str] = []
    marks: list[tuple[int, int]] = []
    boxes: list[tuple[int, int, int, float, float, float, float]] = []
    page_starts: dict[int, tuple[int, str]] = {}
    offset = 0
    for number, lines in enumerate(pages, start=1):
        lines = [line for line in lines if line[0].strip()]
        if not lines:
            continue
        if text_parts:
            text_parts.append("\n\n")
            offset += 2
        start = offset
        for i, (line_text, x0, y0, x1, y1, new_paragraph) in enumerate(lines):
            line_text = " ".join(line_text.split())
            if i:
                sep = "\n\n" if new_paragraph else "\n"
                text_parts.append(sep)
                offset += len(sep)
            boxes.append((offset, offset + len(line_text), number, x0, y0, x1, y1))
            text_parts.append(line_text)
            offset += len(line_text)
        marks.append((start, number))
        page_starts[number] = (start, "".join(text_parts)[start:])
    text = "".join(text_parts)
    entries = sorted(_place_outline(outline, page_starts))
    placed = heading_paths(entries, sane_title(title))  # sorted by offset
    headings = list(placed)
    starts = {offset for offset, _ in placed}
    for offset, _ in marks[1:]:
        if offset not in starts:
            in_force = [path for at, path in placed if at <= offset]
            headings.append((offset, in_force[-1] if in_force else name))
    headings.sort()
    return Document(text, headings=headings, pages=marks, boxes=boxes)


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


# ------------------------------------------------------------------ the child: layout of a page


class _Item:
    """A piece of a page placed as a unit: a run of words on one line, or a table (its row lines)."""

    __slots__ = ("x0", "top", "x1", "bottom", "size", "lines")

    def __init__(self, x0: float, top: float, x1: float, bottom: float, size: float, lines: list) -> None:
        self.x0, self.top, self.x1, self.bottom, self.size = x0, top, x1, bottom, size
        self.lines = lines  # [(text, x0, top, x1, bottom)] in points; a table has one per row


def _words(textpage, height: float, ox: float, oy: float) -> list[tuple[str, float, float, float, float, float]]:
    """Words as (text, x0, top, x1, bottom, font size) in points from the top left, in content order."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    loose, matrix = pdfium_c.FS_RECTF(), pdfium_c.FS_MATRIX()
    loose_ref, matrix_ref = ctypes.byref(loose), ctypes.byref(matrix)
    ox_, oy_ = ctypes.c_double(), ctypes.c_double()
    # Bound once: this loop runs for every character of the document.
    get_unicode, get_size = pdfium_c.FPDFText_GetUnicode, pdfium_c.FPDFText_GetFontSize
    get_loose, get_origin = pdfium_c.FPDFText_GetLooseCharBox, pdfium_c.FPDFText_GetCharOrigin
    words: list = []
    cur: list = []  # [chars, x0, top, x1, bottom, size]
    for i in range(pdfium_c.FPDFText_CountChars(raw)):
        code = get_unicode(raw, i)
        ch = chr(code) if 0 < code < 0x110000 else ""
        if ch in "\ufffe\x02":  # pdfium's mark for a hyphen that ends a line: keep the hyphen
            ch = "-"
        if not ch or ch.isspace() or ch == "\uffff":  # pdfium's generated separators are spaces too
            if cur:
                words.append(cur)
                cur = []
            continue
        if not ch.isprintable() and ch != "\u00ad":
            continue  # a glyph with no meaning as text (private use, control)
        size = get_size(raw, i) or 10.0
        # "1 Tf" scaled up by the text matrix is common: the size drawn is the font size times the
        # matrix's vertical scale.
        if size < 4 and pdfium_c.FPDFText_GetMatrix(raw, i, matrix_ref):
            size *= math.hypot(matrix.c, matrix.d) or 1.0
        # The loose box spans the glyph's advance, so narrow letters ('I', 'l') don't leave gaps.
        if get_loose(raw, i, loose_ref):
            x0, x1 = loose.left - ox, loose.right - ox
        else:
            pdfium_c.FPDFText_GetCharBox(raw, i, left, right, bottom, top)
            x0, x1 = left.value - ox, right.value - ox
        # Lines get the font's height, not the glyph's, so 'a' and 'A' sit on the same line.
        if get_origin(raw, i, ox_, oy_):
            base = height - (oy_.value - oy)
        else:
            base = height - (loose.bottom - oy)
        t, b = base - 0.8 * size, base + 0.2 * size
        if cur:
            same_line = abs((cur[4] - 0.2 * cur[5]) - (b - 0.2 * size)) < 0.5 * max(size, cur[5])
            gap = x0 - cur[3]
            # Overlapping glyphs (the letters of a ligature share its box) stay in one word.
            if same_line and x0 >= cur[1] - 0.5 * size and gap < 0.25 * size:
                cur[0] += ch
                cur[1], cur[2], cur[3], cur[4] = min(cur[1], x0), min(cur[2], t), max(cur[3], x1), max(cur[4], b)
                cur[5] = max(cur[5], size)
                continue
            words.append(cur)
        cur = [ch, x0, t, x1, b, size]
    if cur:
        words.append(cur)
    return [(w[0].replace("\u00ad", ""), w[1], w[2], w[3], w[4], w[5]) for w in words]


def _fragments(words: list) -> list[_Item]:
    """Words joined into runs along a line; a gap wider than most of a font size starts a new run."""
    rows: list[list] = []
    for w in sorted(words, key=lambda w: (w[4], w[1])):
        for row in reversed(rows[-8:]):
            ref = row[0]
            if abs(w[4] - ref[4]) < 0.4 * max(w[5], ref[5]):
                row.append(w)
                break
        else:
            rows.append([w])
    items: list[_Item] = []
    for row in rows:
        row.sort(key=lambda w: w[1])
        run = [row[0]]
        for w in row[1:]:
            if w[1] - run[-1][3] > 0.8 * max(w[5], run[-1][5]):
                items.append(_run_item(run))
                run = []
            run.append(w)
        items.append(_run_item(run))
    return items


def _run_item(run: list) -> _Item:
    x0, top = min(w[1] for w in run), min(w[2] for w in run)
    x1, bottom = max(w[3] for w in run), max(w[4] for w in run)
    text = " ".join(w[0] for w in run)
    return _Item(x0, top, x1, bottom, max(w[5] for w in run), [(text, x0, top, x1, bottom)])


def _bands(items: list[_Item]) -> list[list[_Item]]:
    """Items grouped into horizontal bands: a band ends where nothing overlaps the next item's height."""
    bands: list[list[_Item]] = []
    bottom = -math.inf
    for item in sorted(items, key=lambda i: (i.top, i.x0)):
        overlap = min(bottom, item.bottom) - item.top
        if bands and overlap > 0.3 * min(item.bottom - item.top, bottom - bands[-1][0].top):
            bands[-1].append(item)
            bottom = max(bottom, item.bottom)
        else:
            bands.append([item])
            bottom = item.bottom
    return bands


def _gaps(items: list[_Item], lo: float, hi: float) -> list[tuple[float, float]]:
    """The stretches of [lo, hi] that no item covers."""
    gaps, x = [], lo
    for item in sorted(items, key=lambda i: i.x0):
        if item.x0 > x:
            gaps.append((x, item.x0))
        x = max(x, item.x1)
    if x < hi:
        gaps.append((x, hi))
    return gaps


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi > lo:
                out.append((lo, hi))
    return out


def _gutter(items: list[_Item], free: list[tuple[float, float]], min_gap: float) -> tuple[float, float] | None:
    """The widest free stretch with text on both sides that looks like a gutter between columns."""
    x0, x1 = min(i.x0 for i in items), max(i.x1 for i in items)
    inner = [(a, b) for a, b in free if a > x0 and b < x1 and b - a >= min_gap]
    for a, b in sorted(inner, key=lambda g: g[0] - g[1]):
        left = [i for i in items if i.x1 <= a]
        right = [i for i in items if i.x0 >= b]
        if len(left) < 3 or len(right) < 3:
            continue
        # Columns of prose are about as wide as each other and their lines fill them up to the
        # gutter; a table without rules or a definition list (terms beside descriptions) is not.
        extents = [max(i.x1 for i in side) - min(i.x0 for i in side) for side in (left, right)]
        if min(extents) < 0.5 * max(extents) or min(extents) < 0.25 * (x1 - x0):
            continue
        right_edge = max(i.x1 for i in right)
        short_left = _median([a - i.x1 for i in left]) > 0.15 * extents[0]
        short_right = _median([right_edge - i.x1 for i in right]) > 0.15 * extents[1]
        if not short_left and not short_right:
            return a, b
    return None


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def _order(items: list[_Item], depth: int = 0) -> list[tuple[str, float, float, float, float, bool]]:
    """Lines in reading order: columns (a run of bands sharing a gutter) one after the other."""
    if not items:
        return []
    lo, hi = min(i.x0 for i in items), max(i.x1 for i in items)
    min_gap = 0.8 * _median([i.size for i in items])
    bands = _bands(items)
    out: list[tuple[str, float, float, float, float, bool]] = []
    i = 0
    while i < len(bands):
        group, free, best, j = list(bands[i]), _gaps(bands[i], lo, hi), None, i + 1
        if depth < 3:
            while j < len(bands):
                merged_free = _intersect(free, _gaps(bands[j], lo, hi))
                merged = group + bands[j]
                if not any(b - a >= min_gap for a, b in merged_free if a > lo and b < hi):
                    break
                group, free, j = merged, merged_free, j + 1
                best = _gutter(group, free, min_gap) or best
        if best is not None:
            # Shrink the group back to the last band where the gutter held.
            while j - 1 > i and not _gutter(group, free, min_gap):
                j -= 1
                group = [it for band in bands[i:j] for it in band]
                free = [(lo, hi)]
                for band in bands[i:j]:
                    free = _intersect(free, _gaps(band, lo, hi))
            gutter = _gutter(group, free, min_gap)
            if gutter:
                left = [it for it in group if it.x1 <= gutter[0]]
                right = [it for it in group if it.x0 >= gutter[1]]
                for side in (left, right):
                    lines = _order(side, depth + 1)
                    if lines:
                        lines[0] = (*lines[0][:5], True)
                    out.extend(lines)
                i = j
                continue
        out.extend(_band_lines(bands[i], out))
        i += 1
    return out


def _band_lines(band: list[_Item], before: list) -> list[tuple[str, float, float, float, float, bool]]:
    """One band as lines: a table gives its rows, words on one line are joined left to right."""
    band = sorted(band, key=lambda it: it.x0)
    tables = [it for it in band if len(it.lines) != 1 or it.size < 0]
    rest = [it for it in band if it not in tables]
    out = []
    for table in tables:
        out.extend((*row, True) for row in table.lines)
    if rest:
        x0, top = min(i.x0 for i in rest), min(i.top for i in rest)
        x1, bottom = max(i.x1 for i in rest), max(i.bottom for i in rest)
        text = " ".join(it.lines[0][0] for it in rest)
        prev = before[-1] if before else None
        size = max(i.size for i in rest)
        new_paragraph = bool(tables) or prev is None or top - prev[4] > 0.6 * size
        out.append((text, x0, top, x1, bottom, new_paragraph))
    return out


def _edges(page, height: float, ox: float, oy: float) -> list[dict]:
    """The page's horizontal and vertical strokes (lines, sides of rectangles) in points from the top left."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    x, y = ctypes.c_float(), ctypes.c_float()
    edges: list[dict] = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=1):
        m = obj.get_matrix()
        start = prev = None
        for k in range(pdfium_c.FPDFPath_CountSegments(obj.raw)):
            seg = pdfium_c.FPDFPath_GetPathSegment(obj.raw, k)
            pdfium_c.FPDFPathSegment_GetPoint(seg, x, y)
            point = (m.a * x.value + m.c * y.value + m.e - ox, height - (m.b * x.value + m.d * y.value + m.f - oy))
            kind = pdfium_c.FPDFPathSegment_GetType(seg)
            if kind == pdfium_c.FPDF_SEGMENT_MOVETO:
                start = prev = point
                continue
            if prev is not None:
                _add_edge(edges, prev, point)
            if pdfium_c.FPDFPathSegment_GetClose(seg) and start is not None:
                _add_edge(edges, point, start)
            prev = point
    return edges


def _add_edge(edges: list[dict], a: tuple[float, float], b: tuple[float, float]) -> None:
    (x0, y0), (x1, y1) = a, b
    if abs(y0 - y1) < 1.0 and abs(x1 - x0) >= 2.0:
        lo, hi = sorted((x0, x1))
        edges.append({"x0": lo, "x1": hi, "top": y0, "bottom": y0, "width": hi - lo, "height": 0, "orientation": "h"})
    elif abs(x0 - x1) < 1.0 and abs(y1 - y0) >= 2.0:
        lo, hi = sorted((y0, y1))
        edges.append({"x0": x0, "x1": x0, "top": lo, "bottom": hi, "width": 0, "height": hi - lo, "orientation": "v"})


def _tables(edges: list[dict], words: list) -> list[_Item]:
    """Ruled tables (cells closed by lines) as rows "Header: value; Header: value", a line per row.

    pdfplumber's table geometry (edges to cells to tables) is run on the strokes pdfium reports,
    which spares parsing the page a second time with pdfminer (seconds per page).
    """
    from pdfplumber.table import cells_to_tables, edges_to_intersections, intersections_to_cells, merge_edges

    from docqa.ingest.formats import table_lines

    if len(edges) < 3:
        return []
    merged = merge_edges(edges, 3, 3, 3, 3)
    cells_per_table = cells_to_tables(intersections_to_cells(edges_to_intersections(merged, 3, 3)))
    items = []
    for cells in cells_per_table:
        tops = sorted({round(c[1]) for c in cells})
        lefts = sorted({round(c[0]) for c in cells})
        if len(tops) < 2 or len(lefts) < 2:
            continue
        grid: list[list[list]] = [[[] for _ in lefts] for _ in tops]
        row_boxes: list[list[float]] = [[math.inf, math.inf, -math.inf, -math.inf] for _ in tops]
        for x0, top, x1, bottom in cells:
            inside = [w for w in words if x0 <= (w[1] + w[3]) / 2 <= x1 and top <= (w[2] + w[4]) / 2 <= bottom]
            r, c = tops.index(round(top)), lefts.index(round(x0))
            grid[r][c] = inside
            box = row_boxes[r]
            box[:] = [min(box[0], x0), min(box[1], top), max(box[2], x1), max(box[3], bottom)]
        rows: list[tuple[list[str], tuple[float, float, float, float]]] = []
        for row, box in zip(grid, row_boxes, strict=True):
            rows.extend(_split_row(row, box))
        filled = [row for row in rows if any(row[0])]
        if not filled:
            continue
        header = filled[0][0]
        lines = [(table_lines([header, cells_])[0], *box) for cells_, box in filled[1:]]
        if not lines:
            lines = [(table_lines([header])[0], *filled[0][1])]
        x0, top = min(c[0] for c in cells), min(c[1] for c in cells)
        x1, bottom = max(c[2] for c in cells), max(c[3] for c in cells)
        items.append(_Item(x0, top, x1, bottom, -1.0, lines))
    return items + _open_tables(merged, words, items)


def _split_row(row: list[list], box: list[float]) -> list[tuple[list[str], tuple[float, float, float, float]]]:
    """A ruled row as cell texts; a row whose cells hold several lines each (a table ruled only
    between columns and under its header) becomes one row per line."""
    baselines: list[float] = []
    for w in sorted((w for cell in row for w in cell), key=lambda w: w[4]):
        if not baselines or w[4] - baselines[-1] > 0.4 * w[5]:
            baselines.append(w[4])

    def line_of(w) -> int:
        return min(range(len(baselines)), key=lambda k: abs(baselines[k] - w[4]))

    def text(words: list) -> str:
        return " ".join(w[0] for w in sorted(words, key=lambda w: (line_of(w), w[1])))

    counts = [len({line_of(w) for w in cell}) for cell in row]
    if len(baselines) < 2 or sum(1 for n in counts if n == len(baselines)) < 2:
        return [([text(cell) for cell in row], (box[0], box[1], box[2], box[3]))]
    out = []
    for k in range(len(baselines)):
        parts = [[w for w in cell if line_of(w) == k] for cell in row]
        ws = [w for part in parts for w in part]
        out.append(([text(p) for p in parts], (box[0], min(w[2] for w in ws), box[2], max(w[4] for w in ws))))
    return out


def _open_tables(edges: list[dict], words: list, ruled: list[_Item]) -> list[_Item]:
    """Tables with horizontal rules only (LaTeX booktabs: a top rule, a rule under the header, a
    bottom rule, no vertical lines): the columns are where no word of the body rows crosses."""
    from docqa.ingest.formats import table_lines

    rules = sorted((e for e in edges if e["orientation"] == "h" and e["width"] >= 30), key=lambda e: e["top"])
    items: list[_Item] = []
    used: set[int] = set()
    for k, first in enumerate(rules):
        if k in used:
            continue
        same = [
            j
            for j in range(k, len(rules))
            if abs(rules[j]["x0"] - first["x0"]) <= 3 and abs(rules[j]["x1"] - first["x1"]) <= 3
        ]
        # Rules of one table are stacked close together; a gap of more than 300 pt ends the table.
        run = [same[0]]
        for j in same[1:]:
            lo, hi = rules[run[-1]]["top"], rules[j]["top"]
            wider = any(
                lo < (w[2] + w[4]) / 2 < hi and not first["x0"] - 1 <= (w[1] + w[3]) / 2 <= first["x1"] + 1
                for w in words
            )
            if hi - lo > 300 or wider:  # far apart, or prose wider than the table between them
                break
            run.append(j)
        if len(run) < 3:
            continue
        x0, x1 = first["x0"], first["x1"]
        top, bottom, header_end = rules[run[0]]["top"], rules[run[-1]]["top"], rules[run[1]]["top"]
        if any(t.x0 < x1 and x0 < t.x1 and t.top < bottom and top < t.bottom for t in [*ruled, *items]):
            continue
        inside = [w for w in words if x0 - 1 <= (w[1] + w[3]) / 2 <= x1 + 1 and top < (w[2] + w[4]) / 2 < bottom]
        rows: list[list] = []
        for w in sorted(inside, key=lambda w: (w[4], w[1])):
            if rows and abs(w[4] - rows[-1][0][4]) < 0.4 * w[5]:
                rows[-1].append(w)
            else:
                rows.append([w])
        head = [r for r in rows if r[0][4] < header_end]
        body = [r for r in rows if r[0][4] >= header_end]
        if not head or len(body) < 2:
            continue
        size = _median([w[5] for w in inside])
        body_items = [_Item(w[1], w[2], w[3], w[4], w[5], []) for r in body for w in r]
        cuts = [(a + b) / 2 for a, b in _gaps(body_items, x0, x1) if b - a >= 0.6 * size and a > x0 and b < x1]
        if not cuts:
            continue

        def cells(row: list, cuts: list[float] = cuts) -> list[str]:
            out = [""] * (len(cuts) + 1)
            for w in sorted(row, key=lambda w: w[1]):
                col = sum(1 for c in cuts if (w[1] + w[3]) / 2 > c)
                out[col] = f"{out[col]} {w[0]}".strip()
            return out

        header = cells(head[-1])
        for row in head[:-1]:  # a spanning heading above fills columns the last header row leaves empty
            header = [h or c for h, c in zip(header, cells(row), strict=True)]
        grid = [cells(r) for r in body]
        if sum(1 for g in grid if sum(1 for c in g if c) >= 2) < len(grid) / 2:
            continue  # prose between rules, not a table
        lines = [
            (table_lines([header, g])[0], x0, min(w[2] for w in r), x1, max(w[4] for w in r))
            for g, r in zip(grid, body, strict=True)
        ]
        used.update(run)
        items.append(_Item(x0, top, x1, bottom, -1.0, lines))
    return items


def _has_rules(page) -> bool:
    """Whether a page draws lines or rectangles (then it may hold a ruled table)."""
    import pypdfium2.raw as pdfium_c

    paths = 0
    for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2):
        paths += 1
        if paths >= 3:
            return True
    return False


def _page_layout(page, textpage, rules: bool) -> tuple[list[Line], bool]:
    """A page's lines in reading order as fractions of the page, and whether it has any text."""
    x0, y0, x1, y1 = page.get_cropbox()
    width, height = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    words = _words(textpage, height, x0, y0)
    if not words:
        return [], False
    items: list[_Item] = _tables(_edges(page, height, x0, y0), words) if rules else []

    def in_table(w) -> bool:
        cx, cy = (w[1] + w[3]) / 2, (w[2] + w[4]) / 2
        return any(t.x0 <= cx <= t.x1 and t.top <= cy <= t.bottom for t in items)

    items.extend(_fragments([w for w in words if not in_table(w)]))
    lines = _order(items)
    return [
        (
            text,
            round(max(0.0, a / width), 4),
            round(max(0.0, b / height), 4),
            round(min(1.0, c / width), 4),
            round(min(1.0, d / height), 4),
            brk,
        )
        for text, a, b, c, d, brk in lines
    ], True


def _normalised(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.casefold().split()))


def drop_running_lines(pages: list[list[Line]], titles: Iterable[str] = ()) -> list[list[Line]]:
    """Pages without their running headers, footers and page numbers.

    A line in the top or bottom band of its page is dropped when it is a bare page number, when
    (digits ignored) it repeats in that band on at least 3 pages and a fifth of the pages, or when
    it starts or ends with the page's printed number (see below). A line that is one of `titles`
    (the bookmarks: "1 Introduction" at the top of printed page 1) is kept.
    """
    keep = {_normalised(t) for t in titles}

    def band_lines(lines: list[Line]) -> list[int]:
        top = [k for k, ln in enumerate(lines[:2]) if ln[4] <= BAND]
        bottom = [k for k in range(max(0, len(lines) - 2), len(lines)) if lines[k][2] >= 1 - BAND]
        return sorted(set(top + bottom))

    counts: Counter[str] = Counter()
    shifts: Counter[int] = Counter()  # printed page number minus the page's index, once per page
    for i, lines in enumerate(pages):
        counts.update({_normalised(lines[k][0]) for k in band_lines(lines)})
        shifts.update({n - i for k in band_lines(lines) for n in _end_numbers(lines[k][0])})
    with_text = sum(1 for lines in pages if lines)
    need = max(3, math.ceil(0.2 * with_text))
    # A chapter's running header ("Chapter 2: Setup 14") repeats on that chapter's pages only, but
    # its page number counts up with the pages: the band lines whose number keeps the most common
    # shift from the page index are headers or footers, whatever their words.
    shift, seen = shifts.most_common(1)[0] if shifts else (None, 0)
    numbered = seen >= max(3, math.ceil(0.1 * with_text))
    out = []
    for i, lines in enumerate(pages):
        drop = {
            k
            for k in band_lines(lines)
            if _normalised(lines[k][0]) not in keep
            and (
                (k in (0, len(lines) - 1) and _PAGE_NUMBER.match(lines[k][0].strip()))
                or counts[_normalised(lines[k][0])] >= need
                or (numbered and shift + i in _end_numbers(lines[k][0]))
            )
        }
        out.append([ln for k, ln in enumerate(lines) if k not in drop])
    return out


def _end_numbers(text: str) -> set[int]:
    """The numbers a line starts or ends with, where a running header or footer puts its page number.

    >>> sorted(_end_numbers("Chapter 2: ASN.1 structure handling 14")), sorted(_end_numbers("12 Setup"))
    ([14], [12])
    """
    if _LEADER.search(text):  # a table of contents' entry: its number is another page's
        return set()
    found = re.findall(r"^\s*(\d{1,4})\b|\b(\d{1,4})\s*$", text)
    return {int(a or b) for a, b in found}


def _pdf_pages(path: str, max_pages: int | None = None) -> dict:
    """Each page's lines, the pages without text, the bookmarks as [page, level, title], the title.

    max_pages (the first pages only) is for bench/pdf_extract.py.
    """
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise SystemExit("the PDF is encrypted with a password") from None
        if "security" in message.lower():
            raise SystemExit("the PDF is encrypted and can't be opened without its password") from None
        raise SystemExit(f"corrupt PDF ({message})") from None
    pages: list[list[Line]] = []
    no_text: list[int] = []
    for index in range(min(len(pdf), max_pages or len(pdf))):
        page = pdf[index]
        textpage = page.get_textpage()
        try:
            lines, has_text = _page_layout(page, textpage, _has_rules(page))
        except Exception:  # noqa: BLE001 - odd drawings must not lose the text: read it without tables
            lines, has_text = _page_layout(page, textpage, False)
        if not has_text and _draws_anything(page):
            no_text.append(index + 1)
        pages.append(lines)
        textpage.close()
        page.close()
    try:  # bookmarks and metadata are a bonus: a broken outline must not lose the text
        outline = _outline(pdf)
        title = pdf.get_metadata_dict().get("Title") or None
    except Exception:  # noqa: BLE001 - damaged outlines fail in many ways
        outline, title = [], None
    return {"pages": pages, "no_text": no_text, "outline": outline, "title": title}


def _draws_anything(page) -> bool:
    """Whether a page without text shows something (a scanned image), so OCR is worth trying."""
    return next(iter(page.get_objects(max_depth=2)), None) is not None


def _outline(pdf) -> list[list]:
    out: list[list] = []
    for item in pdf.get_toc(max_depth=16):
        dest = item.get_dest()
        page = dest.get_index() if dest is not None else None
        if page is not None and page >= 0:
            out.append([page + 1, item.level + 1, item.get_title() or ""])
    return out


if __name__ == "__main__":  # the child process of read_pdf
    print(json.dumps(_pdf_pages(sys.argv[1])))
