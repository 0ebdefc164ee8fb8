"""Turn answers, passages and index reports into HTML for the web page.

Everything that came from a document or from the model is escaped here, so the page shows it as
text: a passage holding `<script>` or `<img src=...>` can't run or load anything, and neither a
Markdown image or link nor a bare address becomes one. The only tags on the page (and the only
links: to the source cards, `#src-n`) are the ones written below. Pure functions; the web module
only places their output.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from docqa.answering.checks import support
from docqa.ingest.chunking import paragraph_spans, sentence_spans
from docqa.ingest.indexer import IndexReport
from docqa.retrieve.bm25 import tokenize
from docqa.serve.documents import DocumentRow, DocumentsPage
from docqa.types import Answer, Citation, Passage

ABSTAIN_BADGE = "Not found in the documents"
_MARKER = re.compile(r"\[(\d+)\]")  # the checked answer writes markers as plain "[n]"
# Besides HTML's own specials: "![x](url)" and "[x](url)" would become images and links if any
# later stage rendered Markdown, "$$" would start LaTeX, and "${...}" / "{{...}}" are template
# syntax in Gradio's HTML component. As entities they display the same and mean nothing.
_INERT = str.maketrans({"!": "&#33;", "[": "&#91;", "]": "&#93;", "$": "&#36;", "{": "&#123;", "}": "&#125;"})


# Addresses: Markdown renderers and chat widgets turn "http://...", "www...." and "a@b.example" into
# links (GFM autolinks). With their punctuation as entities they display the same and link nowhere:
# an address from a document or the model is shown, never followed or fetched.
_ADDRESS = re.compile(r"(?i)(?<=[a-z0-9])://|\bwww\.|@(?=[\w-]+\.)")
_ADDRESS_INERT = {"://": "&#58;&#47;&#47;", "www.": "www&#46;", "@": "&#64;"}


def esc(text: str) -> str:
    """Escape text for HTML so that it can only ever display as text: no tag, no Markdown image or
    link, no address that a renderer would turn into a link.

    >>> esc('<img src=x onerror="alert(1)"> ![y](http://e.com/y.png)')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &#33;&#91;y&#93;(http&#58;&#47;&#47;e.com/y.png)'
    >>> esc("www.evil.example or me@evil.example")
    'www&#46;evil.example or me&#64;evil.example'
    """
    escaped = html.escape(text, quote=True).translate(_INERT)
    return _ADDRESS.sub(lambda m: _ADDRESS_INERT[m.group().lower()], escaped)


def esc_lines(text: str) -> str:
    """Escape, keeping line breaks visible.

    >>> esc_lines("a<b\\nc")
    'a&lt;b<br>c'
    """
    return "<br>".join(esc(line) for line in text.split("\n"))


_CHUNK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def chunk_class(chunk_id: str) -> str:
    """The class that names a passage's chunk on a marker or card, so a click can open it in the
    viewer (the chat's sanitizer keeps classes but drops data- attributes); "" for an odd id.

    >>> chunk_class("3f2a9c0d1e4b5a6f"), chunk_class('x" onclick="y')
    ('chunk-3f2a9c0d1e4b5a6f', '')
    """
    return f"chunk-{chunk_id}" if _CHUNK_ID.fullmatch(chunk_id or "") else ""


def link_markers(text: str, known: Iterable[int], chunks: Mapping[int, str] | None = None) -> str:
    """Escape an answer and turn each [n] naming a known passage into a link to its card `#src-n`;
    `chunks` maps n to its chunk id, which the link carries for the viewer.

    >>> link_markers("It rose [1]. <b>[7]</b>", [1])
    'It rose <a class="cite" href="#src-1" title="Show passage 1">[1]</a>. &lt;b&gt;&#91;7&#93;&lt;/b&gt;'
    >>> link_markers("It rose [1].", [1], {1: "ab12"})
    'It rose <a class="cite chunk-ab12" href="#src-1" title="Show passage 1">[1]</a>.'
    """
    known = set(known)
    chunks = chunks or {}
    out: list[str] = []
    pos = 0
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        if n not in known:
            continue
        out.append(esc_lines(text[pos : m.start()]))
        css = " ".join(filter(None, ["cite", chunk_class(chunks.get(n, ""))]))
        out.append(f'<a class="{css}" href="#src-{n}" title="Show passage {n}">[{n}]</a>')
        pos = m.end()
    out.append(esc_lines(text[pos:]))
    return "".join(out)


def answer_html(answer: Answer) -> str:
    """The chat bubble for a finished answer; an abstention gets its own class and a badge."""
    if answer.abstained:
        reason = f'<div class="abstain-reason">{esc(answer.abstain_reason)}</div>' if answer.abstain_reason else ""
        return (
            f'<div class="docqa-answer abstained"><span class="badge">{ABSTAIN_BADGE}</span> '
            f"{esc_lines(answer.answer)}{reason}</div>"
        )
    chunks = {c.n: c.passage.chunk.id for c in answer.citations}
    body = link_markers(answer.answer, chunks, chunks)
    return f'<div class="docqa-answer">{body}</div>'


def streaming_html(partial: str) -> str:
    """The chat bubble while the answer streams: the draft's sentences that passed the per-sentence
    checks so far (`Pipeline.stream`), escaped; the checked answer replaces it."""
    return f'<div class="docqa-answer streaming">{esc_lines(partial)}<span class="cursor">▍</span></div>'


def error_html(message: str) -> str:
    return f'<div class="docqa-answer failed"><span class="badge">Error</span> {esc(message)}</div>'


def question_html(question: str) -> str:
    return f'<div class="docqa-question">{esc_lines(question)}</div>'


def supporting_span(passage_text: str, claims: Sequence[str]) -> tuple[int, int] | None:
    """The (start, end) of the passage sentence that best supports the answer sentences `claims`.

    Best = covers the largest share of a claim's content words (numbers weigh three words), first
    such sentence on ties. None when no sentence shares a word with any claim.

    >>> text = "Tea grows in Yunnan. The harvest begins in March. It ends in October."
    >>> s, e = supporting_span(text, ["The harvest begins in March [1]."])
    >>> text[s:e]
    'The harvest begins in March.'
    """
    best: tuple[float, int, int] | None = None
    for para in paragraph_spans(passage_text):
        for span in sentence_spans(passage_text, para):
            sentence = passage_text[span.start : span.end]
            if not tokenize(sentence):
                continue
            score = max((support(claim, sentence) for claim in claims), default=0.0)
            if score > 0 and (best is None or score > best[0]):
                best = (score, span.start, span.end)
    return (best[1], best[2]) if best else None


def passage_text_html(text: str, claims: Sequence[str] = ()) -> str:
    """The passage, escaped, with the sentence supporting `claims` wrapped in <mark>.

    >>> passage_text_html("Tea <b>grows</b>. It rose to 60.60% in 2019.", ["The rate was 60.60% in 2019."])
    'Tea &lt;b&gt;grows&lt;/b&gt;. <mark>It rose to 60.60% in 2019.</mark>'
    """
    span = supporting_span(text, claims) if claims else None
    if span is None:
        return esc_lines(text)
    start, end = span
    return f"{esc_lines(text[:start])}<mark>{esc_lines(text[start:end])}</mark>{esc_lines(text[end:])}"


def location(passage: Passage) -> str:
    """Where the passage sits in its file: the page for PDFs, else character offsets.

    >>> from docqa.types import Chunk
    >>> location(Passage(1, Chunk("id", "a.txt", "text", 1948, 2495), 0.7))
    'characters 1948–2495'
    """
    c = passage.chunk
    if c.page is not None:
        return f"page {c.page}"
    return f"characters {c.start}–{c.end}"


def passage_card(passage: Passage, claims: Sequence[str] = (), cited: bool = True) -> str:
    """One source card; its id `src-n` is the target of the answer's [n] links."""
    c = passage.chunk
    heading = f'<span class="src-heading">{esc(c.heading)}</span>' if c.heading else ""
    css = " ".join(filter(None, ["src-card", "cited" if cited else "", chunk_class(c.id)]))
    opens = '<span class="src-open">Show in document</span>' if chunk_class(c.id) else ""
    return (
        f'<div class="{css}" id="src-{passage.n}" title="Click to show the passage in its document">'
        f'<div class="src-head"><span class="src-n">[{passage.n}]</span> '
        f'<span class="src-file">{esc(c.source)}</span>{heading}'
        f'<span class="src-loc">{esc(location(passage))}</span>{opens}</div>'
        f'<div class="src-text">{passage_text_html(c.text, claims)}</div></div>'
    )


def sources_html(answer: Answer | None) -> str:
    """The sources panel: cited passages with the supporting sentence marked, the rest collapsed."""
    if answer is None:
        return '<div class="docqa-sources empty">Sources of the answer appear here.</div>'
    parts = ['<div class="docqa-sources">']
    parts.append(f'<div class="src-question">Question: {esc(answer.question)}</div>')
    if answer.standalone_question:
        parts.append(f'<div class="src-rewritten">Searched as: {esc(answer.standalone_question)}</div>')
    for notice in answer.notices:
        parts.append(f'<div class="src-notice">{esc(notice)}</div>')
    if answer.abstained:
        parts.append(f'<div class="src-abstained"><span class="badge">{ABSTAIN_BADGE}</span>')
        if answer.abstain_reason:
            parts.append(f" {esc(answer.abstain_reason)}")
        parts.append("</div>")
    cited = {c.n: c for c in answer.citations}
    if answer.citations:
        parts.append("<h4>Cited passages</h4>")
        parts.extend(citation_card(c) for c in answer.citations)
    others = [p for p in answer.retrieved if p.n not in cited]
    if others:
        label = "passage" if len(others) == 1 else "passages"
        parts.append(f'<details class="uncited"><summary>{len(others)} more {label} retrieved, not cited</summary>')
        parts.extend(passage_card(p, cited=False) for p in others)
        parts.append("</details>")
    parts.append("</div>")
    return "".join(parts)


def citation_card(citation: Citation) -> str:
    return passage_card(citation.passage, citation.sentences, cited=True)


def status_line(status: dict) -> str:
    """One line about the index and models, from `Pipeline.status()`.

    >>> status_line({"documents": 1, "chunks": 28, "embed_model": "m", "llm": "q", "built_at": "2026-01-01"})
    '1 document · 28 chunks · indexed 2026-01-01 · embeddings m · answers q'
    """
    docs = status.get("documents", 0)
    parts = [f"{docs} document{'s' if docs != 1 else ''}", f"{status.get('chunks', 0)} chunks"]
    if status.get("built_at"):
        parts.append(f"indexed {status['built_at']}")
    parts.append(f"embeddings {status.get('embed_model')}")
    parts.append(f"answers {status.get('llm')}")
    return " · ".join(esc(str(p)) for p in parts)


def report_html(report: IndexReport) -> str:
    """What a re-index did, with every file that failed and why."""
    parts = [f'<div class="docqa-report"><div>{esc(report.summary())}</div>']
    if report.rebuilt_because:
        parts.append(f"<div>Rebuilt: {esc(report.rebuilt_because)}</div>")
    for label, items in (("Added", report.added), ("Updated", report.updated), ("Removed", report.removed)):
        if items:
            parts.append(f"<div>{label}: {esc(', '.join(items))}</div>")
    if report.failed:
        parts.append('<div class="failed"><b>Not indexed:</b><ul>')
        parts.extend(f"<li>{esc(p.source)}: {esc(p.reason)}</li>" for p in report.failed)
        parts.append("</ul></div>")
    if report.warnings:
        parts.append('<div class="warnings"><b>Warnings:</b><ul>')
        parts.extend(f"<li>{esc(p.source)}: {esc(p.reason)}</li>" for p in report.warnings)
        parts.append("</ul></div>")
    parts.append("</div>")
    return "".join(parts)


def messages_html(lines: Iterable[str], css: str = "docqa-messages") -> str:
    """Escaped lines as a list, e.g. the outcome of an upload."""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<ul class="{css}">{items}</ul>' if items else ""


def human_size(size: int | None) -> str:
    """Bytes for people.

    >>> human_size(14653), human_size(3_200_000), human_size(None)
    ('14.3 KB', '3.2 MB', '–')
    """
    if size is None:
        return "–"
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1e6:.1f} MB"


def documents_page_html(page: DocumentsPage) -> str:
    """One page of the Documents table, led by which rows it shows of how many."""
    summary = f'<div class="docqa-docs-summary">{esc(page.summary())} · page {page.page:,} of {page.pages:,}</div>'
    if not page.rows and page.total:
        return summary
    return summary + documents_html(page.rows)


def documents_html(rows: Sequence[DocumentRow]) -> str:
    """The Documents tab's table: file, state, chunks, size, when indexed, and why a file failed."""
    if not rows:
        return '<div class="docqa-docs empty">No documents yet: upload some below.</div>'
    head = "<tr><th>File</th><th>State</th><th>Chunks</th><th>Size</th><th>Last indexed</th><th>Note</th></tr>"
    body = "".join(
        f'<tr class="{re.sub(r"[^a-z]+", "-", row.state)}"><td>{esc(row.source)}</td><td>{esc(row.state)}</td>'
        f"<td>{'' if row.chunks is None else row.chunks}</td><td>{esc(human_size(row.size_bytes))}</td>"
        f"<td>{esc(row.indexed_at or '')}</td><td>{esc(row.note or '')}</td></tr>"
        for row in rows
    )
    return f'<table class="docqa-docs">{head}{body}</table>'
