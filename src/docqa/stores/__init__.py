"""Vector store backends behind one interface, chosen by `settings.vector_store`.

- `faiss` (default): the FAISS flat index in `index/` (`store.py`, `retrieval.Retriever`).
- `pgvector`: PostgreSQL with pgvector at `settings.pg_url` (`backends/pgvector.py`; the `pgvector` extra).

The pipeline only sees a `SearchIndex`: `retrieve(query, top_k, mode) -> Retrieval`, the list of
`chunks`, and `index.manifest` (the same manifest shape on both stores).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from docqa.settings import Settings
from docqa.types import Chunk

if TYPE_CHECKING:  # the indexer imports this package's FAISS store: no import cycle at run time
    from docqa.ingest.embeddings import Embedder
    from docqa.ingest.indexer import IndexReport, Progress
    from docqa.retrieve.fusion import Mode, Retrieval


class HasManifest(Protocol):
    manifest: dict[str, Any]  # embed_model, dim, chunking, files: {source: {sha256, chunks, ...}}, built_at, ...


class SearchIndex(Protocol):
    """What the pipeline, the eval runner and the web app need from a store."""

    index: HasManifest

    @property
    def chunks(self) -> list[Chunk]: ...

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval: ...


def update_index(
    settings: Settings,
    embedder: Embedder,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_wait_s: float = 0.0,
) -> IndexReport:
    """Bring the configured store up to date with `settings.docs_dir` (only changed files are embedded)."""
    if settings.vector_store == "pgvector":
        from docqa.stores.pgvector import update_pg_index

        return update_pg_index(settings, embedder, rebuild=rebuild, progress=progress, lock_wait_s=lock_wait_s)
    from docqa.ingest.indexer import update_index as update_faiss_index

    return update_faiss_index(settings, embedder, rebuild=rebuild, progress=progress, lock_wait_s=lock_wait_s)


def open_retriever(settings: Settings, embedder: Embedder) -> SearchIndex:
    """A retriever over the configured store, as it is now."""
    if settings.vector_store == "pgvector":
        from docqa.stores.pgvector import PgRetriever

        return PgRetriever.open(settings, embedder)
    from docqa.retrieve.fusion import Retriever
    from docqa.stores.faiss_store import load_index

    index = load_index(settings.index_dir)
    return Retriever(index, embedder, settings.candidates, settings.dedup_threshold, settings.bm25_weight)
