"""Rank fusion and near-duplicate dropping: the store-independent half of hybrid retrieval (`hybrid.py`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from docqa.retrieve.bm25 import tokenize
from docqa.settings import Mode  # noqa: F401 - re-exported; the retrieval modes are named once, in settings
from docqa.types import Passage

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)  # a chunk key: a FAISS row or a pgvector node id
RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of the very top ranks


def rrf(rankings: list[list[K]], k: int = RRF_K, weights: list[float] | None = None) -> list[tuple[K, float]]:
    """Weighted reciprocal rank fusion of ranked id lists, best first; ties keep first-seen order.

    >>> [i for i, _ in rrf([[1, 2, 3], [3, 1]])]
    [1, 3, 2]
    >>> [i for i, _ in rrf([[1, 2], [2, 1]], weights=[1.0, 2.0])]
    [2, 1]
    """
    scores: dict[K, float] = {}
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
