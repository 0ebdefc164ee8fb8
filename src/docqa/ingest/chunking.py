"""Split a document's text into overlapping chunks that fit the embedder's window.

Chunks are built from whole sentences, never cross a heading, and carry a little of the previous
chunk's tail so a fact split across a boundary is still found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from docqa.ingest.readers import Document
from docqa.types import Chunk

TokenCounter = Callable[[str], int]  # text -> number of embedder word pieces

# A sentence ends at . ! ? (optionally followed by quotes or brackets) before whitespace and a
# capital, digit or opening quote. Abbreviations like "Dr." split wrongly; harmless for retrieval.
_SENTENCE_END = re.compile(r"(?<=[.!?…。])[\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_PARAGRAPH = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive


def paragraph_spans(text: str) -> list[Span]:
    """Non-empty paragraphs, whitespace trimmed.

    >>> paragraph_spans("one.\\n\\ntwo.")
    [Span(start=0, end=4), Span(start=6, end=10)]
    """
    spans, pos = [], 0
    for m in _PARAGRAPH.finditer(text):
        spans.append(Span(pos, m.start()))
        pos = m.end()
    spans.append(Span(pos, len(text)))
    return [s for s in (_strip(text, s) for s in spans) if s.end > s.start]


def sentence_spans(text: str, para: Span) -> list[Span]:
    """Sentences of one paragraph.

    >>> sentence_spans("It rose. Then it fell.", Span(0, 22))
    [Span(start=0, end=8), Span(start=9, end=22)]
    """
    spans, pos = [], para.start
    for m in _SENTENCE_END.finditer(text, para.start, para.end):
        spans.append(Span(pos, m.start()))
        pos = m.end()
    spans.append(Span(pos, para.end))
    return [s for s in (_strip(text, s) for s in spans) if s.end > s.start]


def _strip(text: str, span: Span) -> Span:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def split_long(text: str, span: Span, max_tokens: int, count: TokenCounter) -> list[Span]:
    """Cut a sentence that alone exceeds the window into word-boundary pieces that fit."""
    if count(text[span.start : span.end]) <= max_tokens:
        return [span]
    words = [Span(m.start(), m.end()) for m in re.finditer(r"\S+", text[span.start : span.end])]
    pieces, first = [], 0
    for i in range(1, len(words) + 1):
        piece = text[span.start + words[first].start : span.start + words[i - 1].end]
        if (
            i < len(words)
            and count(piece + " " + text[span.start + words[i].start : span.start + words[i].end]) <= max_tokens
        ):
            continue
        pieces.append(Span(span.start + words[first].start, span.start + words[i - 1].end))
        first = i
    return pieces


def chunk_document(
    doc: Document,
    source: str,
    count: TokenCounter,
    max_tokens: int = 128,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """Pack sentences into chunks of at most `max_tokens`, breaking at headings.

    A new chunk starts with the trailing sentences of the previous one, as long as they total no
    more than `overlap_tokens`. A heading line starts its section's first chunk, and every chunk
    of the section carries it as `heading` (a heuristic heading may be a real sentence, so its
    text is never dropped).
    """
    text = doc.text
    heading_starts = {start for start, _ in doc.headings} - doc.soft_headings
    # Each unit: (span, tokens, section number). Units of different sections never share a chunk.
    units: list[tuple[Span, int, int]] = []
    section = 0
    for para in paragraph_spans(text):
        if para.start in heading_starts:
            section += 1  # the heading opens its section's first chunk
        for sent in sentence_spans(text, para):
            for piece in split_long(text, sent, max_tokens, count):
                units.append((piece, count(text[piece.start : piece.end]), section))

    chunks: list[Chunk] = []
    current: list[tuple[Span, int, int]] = []

    def flush() -> None:
        start, end = current[0][0].start, current[-1][0].end
        body = text[start:end]
        chunks.append(
            Chunk(
                id=chunk_id(source, start, end, body),
                source=source,
                text=body,
                start=start,
                end=end,
                heading=doc.heading_at(start),
                page=doc.page_at(start),
            )
        )

    for unit in units:
        if current and (unit[2] != current[-1][2] or _tokens(current) + unit[1] > max_tokens):
            flush()
            carry: list[tuple[Span, int, int]] = []
            if unit[2] == current[-1][2]:
                for prev in reversed(current):
                    if _tokens(carry) + prev[1] > overlap_tokens or _tokens(carry) + prev[1] + unit[1] > max_tokens:
                        break
                    carry.insert(0, prev)
            current = carry
        current.append(unit)
    if current:
        flush()
    return chunks


def _tokens(units: list[tuple[Span, int, int]]) -> int:
    return sum(u[1] for u in units)


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """Stable id: the same file content and chunk settings give the same ids on every run."""
    digest = hashlib.sha256(f"{source}\0{start}\0{end}\0{text}".encode()).hexdigest()
    return digest[:16]
