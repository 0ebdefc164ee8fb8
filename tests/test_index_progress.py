"""`docqa index` on big folders: progress with rate and time left, bounded batches, and Ctrl-C that
stops cleanly and resumes where the last checkpoint left off."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from docqa.ingest.indexer import Meter, update_index
from docqa.settings import Settings
from docqa.stores import faiss_store as store
from fakes import HashEmbedder

WORDS = "tea rice river mountain harvest village market terrace farmer spring".split()


def fill(docs: Path, n: int) -> list[str]:
    """n small documents with their own words (one or two chunks each); returns their names, sorted."""
    for old in docs.iterdir():
        old.unlink()
    names = []
    for i in range(n):
        name = f"doc{i:02d}.txt"
        text = f"Document {i} is about the {WORDS[i % len(WORDS)]} of place{i}. " * (3 + i % 3)
        (docs / name).write_text(text, encoding="utf-8")
        names.append(name)
    return names


class Embedder(HashEmbedder):
    """Counts what it embeds; raises KeyboardInterrupt on call number `interrupt_at` (1-based), as Ctrl-C
    would arrive while the model runs; sleeps `delay` seconds per call."""

    def __init__(self, interrupt_at: int | None = None, delay: float = 0.0) -> None:
        self.interrupt_at, self.delay = interrupt_at, delay
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.interrupt_at is not None and len(self.calls) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(list(texts))
        time.sleep(self.delay)
        return super().embed(texts)

    def sources(self) -> set[str]:
        return {m.group(1) for texts in self.calls for t in texts for m in [re.search(r"Document (\d+)", t)] if m}


@pytest.fixture
def per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """One file per embedding batch, and a checkpoint version after each one."""
    monkeypatch.setattr(store, "EMBED_BATCH", 1)
    monkeypatch.setattr(store, "CHECKPOINT_S", 0.0)
    monkeypatch.setattr(store, "CHECKPOINT_COST", 0)


def test_progress_names_files_chunks_rate_and_time_left(settings: Settings, docs: Path, per_file):
    names = fill(docs, 8)
    seen: list[tuple[int, int, str]] = []
    report = update_index(settings, Embedder(delay=0.2), progress=lambda *step: seen.append(step))
    assert report.embedded == report.chunks > 0
    assert all(total == len(names) for _, total, _ in seen)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)  # never goes back
    assert seen[-1][0] == len(names) and f"{len(names)}/{len(names)} files, {report.chunks} chunks" in seen[-1][2]
    with_rate = [m for _, _, m in seen if re.search(r"\d+ chunks, [\d.]+ chunks/s, ", m)]
    assert with_rate, seen
    assert any(re.search(r"about \d+ (s|min) left", m) for m in with_rate), seen
    assert any("(reading doc03.txt)" in m for _, _, m in seen) and any("(embedding " in m for _, _, m in seen)


def test_meter_estimates_from_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "small.txt").write_bytes(b"x" * 100)
    (tmp_path / "big.txt").write_bytes(b"x" * 300)
    meter = Meter([("small.txt", tmp_path / "small.txt"), ("big.txt", tmp_path / "big.txt")], lambda *_: None)
    assert meter.status(0) == "0/2 files, 0 chunks, time left not known yet"
    meter.started -= 10  # ten seconds for the first 100 bytes: 300 more take about 30 s
    meter.chunks = 25
    assert meter.status(1, "reading big.txt") == "1/2 files, 25 chunks, 2.5 chunks/s, about 30 s left (reading big.txt)"
    assert meter.status(2).endswith("finishing")


def test_batches_stay_bounded(settings: Settings, docs: Path, monkeypatch: pytest.MonkeyPatch):
    fill(docs, 10)
    monkeypatch.setattr(store, "EMBED_BATCH", 3)
    embedder = Embedder()
    report = update_index(settings, embedder)
    biggest_file = max(r["chunks"] for r in store.read_manifest(settings.index_dir)["files"].values())
    assert len(embedder.calls) > 1 and sum(map(len, embedder.calls)) == report.chunks
    assert max(map(len, embedder.calls)) < 3 + biggest_file  # never the whole folder at once


def test_interrupted_run_keeps_its_checkpoint_and_the_next_run_embeds_only_the_rest(
    settings: Settings, docs: Path, per_file
):
    names = fill(docs, 6)
    with pytest.raises(KeyboardInterrupt):
        update_index(settings, Embedder(interrupt_at=4))  # three files embedded and checkpointed
    manifest = store.read_manifest(settings.index_dir)
    assert sorted(manifest["files"]) == names[:3] and manifest["complete"] is False
    loaded = store.load_index(settings.index_dir)  # a consistent version, searchable as it is
    assert {c.source for c in loaded.chunks} == set(names[:3]) and len(loaded.chunks) == manifest["chunk_count"]

    again = Embedder()
    report = update_index(settings, again)
    assert report.unchanged == names[:3] and report.added == names[3:] and report.wrote
    assert len(again.calls) == 3 and again.sources() == {"3", "4", "5"}  # only the rest
    manifest = store.read_manifest(settings.index_dir)
    assert sorted(manifest["files"]) == names and manifest["complete"] is True
    assert not update_index(settings, Embedder()).wrote


def test_interrupted_update_keeps_the_files_it_had_not_reached(settings: Settings, docs: Path, per_file):
    names = fill(docs, 5)
    update_index(settings, Embedder())
    for name in names:
        (docs / name).write_text((docs / name).read_text() + " Updated today.", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        update_index(settings, Embedder(interrupt_at=3))  # two of the five changed files re-embedded
    loaded = store.load_index(settings.index_dir)
    assert {c.source for c in loaded.chunks} == set(names)  # the other three still there, as they were
    updated = {c.source for c in loaded.chunks if "Updated today" in c.text}
    assert updated == set(names[:2])

    again = Embedder()
    report = update_index(settings, again)
    assert report.unchanged == names[:2] and report.updated == names[2:] and again.sources() == {"2", "3", "4"}
    chunks = store.load_index(settings.index_dir).chunks
    assert {c.source for c in chunks if "Updated today" in c.text} == set(names)


def test_checkpoints_are_spaced_out(settings: Settings, docs: Path, monkeypatch: pytest.MonkeyPatch):
    """With the default spacing, a short run writes one version, at the end."""
    fill(docs, 6)
    monkeypatch.setattr(store, "EMBED_BATCH", 1)
    writes: list[Path] = []
    real = store._publish  # every version, checkpoint or final, is made live here
    monkeypatch.setattr(store, "_publish", lambda *a: writes.append(real(*a)) or writes[-1])
    update_index(settings, Embedder())
    assert len(writes) == 1


def test_cli_ctrl_c_stops_with_one_line_and_130_then_resumes(
    settings: Settings, docs: Path, per_file, monkeypatch: pytest.MonkeyPatch
):
    from docqa import cli
    from docqa.ingest import embeddings

    names = fill(docs, 5)
    embedder = Embedder(interrupt_at=3)
    monkeypatch.setattr(embeddings, "embedder_from_settings", lambda settings: embedder)
    args = ["index", "--docs", str(docs), "--index", str(settings.index_dir)]
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "stopped; 2 files indexed so far, run `docqa index` again to resume"
    )
    embedder.interrupt_at, embedder.calls = None, []
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 0, result.output
    assert "index written: " in result.stdout and "unchanged 2" in result.stdout
    assert embedder.sources() == {"2", "3", "4"}
    assert sorted(store.read_manifest(settings.index_dir)["files"]) == names
