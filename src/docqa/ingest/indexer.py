"""Bring the index up to date with the docs folder, re-embedding only what changed.

One update loop for every store: it scans the files, embeds what changed in bounded batches and
writes through the store's write side (`docqa.stores.Store`): FAISS as atomic versions (one at the
end, and a checkpoint every few minutes on long runs), pgvector batch by batch with a manifest that
always lists exactly what is stored. Either way a killed or interrupted run resumes: the next run
re-embeds only the files that were not yet written.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from docqa.errors import DocsError, IndexStateError
from docqa.ingest.chunking import chunk_document
from docqa.ingest.embeddings import Embedder
from docqa.ingest.ocr import ocr_progress
from docqa.ingest.readers import SUPPORTED, UnreadableFile, read_document
from docqa.settings import Settings
from docqa.stores import Store, open_store
from docqa.stores.faiss_store import sha256_file
from docqa.stores.manifest import Manifest
from docqa.types import Chunk

# Bump when chunking or what gets embedded changes, so old indexes are rebuilt, not mixed.
CHUNKER_VERSION = 6  # 3: heading paths led by the title; 4: <dt> terms lead chunks; 5: PDF layout; 6: PDF page headings
Progress = Callable[[int, int, str], None]  # (files done, files total, status message)


@dataclass
class FileProblem:
    source: str
    reason: str


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
    warnings: list[FileProblem] = field(default_factory=list)
    rebuilt_because: str | None = None
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    wrote: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        """One line: why it was rebuilt (when it was), then what it holds and what changed.

        >>> IndexReport(added=["a.txt"], chunks=3, rebuilt_because="the index pointer is empty").summary()
        'rebuilt because the index pointer is empty; 3 chunks from 1 files, added 1, embedded 0 chunks in 0.0 s'
        """
        parts = [f"{self.chunks} chunks from {len(self.added) + len(self.updated) + len(self.unchanged)} files"]
        for label, items in (("added", self.added), ("updated", self.updated), ("removed", self.removed)):
            if items:
                parts.append(f"{label} {len(items)}")
        if self.unchanged:
            parts.append(f"unchanged {len(self.unchanged)}")
        parts.append(f"embedded {self.embedded} chunks in {self.seconds:.1f} s")
        if self.failed:
            parts.append(f"FAILED {len(self.failed)}")
        text = ", ".join(parts)
        return f"rebuilt because {self.rebuilt_because}; {text}" if self.rebuilt_because else text


class Meter:
    """Turns the loop's steps into status messages: files done of total, chunks embedded, the rate
    (chunks/s) and an estimate of the time left, from the bytes done so far.

    Bytes are a better guide than file counts where sizes differ a lot. The estimate is rough when
    unchanged files (only hashed) and new ones (read and embedded) are mixed.
    """

    def __init__(self, files: list[tuple[str, Path]], progress: Progress) -> None:
        self.progress = progress
        self.total = len(files)
        self._bytes_before = list(itertools.accumulate((_size(path) for _, path in files), initial=0))
        self.started = time.perf_counter()
        self.chunks = 0  # embedded so far in this run

    def __call__(self, done: int, doing: str = "") -> None:
        self.progress(done, self.total, self.status(done, doing))

    def status(self, done: int, doing: str = "") -> str:
        """E.g. "12/40 files, 345 chunks, 21.3 chunks/s, about 1 min left (reading a.pdf)"."""
        elapsed = time.perf_counter() - self.started
        parts = [f"{done}/{self.total} files", f"{self.chunks} chunks"]
        if elapsed > 0 and self.chunks:
            parts.append(f"{self.chunks / elapsed:.1f} chunks/s")
        done_bytes = self._bytes_before[min(done, self.total)]
        left_bytes = self._bytes_before[-1] - done_bytes
        if done >= self.total:
            parts.append("finishing")
        elif done_bytes and elapsed >= 1:
            parts.append(f"about {duration(elapsed * left_bytes / done_bytes)} left")
        else:
            parts.append("time left not known yet")
        text = ", ".join(parts)
        return f"{text} ({doing})" if doing else text


def duration(seconds: float) -> str:
    """A time left, rounded to what a person reads at a glance.

    >>> duration(42.4), duration(125), duration(7300)
    ('42 s', '2 min', '2 h 02 min')
    """
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def chunk_settings(settings: Settings) -> dict[str, Any]:
    return {"chunk_tokens": settings.chunk_tokens, "chunk_overlap_tokens": settings.chunk_overlap_tokens}


def wanted_manifest(settings: Settings, embedder: Embedder) -> Manifest:
    """What an index built now would record; an old index that differs on any of these is rebuilt."""
    return Manifest(
        embed_model=embedder.name,
        dim=embedder.dim,
        chunking=chunk_settings(settings),
        chunker=CHUNKER_VERSION,
        docs_dir=str(settings.docs_dir.resolve()),
    )


@dataclass
class ScannedFile:
    position: int  # index in the discovered file list, for progress
    source: str
    record: dict[str, Any]  # the manifest's entry: sha256, chunks, bytes, indexed_at
    chunks: list[Chunk] | None  # None: unchanged since the last index (keep its stored chunks)


def scan_files(
    settings: Settings,
    embedder: Embedder,
    files: list[tuple[str, Path]],
    old_files: dict[str, Any],
    report: IndexReport,
    progress: Progress,
) -> Iterator[ScannedFile]:
    """Hash every file; yield the unchanged ones with their old record, the rest read and chunked.

    Shared by every store. Files that can't be read or parsed go to `report.failed` (never skipped
    silently), reader warnings to `report.warnings`; added/updated/unchanged are filled in too.
    """
    by_hash: dict[str, str] = {}
    for position, (source, path) in enumerate(files):
        progress(position, len(files), f"reading {source[-60:]}")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            report.failed.append(FileProblem(source, f"can't be read ({exc.strerror})"))
            continue
        if digest in by_hash:
            report.warnings.append(
                FileProblem(
                    source, f"same content as {by_hash[digest]}: both indexed; retrieval drops the duplicate passages"
                )
            )
        by_hash.setdefault(digest, source)
        previous = old_files.get(source)
        if previous and previous["sha256"] == digest:
            report.unchanged.append(source)
            yield ScannedFile(position, source, previous, None)
            continue

        # A scan is read by OCR at a few seconds a page: show each page ("OCR page 3/12 of scan.pdf").
        def ocr_status(message: str, position: int = position, source: str = source) -> None:
            progress(position, len(files), f"reading {source[-60:]}: {message}")

        try:
            with ocr_progress(ocr_status):
                doc = read_document(path, settings.pdf_timeout_s)
        except UnreadableFile as exc:
            report.failed.append(FileProblem(source, str(exc)))
            continue
        except OSError as exc:
            report.failed.append(FileProblem(source, f"can't be read ({exc.strerror or exc})"))
            continue
        except Exception as exc:  # noqa: BLE001 - a reader bug on one hostile file must not stop the whole folder
            report.failed.append(FileProblem(source, f"the reader failed ({exc.__class__.__name__}: {exc})"))
            continue
        report.warnings.extend(FileProblem(source, w) for w in doc.warnings)
        chunks = chunk_document(
            doc, source, embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens
        )
        record = {
            "sha256": digest,
            "chunks": len(chunks),
            "bytes": path.stat().st_size,
            "indexed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (report.updated if source in old_files else report.added).append(source)
        yield ScannedFile(position, source, record, chunks)


def nothing_indexable(settings: Settings, report: IndexReport) -> DocsError:
    """The error for a docs folder with no readable document, naming the first failures."""
    kinds = ", ".join(sorted(SUPPORTED))  # what readers.py reads, so the advice stays true
    if report.failed:
        listing = "; ".join(f"{p.source}: {p.reason}" for p in report.failed[:5])
        return DocsError(f"no readable documents in {settings.docs_dir} ({listing})", f"add files with text ({kinds})")
    return DocsError(f"the documents folder {settings.docs_dir} is empty", f"add documents to it ({kinds})")


def discover(docs_dir: Path, max_bytes: int) -> tuple[list[tuple[str, Path]], list[FileProblem]]:
    """Files to index as (relative source, path), and problems with the rest, in a stable order.

    Hidden files and folders are skipped. Symlinks (to files or folders) that resolve outside the docs
    folder are refused, so a link can't pull in /etc/passwd; links to folders inside it are not
    followed, since their files are found where they are. Pipes, sockets and devices are refused
    before anything opens them (reading a pipe would wait forever).
    """
    if not docs_dir.is_dir():
        raise DocsError(
            f"the documents folder {docs_dir} does not exist",
            "create it and put your documents in it, or pass --docs DIR",
        )
    root = docs_dir.resolve()
    found: list[tuple[str, Path]] = []
    problems: list[FileProblem] = []
    for dirpath, dirnames, filenames in os.walk(docs_dir, followlinks=False):
        walked = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            path = Path(dirpath) / name
            if path.is_symlink():  # os.walk lists a link to a folder here but does not enter it
                target = path.resolve()
                if not target.is_relative_to(root):
                    source = path.relative_to(docs_dir).as_posix() + "/"
                    problems.append(FileProblem(source, f"symlink to {target}, outside the documents folder: refused"))
                continue
            walked.append(name)
        dirnames[:] = walked
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            source = path.relative_to(docs_dir).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    problems.append(FileProblem(source, f"symlink to {target}, outside the documents folder: refused"))
                    continue
                if not target.exists():
                    problems.append(FileProblem(source, f"broken symlink to {target}: not indexed"))
                    continue
            if path.suffix.lower() not in SUPPORTED:
                problems.append(FileProblem(source, f"unsupported file type '{path.suffix or '(none)'}': not indexed"))
                continue
            if not path.is_file():
                problems.append(FileProblem(source, "not a regular file (a pipe, socket or device): not indexed"))
                continue
            try:
                size = path.stat().st_size
            except OSError as exc:
                problems.append(FileProblem(source, f"can't be read ({exc.strerror})"))
                continue
            if size > max_bytes:
                problems.append(
                    FileProblem(source, f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit (max_file_mb)")
                )
                continue
            found.append((source, path))
    return found, problems


def update_index(
    settings: Settings,
    embedder: Embedder,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_wait_s: float = 0.0,
) -> IndexReport:
    """Make the configured store match `settings.docs_dir`. Raises DocsError when nothing is indexable.

    Only files whose sha256 changed are read and embedded. `embedder` may be a RayEmbedder
    (ingest/ray.py): the loop is the same, only where the vectors are computed differs.
    `progress(files done, files total, status)` is called as files are read and batches embedded;
    the status names the chunks embedded, the rate and the time left (`Meter`).

    An interruption (KeyboardInterrupt, a kill) keeps what the store had written by then: the next
    run re-embeds only the files written after the last checkpoint.
    """
    store = open_store(settings)
    with store.writer_lock(lock_wait_s):
        return _update(store, settings, embedder, rebuild, progress or (lambda *_: None))


def _previous(store: Store, wanted: Manifest, rebuild: bool) -> tuple[Manifest | None, str | None]:
    """The index to update in place (None: start empty), and why it is rebuilt instead, if it is."""
    old, because = None, "--rebuild was asked for" if rebuild else None
    if not rebuild:
        try:
            old = store.read_manifest()
            because = old.mismatch(wanted) if old else None
            if old and not because:
                store.begin(wanted, old)  # loads what an in-place update keeps; may find it damaged
                return old, None
        except IndexStateError as exc:  # a damaged or outdated index is rebuilt, never updated
            because = f"the existing index could not be read ({exc.cause})"
    store.begin(wanted, None)
    return None, because


def _update(store: Store, settings: Settings, embedder: Embedder, rebuild: bool, progress: Progress) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport()
    files, report.failed = discover(settings.docs_dir, int(settings.max_file_mb * 1e6))
    wanted = wanted_manifest(settings, embedder)
    old, report.rebuilt_because = _previous(store, wanted, rebuild)
    old_files = old.files if old else {}
    live: dict[str, Any] = {}  # what the store holds by now, by file: each manifest lists exactly these
    pending: list[ScannedFile] = []  # read and chunked, not yet embedded: at most one batch
    pending_chunks = 0
    meter = Meter(files, progress)

    def manifest(complete: bool) -> Manifest:
        return replace(
            wanted,
            files=dict(sorted(live.items())),
            chunk_count=sum(r["chunks"] for r in live.values()),
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=library_versions(),
            complete=complete,
        )

    def write(done: int) -> None:  # embed the pending files' chunks and hand them to the store
        nonlocal pending_chunks
        vectors = np.zeros((0, embedder.dim), np.float32)
        if pending_chunks:
            meter(done, f"embedding {pending_chunks} chunks")
            vectors = embedder.embed([c.search_text for p in pending for c in p.chunks or []])
        start = 0
        for p in pending:
            n = len(p.chunks or [])
            store.put(p.source, p.chunks or [], vectors[start : start + n])
            live[p.source] = p.record
            start += n
        report.embedded += pending_chunks
        meter.chunks += pending_chunks
        pending.clear()
        pending_chunks = 0
        meter(done)

    def scanning(done: int, total: int, message: str) -> None:
        meter(done, message)

    for scanned in scan_files(settings, embedder, files, old_files, report, scanning):
        if scanned.chunks is None:
            store.keep(scanned.source)
            live[scanned.source] = scanned.record
            continue
        pending.append(scanned)
        pending_chunks += len(scanned.chunks)
        if store.batch_chunks and pending_chunks >= store.batch_chunks:
            write(scanned.position + 1)
            store.flush(manifest(complete=False))  # resumable: the next run keeps what this wrote
    scanned_sources = set(live) | {p.source for p in pending}
    if not scanned_sources:
        raise nothing_indexable(settings, report)
    if pending:
        write(len(files))
    report.removed = sorted(set(old_files) - {s for s, _ in files})
    # A file indexed before that fails now is dropped too (no stale chunks of a file the manifest lacks).
    store.remove(sorted(set(old_files) - scanned_sources))
    report.chunks = sum(r["chunks"] for r in live.values())
    if report.changed or old is None or not old.complete:
        meter(len(files), "writing the index")
        store.commit(manifest(complete=True))
        report.wrote = True
    report.seconds = time.perf_counter() - started
    return report


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("docqa", "faiss-cpu", "sentence-transformers", "transformers", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
