"""Bring the index up to date with the docs folder, re-embedding only what changed."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from docqa.errors import DocsError
from docqa.ingest.chunking import chunk_document
from docqa.ingest.embeddings import Embedder
from docqa.ingest.readers import SUPPORTED, UnreadableFile, read_document
from docqa.settings import Settings
from docqa.stores import faiss_store as store
from docqa.types import Chunk

# Bump when chunking or what gets embedded changes, so old indexes are rebuilt, not mixed.
CHUNKER_VERSION = 2
Progress = Callable[[int, int, str], None]  # (done, total, message)


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
        parts = [f"{self.chunks} chunks from {len(self.added) + len(self.updated) + len(self.unchanged)} files"]
        for label, items in (("added", self.added), ("updated", self.updated), ("removed", self.removed)):
            if items:
                parts.append(f"{label} {len(items)}")
        if self.unchanged:
            parts.append(f"unchanged {len(self.unchanged)}")
        parts.append(f"embedded {self.embedded} chunks in {self.seconds:.1f} s")
        if self.failed:
            parts.append(f"FAILED {len(self.failed)}")
        return ", ".join(parts)


def chunk_settings(settings: Settings) -> dict[str, Any]:
    return {"chunk_tokens": settings.chunk_tokens, "chunk_overlap_tokens": settings.chunk_overlap_tokens}


def wanted_manifest(settings: Settings, embedder: Embedder) -> dict[str, Any]:
    """What an index built now would record; an old index that differs on any of these is rebuilt."""
    return {
        "embed_model": embedder.name,
        "dim": embedder.dim,
        "chunking": chunk_settings(settings),
        "chunker": CHUNKER_VERSION,
        "docs_dir": str(settings.docs_dir.resolve()),
    }


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
        progress(position, len(files), f"reading {source}")
        try:
            digest = store.sha256_file(path)
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
        try:
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
    if report.failed:
        listing = "; ".join(f"{p.source}: {p.reason}" for p in report.failed[:5])
        return DocsError(
            f"no readable documents in {settings.docs_dir} ({listing})",
            "add .txt, .md, .pdf, .html or .docx files with text",
        )
    return DocsError(
        f"the documents folder {settings.docs_dir} is empty", "add .txt, .md, .pdf, .html or .docx files to it"
    )


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
    """Make `settings.index_dir` match `settings.docs_dir`. Raises DocsError when nothing is indexable."""
    with store.writer_lock(settings.index_dir, wait_s=lock_wait_s):
        store.clean_leftovers(settings.index_dir)  # a writer killed mid-write (kill -9, power cut) left these
        return _update(settings, embedder, rebuild, progress or (lambda *_: None))


def _update(settings: Settings, embedder: Embedder, rebuild: bool, progress: Progress) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport()
    files, report.failed = discover(settings.docs_dir, int(settings.max_file_mb * 1e6))
    wanted = wanted_manifest(settings, embedder)
    old: store.StoredIndex | None = None
    if rebuild:
        report.rebuilt_because = "--rebuild was asked for"
    else:
        try:
            manifest = store.read_manifest(settings.index_dir)
            if manifest is not None:
                report.rebuilt_because = _mismatch(manifest, wanted)
                if report.rebuilt_because is None:
                    old = store.load_index(settings.index_dir)
        except Exception as exc:  # noqa: BLE001 - any unreadable old index is rebuilt from scratch
            report.rebuilt_because = f"the existing index could not be read ({exc})"

    old_files: dict[str, Any] = old.manifest["files"] if old else {}
    kept_chunks: list[Chunk] = []
    kept_vectors: list[np.ndarray] = []
    new_chunks: list[Chunk] = []
    file_records: dict[str, Any] = {}
    for scanned in scan_files(settings, embedder, files, old_files, report, progress):
        file_records[scanned.source] = scanned.record
        if scanned.chunks is None and old is not None:
            rows = [i for i, c in enumerate(old.chunks) if c.source == scanned.source]
            kept_chunks.extend(old.chunks[i] for i in rows)
            kept_vectors.append(old.vectors[rows])
        else:
            new_chunks.extend(scanned.chunks or [])
    report.removed = sorted(set(old_files) - {s for s, _ in files})
    if not file_records:
        raise nothing_indexable(settings, report)

    if new_chunks:
        progress(len(files), len(files), f"embedding {len(new_chunks)} chunks")
    new_vectors = embedder.embed([c.search_text for c in new_chunks])
    report.embedded = len(new_chunks)
    chunks = kept_chunks + new_chunks
    vectors = np.concatenate([*kept_vectors, new_vectors]) if chunks else np.zeros((0, embedder.dim), np.float32)
    report.chunks = len(chunks)
    if report.changed or old is None:
        manifest = {
            **wanted,
            "files": dict(sorted(file_records.items())),
            "chunk_count": len(chunks),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
        }
        store.write_index(settings.index_dir, chunks, vectors, manifest)
        report.wrote = True
    report.seconds = time.perf_counter() - started
    return report


def _mismatch(manifest: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Why an existing index can't be updated in place, or None if it can."""
    labels = {
        "embed_model": "embedding model",
        "dim": "embedding dimension",
        "chunking": "chunk settings",
        "chunker": "chunker version",
        "docs_dir": "documents folder",
    }
    for key, label in labels.items():
        if manifest.get(key) != wanted[key]:
            return f"the {label} changed ({manifest.get(key)!r} -> {wanted[key]!r})"
    if manifest.get("format") != store.FORMAT_VERSION:
        return f"the index format changed ({manifest.get('format')} -> {store.FORMAT_VERSION})"
    return None


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("docqa", "faiss-cpu", "sentence-transformers", "transformers", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
