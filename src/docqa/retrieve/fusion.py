"""Hybrid retrieval: dense FAISS search and BM25, fused by reciprocal rank, near-duplicates dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from docqa.ingest.embeddings import Embedder
from docqa.retrieve.bm25 import BM25, tokenize
from docqa.stores.faiss_store import StoredIndex
from docqa.types import Chunk, Passage

Mode = Literal["hybrid", "dense", "bm25"]
T = TypeVar("T")
RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of the very top ranks


def rrf(rankings: list[list[int]], k: int = RRF_K, weights: list[float] | None = None) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of ranked id lists, best first; ties keep first-seen order.

    >>> [i for i, _ in rrf([[1, 2, 3], [3, 1]])]
    [1, 3, 2]
    >>> [i for i, _ in rrf([[1, 2], [2, 1]], weights=[1.0, 2.0])]
    [2, 1]
    """
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank + 1)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = tokenize(text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def overlap(a: set, b: set) -> float:
    """Share of the smaller set found in the larger: 1.0 when one text contains the other.

    >>> overlap({1, 2}, {1, 2, 3, 4})
    1.0
    """
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def drop_near_duplicates(ranked: list[T], text_of: Callable[[T], str], threshold: float, limit: int) -> list[T]:
    """The first `limit` items, best first, skipping any whose text mostly repeats a kept one.

    >>> drop_near_duplicates([1, 2, 3], {1: "tea grows in yunnan hills", 2: "tea grows in yunnan hills",
    ...                                  3: "rice terraces cover hani"}.get, 0.8, 2)
    [1, 3]
    """
    kept: list[T] = []
    kept_shingles: list[set] = []
    for item in ranked:
        sh = shingles(text_of(item))
        if any(overlap(sh, other) >= threshold for other in kept_shingles):
            continue
        kept.append(item)
        kept_shingles.append(sh)
        if len(kept) == limit:
            break
    return kept


@dataclass
class Retrieval:
    passages: list[Passage]
    best_score: float  # highest dense cosine among all candidates, the abstention signal


class Retriever:
    """Dense + BM25 over one stored index. `bm25_weight` scales the lexical ranking in the fusion."""

    def __init__(
        self,
        index: StoredIndex,
        embedder: Embedder,
        candidates: int = 20,
        dedup_threshold: float = 0.8,
        bm25_weight: float = 1.0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.dedup_threshold = dedup_threshold
        self.bm25_weight = bm25_weight
        self.bm25 = BM25([c.search_text for c in index.chunks])

    @property
    def chunks(self) -> list[Chunk]:
        return self.index.chunks

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval:
        if not self.chunks:
            return Retrieval([], 0.0)
        qvec = self.embedder.embed([query])[0]
        n = min(self.candidates, len(self.chunks))
        rankings: list[list[int]] = []
        weights: list[float] = []
        if mode in ("dense", "hybrid"):
            _, ids = self.index.faiss_index.search(qvec[None, :], n)
            rankings.append([int(i) for i in ids[0] if i >= 0])
            weights.append(1.0)
        if mode in ("bm25", "hybrid"):
            rankings.append([i for i, _ in self.bm25.top(query, n)])
            weights.append(self.bm25_weight)
        fused = [i for i, _ in rrf(rankings, weights=weights)]
        if not fused:
            return Retrieval([], 0.0)
        cosines = self.index.vectors[fused] @ qvec
        cos_of = dict(zip(fused, cosines.tolist(), strict=True))
        kept = drop_near_duplicates(fused, lambda i: self.chunks[i].text, self.dedup_threshold, top_k)
        passages = [Passage(n=j + 1, chunk=self.chunks[i], score=cos_of[i]) for j, i in enumerate(kept)]
        return Retrieval(passages, float(cosines.max()))
