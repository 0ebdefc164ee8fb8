"""`docqa index` memory stays bounded on big folders: documents are read one at a time, each batch's
chunks and vectors go to disk once stored, and a loaded index holds its vectors once.

These count live objects instead of timing or measuring RSS, so they are exact and never flaky;
bench/bigfolder.py measures the resulting peak RSS for 1k-10k files.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from docqa.ingest.indexer import update_index
from docqa.ingest.readers import Document
from docqa.settings import Settings
from docqa.stores import faiss_store as store
from docqa.types import Chunk
from fakes import HashEmbedder

FILES = 30


def fill(docs: Path, n: int = FILES) -> None:
    """n documents of three or four chunks each (40-token chunks in the test settings)."""
    for old in docs.iterdir():
        old.unlink()
    for i in range(n):
        text = " ".join(f"Report {i} counts {k} baskets of tea from village{i} in spring." for k in range(12))
        (docs / f"report{i:03d}.txt").write_text(text, encoding="utf-8")


def alive(*kinds: type) -> list[int]:
    """How many objects of each kind exist (neither kind lives in reference cycles, so no collection
    is needed first: each is freed as soon as nothing refers to it)."""
    counts = dict.fromkeys(kinds, 0)
    for obj in gc.get_objects():
        if type(obj) in counts:
            counts[type(obj)] += 1
    return list(counts.values())


class Watching(HashEmbedder):
    """At each batch, records how many documents and chunks are alive, beyond those alive when it
    was made (an earlier test's doctest or fixture may still hold a few), and whether the vectors
    it returned for earlier batches still are."""

    def __init__(self) -> None:
        self.before = alive(Document, Chunk)
        self.batches: list[int] = []  # texts per call
        self.documents: list[int] = []
        self.chunks: list[int] = []
        self.earlier_vectors_alive: list[int] = []
        self._returned: list[weakref.ref[np.ndarray]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        documents, chunks = alive(Document, Chunk)
        self.documents.append(documents - self.before[0])
        self.chunks.append(chunks - self.before[1])
        self.earlier_vectors_alive.append(sum(ref() is not None for ref in self._returned))
        vectors = super().embed(texts)
        self._returned.append(weakref.ref(vectors))
        return vectors


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "EMBED_BATCH", 8)


def test_an_update_holds_one_batch_not_the_folder(settings: Settings, docs: Path, small_batches):
    fill(docs)
    embedder = Watching()
    report = update_index(settings, embedder)
    assert report.chunks == sum(embedder.batches) > 100 and len(embedder.batches) > 10
    biggest_batch = max(embedder.batches)
    # Documents are read, chunked and let go one at a time (the one being chunked, and the last one).
    assert max(embedder.documents) <= 2
    # Chunks alive: the batch being embedded and at most one file's worth more, never all so far.
    assert max(embedder.chunks) <= 2 * biggest_batch < report.chunks
    # Stored vectors are on disk, not kept in memory batch after batch.
    assert max(embedder.earlier_vectors_alive) == 0


def test_an_update_of_a_big_index_holds_only_the_loaded_index(settings: Settings, docs: Path, small_batches):
    """An update holds the loaded index and one batch: the changed files' new chunks and vectors go
    to disk as they are stored, like a fresh build's."""
    fill(docs)
    update_index(settings, HashEmbedder())
    before = store.load_index(settings.index_dir)
    indexed = len(before.chunks)
    del before
    for i in range(0, FILES, 5):  # one file in five changes
        path = docs / f"report{i:03d}.txt"
        path.write_text(path.read_text() + " Revised.", encoding="utf-8")
    embedder = Watching()
    report = update_index(settings, embedder)
    assert len(report.updated) == FILES // 5 and len(report.unchanged) == FILES - FILES // 5
    assert max(embedder.chunks) <= indexed + 2 * max(embedder.batches)
    assert max(embedder.earlier_vectors_alive) == 0
    loaded = store.load_index(settings.index_dir)
    assert len(loaded.chunks) == report.chunks and sum("Revised." in c.text for c in loaded.chunks) >= FILES // 5


def test_a_loaded_index_holds_its_vectors_once(tmp_path: Path):
    chunks = [Chunk(f"c{i}", "a.txt", f"chunk {i}", 0, 1) for i in range(50)]
    vectors = np.random.default_rng(3).standard_normal((50, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.write_index(tmp_path, chunks, vectors, {"dim": 16, "chunk_count": 50})
    loaded = store.load_index(tmp_path)
    np.testing.assert_array_equal(loaded.vectors, vectors)
    assert np.shares_memory(loaded.vectors, store._rows_of(loaded.faiss_index))  # a view, not a copy
    rows = loaded.vectors
    del loaded
    gc.collect()
    np.testing.assert_array_equal(rows, vectors)  # the view keeps the index's buffer alive


def test_the_spool_writes_what_was_put_then_the_rest(tmp_path: Path):
    """Checkpoint versions: what was put so far (from the spool), then the old index's other rows."""
    chunks = [Chunk(f"c{i}", "a.txt", f"chunk {i} é", 0, 1) for i in range(6)]
    vectors = np.random.default_rng(4).random((6, 8), dtype=np.float32)
    store.write_index(tmp_path, chunks, vectors, {"dim": 8, "chunk_count": 6})
    old = store.load_index(tmp_path)
    spool = store.Spool(tmp_path, 8)
    spool.add(chunks[4:], vectors[4:] * 2)
    spool.write_version(tmp_path, {"dim": 8, "chunk_count": 6}, old, [0, 1, 2, 3])
    checkpoint = store.load_index(tmp_path)
    assert [c.id for c in checkpoint.chunks] == ["c4", "c5", "c0", "c1", "c2", "c3"]
    np.testing.assert_allclose(checkpoint.vectors, np.concatenate([vectors[4:] * 2, vectors[:4]]))
    spool.add(chunks[:1], vectors[:1] * 3)  # the spool goes on after a checkpoint
    spool.write_version(tmp_path, {"dim": 8, "chunk_count": 3}, None, [])
    spool.close()
    new = store.load_index(tmp_path)
    assert [c.id for c in new.chunks] == ["c4", "c5", "c0"]
    np.testing.assert_allclose(new.vectors, np.concatenate([vectors[4:] * 2, vectors[:1] * 3]))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(("v-", "CURRENT"))] == []  # no spool left
