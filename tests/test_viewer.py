"""The viewer shows a cited passage at the place the index recorded, in real small files."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from docqa.ingest.chunking import chunk_document
from docqa.ingest.readers import Document, read_document
from docqa.serve.render import esc_lines
from docqa.serve.viewer import BEFORE_CHARS, Viewer, boxes_on_page, section_around
from docqa.types import Chunk
from support import make_pdf

MARKDOWN = """# Tea in Yunnan

Yunnan grows most of China's pu-erh tea. Farmers in Pu'er city picked 120 tonnes of leaves in 2020.

## Harvest

The harvest begins in March and ends in October. Pickers work <script>window.x=1</script> from dawn.
See ![chart](http://10.255.255.1/c.png) and www.example.org for more.

## Rice terraces

The Hani terraces cover 16,603 hectares.
"""


def words(text: str) -> int:
    return len(text.split())


def chunks_of(path: Path, docs: Path, max_tokens: int = 40) -> list[Chunk]:
    """The chunks the indexer would store for `path` (same reader, same chunker)."""
    return chunk_document(read_document(path), path.relative_to(docs).as_posix(), words, max_tokens, 8)


def chunk_with(chunks: list[Chunk], needle: str) -> Chunk:
    return next(c for c in chunks if needle in c.text)


def marked(html: str) -> str:
    found = re.search(r"<mark[^>]*>(.*?)</mark>", html, re.S)
    assert found, html
    return found.group(1)


@pytest.fixture
def md(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "tea.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    return docs, path


def test_markdown_passage_is_marked_in_its_section(md):
    docs, path = md
    chunk = chunk_with(chunks_of(path, docs), "harvest begins")
    html = Viewer(docs).html(chunk)
    assert "The harvest begins in March" in marked(html)
    assert "## Harvest" in html  # the section from its heading
    assert "Hani terraces" not in html and "120 tonnes" not in html  # the other sections are left out
    assert "tea.md" in html and "Harvest" in html


def test_document_text_stays_text(md):
    docs, path = md
    html = Viewer(docs).html(chunk_with(chunks_of(path, docs), "harvest begins"))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<img" not in html  # the Markdown image is shown as text, loading nothing
    assert "http://" not in html and "www." not in html  # addresses are inert


def test_changed_file_says_so_and_shows_the_stored_passage(md):
    docs, path = md
    chunk = chunk_with(chunks_of(path, docs), "harvest begins")
    viewer = Viewer(docs)
    assert "changed since it was indexed" not in viewer.html(chunk)  # read and cached while unchanged
    path.write_text("# New\n\nSomething else entirely, written after indexing.\n" + MARKDOWN, encoding="utf-8")
    html = viewer.html(chunk)
    assert "changed since it was indexed" in html and "Re-index" in html
    assert marked(html) == esc_lines(chunk.text)  # the passage as stored in the index
    assert "Something else entirely" not in html  # no guessing at where the passage went


def test_whitespace_differences_are_not_a_change(md):
    docs, path = md
    chunk = chunk_with(chunks_of(path, docs), "harvest begins")
    spaced = Chunk(chunk.id, chunk.source, "  " + chunk.text.replace(" ", "\n"), chunk.start, chunk.end, chunk.heading)
    assert "changed since" not in Viewer(docs).html(spaced)


def test_missing_and_outside_files_get_a_message(md, tmp_path: Path):
    docs, path = md
    chunk = chunk_with(chunks_of(path, docs), "harvest begins")
    path.unlink()
    html = Viewer(docs).html(chunk)
    assert "no longer in the documents folder" in html and "harvest begins" in marked(html)
    outside = Chunk("x", "../secret.md", "s", 0, 1)
    (tmp_path / "secret.md").write_text("s", encoding="utf-8")
    assert "climbs out of the documents folder" in Viewer(docs).html(outside)


def test_long_section_is_cut_around_the_passage(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(f"Line {i} of the long preamble." for i in range(300))
    path = docs / "long.md"
    path.write_text(f"# Long\n\n{filler}\n\nThe needle sentence sits here.\n\n{filler}\n", encoding="utf-8")
    chunk = chunk_with(chunks_of(path, docs), "needle sentence")
    doc = read_document(path)
    section = section_around(doc, chunk.start, chunk.end)
    assert section.cut_before and section.cut_after
    assert chunk.start - section.start <= BEFORE_CHARS
    html = Viewer(docs).html(chunk)
    assert "needle sentence" in marked(html) and "…" in html
    assert len(html) < 6000  # not the whole 18,000-character section


def test_html_document_section(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "page.html"
    path.write_text(
        "<html><title>Guide</title><body><h1>Intro</h1><p>Welcome text.</p><h2>Setup</h2>"
        "<p>Run the installer twice <b>before</b> lunch.</p><h2>Later</h2><p>Other things.</p></body></html>",
        encoding="utf-8",
    )
    chunk = chunk_with(chunks_of(path, docs), "installer")
    html = Viewer(docs).html(chunk)
    assert "installer twice" in marked(html)
    assert "Setup" in html and "Welcome text" not in html and "Other things" not in html
    assert "<b>" not in html


def pdf_docs(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "report.pdf"
    path.write_bytes(make_pdf(["The first page talks about tea.", "The Hani terraces cover 16603 hectares."]))
    return docs, path


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def png_of(html: str) -> Image.Image:
    found = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="Page (\d+)"', html)
    assert found, html[:500]
    return Image.open(io.BytesIO(base64.b64decode(found.group(1))))


def test_pdf_page_is_rendered_with_the_passage_marked(tmp_path: Path):
    docs, path = pdf_docs(tmp_path)
    chunk = chunk_with(chunks_of(path, docs, max_tokens=8), "Hani")
    assert chunk.page == 2
    html = Viewer(docs).html(chunk)
    assert 'alt="Page 2"' in html
    image = png_of(html)
    assert abs(image.width - 900) <= 1 and abs(image.height - 900 * 792 / 612) <= 1.5  # a Letter page, 900 px wide
    assert "Hani terraces cover 16603 hectares" in marked(html)
    if not read_document(path).boxes:  # the PDF reader gives no line positions: say so, draw nothing
        assert "can't be drawn" in html and "viewer-hl" not in html
    else:
        assert 'class="viewer-hl"' in html


class BoxedViewer(Viewer):
    """The real reader's document, with line boxes added (as a PDF reader that gives them would)."""

    def document(self, path: Path) -> Document:
        doc = super().document(path)
        boxes = []
        for offset, page in doc.pages:
            end = doc.text.find("\n\n", offset)
            boxes.append((offset, len(doc.text) if end == -1 else end, page, 0.1, 0.08, 0.6, 0.1))
        return Document(doc.text, doc.headings, pages=doc.pages, boxes=boxes)


def test_pdf_line_boxes_are_drawn_over_the_page(tmp_path: Path):
    docs, path = pdf_docs(tmp_path)
    chunk = chunk_with(chunks_of(path, docs, max_tokens=8), "Hani")
    html = BoxedViewer(docs).html(chunk)
    assert html.count('class="viewer-hl"') == 1  # page 2's line; page 1's box is not on this page
    assert 'style="left:10.00%;top:8.00%;width:50.00%;height:2.00%"' in html
    assert "can't be drawn" not in html


def test_boxes_on_page_keeps_overlapping_lines_only():
    boxes = [(0, 10, 1, 0.1, 0.1, 0.9, 0.12), (10, 20, 1, 0.1, 0.13, 0.9, 0.15), (20, 30, 1, 0.1, 0.16, 0.9, 0.18)]
    assert boxes_on_page(boxes, 12, 22, 1) == [(0.1, 0.13, 0.9, 0.15), (0.1, 0.16, 0.9, 0.18)]
    assert boxes_on_page(boxes, 12, 22, 2) == []


def test_pages_and_documents_are_cached_until_the_file_changes(tmp_path: Path):
    docs, path = pdf_docs(tmp_path)
    chunk = chunk_with(chunks_of(path, docs, max_tokens=8), "Hani")
    calls = []

    def render(p: Path, page: int) -> bytes:
        calls.append(page)
        image = Image.new("RGB", (10, 13), "white")
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    viewer = Viewer(docs, render=render)
    viewer.html(chunk)
    viewer.html(chunk)
    assert calls == [2]
    path.write_bytes(make_pdf(["The first page talks about tea!", "The Hani terraces cover 16603 hectares."]))
    viewer.html(chunk)
    assert calls == [2, 2]  # re-rendered for the changed file


def test_passage_across_pages_shows_its_first_page_and_says_it_continues(tmp_path: Path):
    docs, path = pdf_docs(tmp_path)
    doc = read_document(path)
    chunk = Chunk("both", "report.pdf", doc.text, 0, len(doc.text), page=1)  # a passage over both pages
    html = Viewer(docs, render=lambda p, page: PNG_1PX).html(chunk)
    assert 'alt="Page 1"' in html and "continues on page 2" in html
    assert "first page talks about tea." in marked(html) and "Hani terraces" in marked(html)


def test_unrenderable_page_still_shows_the_text(tmp_path: Path):
    docs, path = pdf_docs(tmp_path)
    chunk = chunk_with(chunks_of(path, docs, max_tokens=8), "Hani")
    chunk = Chunk(chunk.id, chunk.source, chunk.text, chunk.start, chunk.end, chunk.heading, page=9)
    html = Viewer(docs).html(chunk)
    assert "could not render page 9" in html and "the PDF has 2 pages" in html
    assert "Hani terraces" in marked(html)


# --- the web page's side: markers and cards name their chunk, and the handler finds it ---------------


def test_markers_and_cards_carry_their_chunk_for_the_viewer(md):
    from docqa.serve import render
    from docqa.types import Answer, Citation, Passage

    docs, path = md
    chunk = chunk_with(chunks_of(path, docs), "harvest begins")
    passage = Passage(1, chunk, 0.9)
    answer = Answer("q", "It begins in March [1].", False, [Citation(passage)], [passage], {}, "fake")
    assert f'class="cite chunk-{chunk.id}" href="#src-1"' in render.answer_html(answer)
    assert f'class="src-card cited chunk-{chunk.id}" id="src-1"' in render.sources_html(answer)
    odd = Passage(1, Chunk('x" onclick="alert(1)', "tea.md", "t", 0, 1), 0.9)
    odd_answer = Answer("q", "It begins [1].", False, [Citation(odd)], [odd], {}, "fake")
    assert "onclick" not in render.answer_html(odd_answer) and "onclick" not in render.sources_html(odd_answer)


def test_view_handler_opens_passages_of_this_conversation_only(make_pipeline):
    from types import SimpleNamespace

    from docqa.serve import web

    handlers = web.Handlers(web.Pipelines(make_pipeline("The harvest begins in March [1].")))
    *_, (_, _, history) = handlers.respond("When does the tea harvest begin?", [], "default", 4, 160)
    cited = history[-1].citations[0].passage.chunk
    html = handlers.view(history, SimpleNamespace(_data={"chunk": cited.id}))
    assert "harvest begins in March" in marked(html) and "yunnan.txt" in html
    assert "not in this conversation" in handlers.view(history, SimpleNamespace(_data={"chunk": "0" * 16}))
    assert "not in this conversation" in handlers.view([], SimpleNamespace(_data={"chunk": cited.id}))
    assert "not in this conversation" in handlers.view(history, SimpleNamespace(_data="junk"))
