import zipfile
from pathlib import Path

import pytest

from docqa.readers import UnreadableFile, read_document


def test_txt_md_and_html(tmp_path: Path):
    (tmp_path / "a.md").write_text("# Title\n\nBody text.\n\n## Part\n\nMore.", encoding="utf-8")
    doc = read_document(tmp_path / "a.md")
    assert doc.heading_at(doc.text.index("More")) == "Part"

    html = (
        "<html><head><script>alert(1)</script><title>x</title></head>"
        "<body><h2>Costs</h2><p>Tea is <b>cheap</b>.</p></body></html>"
    )
    (tmp_path / "a.html").write_text(html, encoding="utf-8")
    doc = read_document(tmp_path / "a.html")
    assert "alert" not in doc.text
    assert "Tea is cheap ." in doc.text or "Tea is cheap." in doc.text
    assert doc.heading_at(doc.text.index("Tea")) == "Costs"


def test_docx(tmp_path: Path):
    import docx

    d = docx.Document()
    d.add_heading("Harvest", level=1)
    d.add_paragraph("The harvest begins in March.")
    d.save(tmp_path / "a.docx")
    doc = read_document(tmp_path / "a.docx")
    assert "begins in March" in doc.text
    assert doc.heading_at(doc.text.index("The harvest")) == "Harvest"


def test_pdf_pages(tmp_path: Path):
    pdf = make_pdf(["First page says hello.", "Second page says goodbye."])
    (tmp_path / "a.pdf").write_bytes(pdf)
    doc = read_document(tmp_path / "a.pdf")
    assert doc.page_at(doc.text.index("goodbye")) == 2
    assert doc.page_at(doc.text.index("hello")) == 1


def test_bad_files(tmp_path: Path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary\x00")
    with pytest.raises(UnreadableFile, match="binary"):
        read_document(tmp_path / "bin.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(UnreadableFile, match="no text"):
        read_document(tmp_path / "empty.txt")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(UnreadableFile, match="PDF"):
        read_document(tmp_path / "bad.pdf")
    with zipfile.ZipFile(tmp_path / "bad.docx", "w") as z:
        z.writestr("hello.txt", "not a docx")
    with pytest.raises(UnreadableFile, match="docx"):
        read_document(tmp_path / "bad.docx")
    (tmp_path / "a.xyz").write_text("x")
    with pytest.raises(UnreadableFile, match="unsupported"):
        read_document(tmp_path / "a.xyz")


def test_latin1_is_decoded_with_warning(tmp_path: Path):
    (tmp_path / "a.txt").write_bytes("Caf\xe9 prices rose.".encode("latin-1"))
    doc = read_document(tmp_path / "a.txt")
    assert doc.text == "Café prices rose."
    assert doc.warnings and "UTF-8" in doc.warnings[0]


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        content = len(objects)
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
