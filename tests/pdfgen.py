"""Small PDFs written by hand for the PDF layout tests and bench/pdf_extract.py.

Each page is a content stream: Helvetica text placed with `Td`/`Tj`, rules drawn with `m`/`l`/`S`,
and optionally a grey inline image (a stand-in for a scanned page). Coordinates are PDF points,
origin bottom left, on a US Letter page (612 x 792).
"""

from __future__ import annotations

WIDTH, HEIGHT = 612, 792


def text(x: float, y: float, s: str, size: float = 10) -> str:
    """One line of Helvetica at (x, y), baseline y."""
    escaped = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 {size:g} Tf {x:g} {y:g} Td ({escaped}) Tj ET\n"


def rule(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"0.5 w {x0:g} {y0:g} m {x1:g} {y1:g} l S\n"


def image(x: float, y: float, w: float, h: float) -> str:
    """A 2 x 2 grey inline image scaled to w x h: a page that shows something but has no text."""
    return f"q {w:g} 0 0 {h:g} {x:g} {y:g} cm BI /W 2 /H 2 /CS /G /BPC 8 ID \x80\x40\x40\x80 EI Q\n"


def ruled_table(x: float, top: float, widths: list[float], rows: list[list[str]], row_h: float = 18) -> str:
    """A table with every cell closed by rules, text 5 pt in from each cell's left and bottom."""
    ops = []
    right = x + sum(widths)
    bottom = top - row_h * len(rows)
    for k in range(len(rows) + 1):
        ops.append(rule(x, top - k * row_h, right, top - k * row_h))
    edge = x
    for w in [0, *widths]:
        edge += w
        ops.append(rule(edge, top, edge, bottom))
    for r, row in enumerate(rows):
        left = x
        for w, cell in zip(widths, row, strict=False):
            if cell:
                ops.append(text(left + 5, top - (r + 1) * row_h + 5, cell))
            left += w
    return "".join(ops)


def open_table(x: float, top: float, widths: list[float], rows: list[list[str]], row_h: float = 14) -> str:
    """A table in the LaTeX booktabs style: rules above and below the header and at the bottom, no
    vertical lines, so the columns show only as the space between them."""
    right = x + sum(widths)
    bottom = top - row_h * len(rows) - 4
    ops = [rule(x, top, right, top), rule(x, top - row_h - 2, right, top - row_h - 2), rule(x, bottom, right, bottom)]
    for r, row in enumerate(rows):
        left = x
        for w, cell in zip(widths, row, strict=False):
            if cell:
                ops.append(text(left + 5, top - (r + 1) * row_h + (1 if r == 0 else -1), cell))
            left += w
    return "".join(ops)


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF whose pages have the given content streams (Helvetica as /F1)."""
    objects: list[bytes | None] = [b"<< /Type /Catalog /Pages 2 0 R >>", None]
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for content in pages:
        data = content.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>".encode()
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + (obj or b"") + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


# ------------------------------------------------------------------ fixtures shared with the bench

LEFT = [f"Left column sentence {n} tells of the harbour." for n in range(1, 9)]
RIGHT = [f"Right column sentence {n} tells of the mill." for n in range(1, 9)]


def two_columns() -> bytes:
    """A full-width title over two columns of eight lines each, lines side by side."""
    ops = [text(72, 720, "Two Column Report", 16)]
    for n, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        ops.append(text(72, 680 - 14 * n, left))
        ops.append(text(320, 680 - 14 * n, right))
    return make_pdf(["".join(ops)])


TABLE = [
    ["Region", "Year", "Sales"],
    ["North", "2021", "310"],
    ["South", "2022", "475"],
    ["East", "2023", "128"],
]


def table_pages() -> bytes:
    """Page 1 prose; page 2 a paragraph, then a ruled table of sales, then a closing line."""
    page1 = text(72, 700, "The company sells tea in three regions.") + text(72, 686, "Details follow.")
    page2 = (
        text(72, 700, "Sales by region and year are in the table below.")
        + ruled_table(72, 660, [120, 80, 80], TABLE)
        + text(72, 560, "Figures are in thousands of boxes.")
    )
    return make_pdf([page1, page2])


HEADER = "Acme Tea Annual Review 2024"
BODY = [
    "The first chapter covers planting on the terraces.",
    "The second chapter covers the harvest season.",
    "The third chapter covers drying and packing.",
]


def running_headers() -> bytes:
    """Three pages with the same running header, a page-numbered footer and a bare page number."""
    pages = []
    for n, body in enumerate(BODY, start=1):
        pages.append(
            text(72, 760, HEADER, 9)
            + text(72, 700, body)
            + text(72, 686, f"Page {n} continues with more about step {n}.")
            + text(300, 40, str(n), 9)
        )
    return make_pdf(pages)
