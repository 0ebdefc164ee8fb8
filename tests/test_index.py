import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from docqa.errors import DocsError, IndexStateError
from docqa.ingest.indexer import update_index
from docqa.stores import faiss_store as store


def test_manifest_records_how_it_was_built(settings, embedder):
    report = update_index(settings, embedder)
    assert report.added == ["yunnan.txt"] and report.wrote
    manifest = store.read_manifest(settings.index_dir)
    assert manifest["embed_model"] == "hash-bow-64" and manifest["dim"] == 64
    assert manifest["chunking"] == {"chunk_tokens": 40, "chunk_overlap_tokens": 8}
    assert manifest["files"]["yunnan.txt"]["sha256"] == store.sha256_file(settings.docs_dir / "yunnan.txt")
    assert {"faiss-cpu", "transformers", "python"} <= set(manifest["versions"])
    loaded = store.load_index(settings.index_dir)
    assert len(loaded.chunks) == manifest["chunk_count"] == loaded.faiss_index.ntotal


class CountingEmbedder:
    def __init__(self, inner):
        self.inner, self.name, self.dim, self.max_tokens = inner, inner.name, inner.dim, inner.max_tokens
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.inner.embed(texts)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def test_incremental_update(settings, embedder, docs):
    counting = CountingEmbedder(embedder)
    update_index(settings, counting)
    (docs / "b.md").write_text("# Beans\n\nCoffee beans grow in Pu'er too.", encoding="utf-8")
    counting.embedded.clear()
    report = update_index(settings, counting)
    assert report.added == ["b.md"] and report.unchanged == ["yunnan.txt"]
    assert all("Coffee" in t for t in counting.embedded), "unchanged files were re-embedded"

    counting.embedded.clear()
    report = update_index(settings, counting)
    assert not report.changed and not report.wrote and counting.embedded == []

    (docs / "b.md").write_text("# Beans\n\nCoffee beans grow in Lincang.", encoding="utf-8")
    (docs / "yunnan.txt").unlink()
    report = update_index(settings, counting)
    assert report.updated == ["b.md"] and report.removed == ["yunnan.txt"]
    chunks = store.load_index(settings.index_dir).chunks
    assert {c.source for c in chunks} == {"b.md"}
    assert any("Lincang" in c.text for c in chunks)


def test_settings_change_rebuilds_and_says_why(settings, embedder):
    update_index(settings, embedder)
    report = update_index(settings.model_copy(update={"chunk_tokens": 60}), embedder)
    assert "chunk settings" in report.rebuilt_because
    report = update_index(settings, embedder, rebuild=True)
    assert "--rebuild" in report.rebuilt_because


def test_empty_and_missing_docs_folder(settings, embedder, tmp_path):
    with pytest.raises(DocsError, match="does not exist"):
        update_index(settings.model_copy(update={"docs_dir": tmp_path / "nope"}), embedder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DocsError, match="empty"):
        update_index(settings.model_copy(update={"docs_dir": empty}), embedder)
    assert store.current_version(settings.index_dir) is None


def test_failed_files_reported_rest_indexed(settings, embedder, docs):
    (docs / "bin.txt").write_bytes(b"\x00\x00garbage")
    (docs / "notes.xyz").write_text("x")
    report = update_index(settings, embedder)
    reasons = {p.source: p.reason for p in report.failed}
    assert "binary" in reasons["bin.txt"] and "unsupported" in reasons["notes.xyz"]
    assert report.added == ["yunnan.txt"]


def test_corrupt_index_detected_and_rebuild_recovers(settings, embedder):
    update_index(settings, embedder)
    version = store.current_version(settings.index_dir)
    with (version / "chunks.jsonl").open("a") as fh:
        fh.write('{"broken": ')
    with pytest.raises(IndexStateError, match="corrupt"):
        store.load_index(settings.index_dir)
    report = update_index(settings, embedder)  # an unreadable index is rebuilt, with the reason
    assert "could not be read" in report.rebuilt_because
    assert store.load_index(settings.index_dir).chunks


def test_missing_index_message(tmp_path):
    with pytest.raises(IndexStateError, match="docqa index"):
        store.load_index(tmp_path / "none")


