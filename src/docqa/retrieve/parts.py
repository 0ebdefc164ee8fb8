"""Retrieval for questions that ask several things: each part's best passage gets a slot."""

from __future__ import annotations

from dataclasses import replace

from docqa.retrieve.fusion import Retrieval, drop_near_duplicates
from docqa.types import Passage


def cover_parts(whole: Retrieval, parts: list[Retrieval], top_k: int, dedup_threshold: float) -> Retrieval:
    """The whole question's top passage, then each part's top passage, then the rest by the whole ranking.

    A multi-part or comparison question ranked as one tends to fill every slot with one part; this
    keeps the whole question's best passage first and makes room for every part's best. The
    abstention signal stays the whole question's (`best_score`), so the gate is unchanged.

    >>> from docqa.types import Chunk
    >>> def found(*ids):
    ...     chunks = [Chunk(c, "a.txt", f"text {c} " * 4, 0, 1) for c in ids]
    ...     return Retrieval([Passage(i + 1, chunk, 0.5) for i, chunk in enumerate(chunks)], 0.5)
    >>> [p.chunk.id for p in cover_parts(found("a", "b", "c"), [found("b"), found("x", "a")], 3, 0.8).passages]
    ['a', 'b', 'x']
    """
    ordered: list[Passage] = whole.passages[:1] + [r.passages[0] for r in parts if r.passages] + whole.passages[1:]
    seen: set[str] = set()
    unique = [p for p in ordered if not (p.chunk.id in seen or seen.add(p.chunk.id))]
    kept = drop_near_duplicates(unique, lambda p: p.chunk.text, dedup_threshold, top_k)
    return Retrieval([replace(p, n=i + 1) for i, p in enumerate(kept)], whole.best_score)
