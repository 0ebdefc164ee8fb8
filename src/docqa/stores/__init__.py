"""Vector stores behind one `Store` seam, chosen by `settings.vector_store`.

- `faiss` (default): a FAISS flat index in `index/` (`faiss_store.FaissStore`).
- `pgvector`: PostgreSQL with pgvector at `settings.pg_url` (`pgvector.PgStore`; the `pgvector` extra).

A store supplies only rankings and storage. What is done with them is written once: hybrid retrieval
in `retrieve/hybrid.Retriever`, the update loop in `ingest/indexer.update_index` (re-exported here).
The pipeline only sees a `SearchIndex`: `retrieve(query, top_k, mode) -> Retrieval`, the list of
`chunks`, and `index.manifest` (the manifest as its JSON dict, the same shape on both stores).
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from docqa.settings import Settings
from docqa.stores.manifest import Manifest
from docqa.types import Chunk

if TYPE_CHECKING:  # the indexer imports this package: no import cycle at run time
    from docqa.ingest.embeddings import Embedder
    from docqa.retrieve.fusion import Mode, Retrieval
    from docqa.retrieve.hybrid import Retriever

Key = Hashable  # a chunk's key in its store: a row number (FAISS) or a node id (pgvector)


class Store(Protocol):
    """One index's storage: its rankings for the retriever, and the write side for the update loop."""

    where: str  # the index's location, for messages

    # Reading, after `open()`.
    def open(self) -> Manifest:
        """Load the index for searching; IndexStateError when there is none or it can't be used."""

    @property
    def manifest(self) -> dict[str, Any]: ...  # the JSON view, for callers that show it

    def count(self) -> int: ...
    def chunks(self) -> list[Chunk]: ...
    def dense(self, qvec: np.ndarray, n: int) -> list[Key]: ...  # nearest by cosine, best first
    def lexical(self, query: str, n: int) -> list[Key]: ...  # best lexical matches, best first
    def cosines(self, keys: list[Key], qvec: np.ndarray) -> dict[Key, float]: ...
    def chunks_for(self, keys: list[Key]) -> dict[Key, Chunk]: ...

    # Writing, by ingest/indexer.update_index, under `writer_lock`.
    @property
    def batch_chunks(self) -> int | None: ...  # flush after this many new chunks; None: once, at commit

    def writer_lock(self, wait_s: float = 0.0) -> AbstractContextManager[None]: ...
    def read_manifest(self) -> Manifest | None:
        """The live manifest, None when there is no index; IndexStateError when it can't be updated."""

    def begin(self, wanted: Manifest, old: Manifest | None) -> None:
        """Start updating `old` in place, or (None) an empty index."""

    def keep(self, source: str) -> None: ...  # the file is unchanged: keep its stored chunks
    def put(self, source: str, chunks: list[Chunk], vectors: np.ndarray) -> None: ...  # replace its chunks
    def remove(self, sources: list[str]) -> None: ...
    def flush(self, manifest: Manifest) -> None: ...  # write what was put, and `manifest` (incomplete)
    def commit(self, manifest: Manifest) -> None: ...  # write the rest and the final manifest


class HasManifest(Protocol):
    @property
    def manifest(self) -> dict[str, Any]: ...  # embed_model, dim, chunking, files: {source: {sha256, ...}}, ...


class SearchIndex(Protocol):
    """What the pipeline, the eval runner and the web app need from a store."""

    index: HasManifest

    @property
    def chunks(self) -> list[Chunk]: ...

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval: ...


def open_store(settings: Settings) -> Store:
    """The configured store, not yet opened (`open()` to search, `update_index` to write)."""
    if settings.vector_store == "pgvector":
        from docqa.stores.pgvector import PgStore

        return PgStore(settings)
    from docqa.stores.faiss_store import FaissStore

    return FaissStore(settings.index_dir)


def open_retriever(settings: Settings, embedder: Embedder) -> Retriever:
    """A hybrid retriever over the configured store, as it is now."""
    from docqa.retrieve.hybrid import Retriever

    store = open_store(settings)
    store.open().check_embedder(embedder.name, embedder.dim, store.where)
    return Retriever(store, embedder, settings.candidates, settings.dedup_threshold, settings.bm25_weight)


def __getattr__(name: str) -> Any:
    # `update_index` lives in ingest/indexer.py, which imports this package: resolved on first use.
    if name == "update_index":
        from docqa.ingest.indexer import update_index

        return update_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