def test_crash_before_commit_leaves_previous_index(settings, embedder, monkeypatch):
    update_index(settings, embedder)
    before = store.current_version(settings.index_dir)
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("CURRENT"):
            raise KeyboardInterrupt("simulated crash at the commit point")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        update_index(settings, embedder, rebuild=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.current_version(settings.index_dir) == before
    assert store.load_index(settings.index_dir).chunks
    update_index(settings, embedder, rebuild=True)  # the next run completes and cleans up
    leftovers = [p.name for p in settings.index_dir.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]
    assert leftovers == []


def _hold_lock(index_dir: str, ready, release) -> None:
    with store.writer_lock(Path(index_dir)):
        ready.set()
        release.wait(10)


def test_second_writer_is_refused_while_locked(settings, embedder):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(settings.index_dir), ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(IndexStateError, match="being written by pid"):
            update_index(settings, embedder, lock_wait_s=0.3)
    finally:
        release.set()
        proc.join(10)
    update_index(settings, embedder, lock_wait_s=5)


def test_kill_9_mid_write_keeps_previous_index(settings, embedder, tmp_path):
    """A real SIGKILL while the new version is being written."""
    update_index(settings, embedder)
    before = store.current_version(settings.index_dir)
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from fakes import HashEmbedder
        from docqa.ingest.indexer import update_index
        from docqa.settings import Settings
        import faiss
        orig = faiss.write_index
        def slow(index, path):
            orig(index, path)
            print("writing", flush=True)
            time.sleep(30)
        faiss.write_index = slow
        s = Settings.model_validate_json({settings.model_dump_json()!r})
        update_index(s, HashEmbedder(), rebuild=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert store.current_version(settings.index_dir) == before
    assert store.load_index(settings.index_dir).chunks
    report = update_index(settings, embedder, rebuild=True, lock_wait_s=5)
    assert report.wrote
    assert json.loads((store.current_version(settings.index_dir) / "manifest.json").read_text())["chunk_count"] > 0


class FakeStore:
    """An in-memory Store write side that records what the shared update loop asks of it."""

    where = "fake"

    def __init__(self, batch_chunks):
        self.batch_chunks = batch_chunks
        self.saved = None  # the last flushed or committed manifest
        self.rows: dict[str, int] = {}  # source -> chunks stored
        self.calls: list[str] = []

    @contextmanager
    def writer_lock(self, wait_s=0.0):
        yield

    def read_manifest(self):
        return self.saved

    def begin(self, wanted, old):
        self.calls.append(f"begin {'in place' if old else 'empty'}")
        if old is None:
            self.rows = {}

    def keep(self, source):
        self.calls.append(f"keep {source}")

    def put(self, source, chunks, vectors):
        assert len(chunks) == len(vectors)
        self.rows[source] = len(chunks)
        self.calls.append(f"put {source}")

    def remove(self, sources):
        for source in sources:
            self.rows.pop(source)
        self.calls.append(f"remove {sources}")

    def flush(self, manifest):
        assert not manifest.complete and set(manifest.files) == set(self.rows)  # lists exactly what is stored
        self.saved = manifest
        self.calls.append("flush")

    def commit(self, manifest):
        assert manifest.complete and set(manifest.files) == set(self.rows)
        assert manifest.chunk_count == sum(self.rows.values())
        self.saved = manifest
        self.calls.append("commit")


def test_shared_loop_batches_keeps_and_removes_through_the_store(settings, embedder, docs, monkeypatch):
    from docqa.ingest import indexer

    fake = FakeStore(batch_chunks=1)  # flush after every file, as pgvector does per batch
    monkeypatch.setattr(indexer, "open_store", lambda _: fake)
    (docs / "b.md").write_text("# Beans\n\nCoffee beans grow in Pu'er too.", encoding="utf-8")
    first = update_index(settings, embedder)
    assert fake.calls == ["begin empty", "put b.md", "flush", "put yunnan.txt", "flush", "remove []", "commit"]
    assert first.wrote and first.embedded == first.chunks == sum(fake.rows.values())

    fake.calls.clear()
    (docs / "b.md").unlink()
    second = update_index(settings, embedder)
    assert fake.calls == ["begin in place", "keep yunnan.txt", "remove ['b.md']", "commit"]
    assert second.removed == ["b.md"] and second.embedded == 0 and set(fake.saved.files) == {"yunnan.txt"}

    fake.calls.clear()
    assert not update_index(settings, embedder).wrote and "commit" not in fake.calls


def test_faiss_index_and_fused_retrieval_agree_with_the_store_rankings(settings, embedder):
    """The FAISS store's rankings are its flat index and in-memory BM25, by row."""
    from docqa.stores import open_retriever

    update_index(settings, embedder)
    retriever = open_retriever(settings, embedder)
    qvec = embedder.embed(["tea harvest"])[0]
    dense = retriever.store.dense(qvec, 3)
    cos = retriever.store.cosines(dense, qvec)
    assert [cos[i] for i in dense] == sorted(cos.values(), reverse=True)
    assert retriever.index.manifest["chunk_count"] == len(retriever.chunks)
