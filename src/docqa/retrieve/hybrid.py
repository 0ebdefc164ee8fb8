"""Hybrid retrieval over any store: dense and lexical rankings, fused by weighted RRF, near-duplicates dropped."""

from __future__ import annotations

from docqa.ingest.embeddings import Embedder
from docqa.retrieve.fusion import Mode, Retrieval, drop_near_duplicates, rrf
from docqa.stores import Store
from docqa.types import Chunk, Passage


class Retriever:
    """Dense + lexical over one opened store. `bm25_weight` scales the lexical ranking in the fusion.

    The store gives the rankings (FAISS: flat index and in-memory BM25; pgvector: SQL), this class
    gives everything done with them, so both stores rank, score and deduplicate the same way.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        candidates: int = 20,
        dedup_threshold: float = 0.8,
        bm25_weight: float = 1.0,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self.dedup_threshold = dedup_threshold
        self.bm25_weight = bm25_weight
        self.size = store.count()

    @property
    def index(self) -> Store:
        """The store (its `manifest` is the JSON dict callers show); the name callers know."""
        return self.store

    @property
    def chunks(self) -> list[Chunk]:
        return self.store.chunks()

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval:
        if not self.size:
            return Retrieval([], 0.0)
        qvec = self.embedder.embed([query])[0]
        n = min(self.candidates, self.size)
        rankings = []
        weights: list[float] = []
        if mode in ("dense", "hybrid"):
            rankings.append(self.store.dense(qvec, n))
            weights.append(1.0)
        if mode in ("bm25", "hybrid"):
            rankings.append(self.store.lexical(query, n))
            weights.append(self.bm25_weight)
        fused = [key for key, _ in rrf(rankings, weights=weights)]
        if not fused:
            return Retrieval([], 0.0)
        cos_of = self.store.cosines(fused, qvec)
        chunk_of = self.store.chunks_for(fused)
        kept = drop_near_duplicates(fused, lambda key: chunk_of[key].text, self.dedup_threshold, top_k)
        passages = [Passage(n=j + 1, chunk=chunk_of[key], score=cos_of[key]) for j, key in enumerate(kept)]
        return Retrieval(passages, max(cos_of.values()))
