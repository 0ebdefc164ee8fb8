"""The on-disk index: a FAISS flat inner-product index, the chunks, and a manifest.

Layout of `index/`:

    CURRENT            name of the live version folder, swapped atomically with os.replace
    v-<time>-<rand>/   faiss.index, chunks.jsonl, manifest.json, and .readers (a lock file)
    .lock              held by a writer (`docqa index`) while it works

A writer builds a complete new version folder, fsyncs it, then points CURRENT at it. A crash at
any moment leaves CURRENT naming a complete older version, so the previous index still loads.
A long update also writes checkpoint versions (every `CHECKPOINT_S` seconds at least), so an
interrupted `docqa index` keeps what it had embedded by its last checkpoint.

Readers run beside a writer (the web app answers while it re-indexes). A reader resolves CURRENT
once and opens that version's files while holding a shared flock on its `.readers` file (an open
file stays readable after its folder is removed, and a live version never changes); the writer
prunes a superseded version only when it can take that lock exclusively, renaming the folder away
first, so a reader either has the complete version or sees it gone and resolves CURRENT again.
A version a reader still holds is left for the next writer to prune.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from docqa.errors import IndexStateError
from docqa.retrieve.bm25 import BM25
from docqa.stores.manifest import FORMAT_VERSION, REBUILD, Manifest
from docqa.types import Chunk

FILES = ("faiss.index", "chunks.jsonl")
EMBED_BATCH = 512  # new chunks embedded per step: bounds what an update holds besides the index itself
CHECKPOINT_S = 120.0  # at least this long between checkpoint versions during an update
CHECKPOINT_COST = 10  # ...and at least this many times as long as the last one took to write
_VERSION_NAME = re.compile(r"v-[0-9]{14}-[0-9a-f]{6}")  # what write_index names a version folder
READERS = ".readers"  # in each version folder: readers hold a shared flock on it while they load
LOAD_TRIES = 20  # how often a reader resolves CURRENT again when the version it named was pruned


@dataclass
class StoredIndex:
    """A loaded index version: chunk i is row i of `vectors` and of the FAISS index."""

    chunks: list[Chunk]
    vectors: np.ndarray  # (n, dim) float32, unit rows
    faiss_index: Any  # faiss.IndexFlatIP; inner product equals cosine on unit vectors
    manifest: dict[str, Any]
    path: Path

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def current_version(index_dir: Path) -> Path | None:
    """The live version folder named by CURRENT, or None when there is no index yet.

    CURRENT must name a `v-...` folder inside `index_dir`; anything else (garbage bytes, a path
    climbing out) is a corrupt index, not a place to read from.
    """
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_bytes().strip().decode("utf-8", errors="replace")
    if not name:  # a writer never leaves it empty (it is replaced whole): damage, not "no index"
        raise IndexStateError(f"the index pointer {pointer} is corrupt (it is empty)", "run `docqa index --rebuild`")
    if not _VERSION_NAME.fullmatch(name):
        raise IndexStateError(
            f"the index pointer {pointer} is corrupt (it names {name[:40]!r})", "run `docqa index --rebuild`"
        )
    return index_dir / name


@contextmanager
def _reading(version: Path) -> Iterator[bool]:
    """Hold a shared lock on the version's `.readers` while reading it, so no writer prunes it
    meanwhile. Yields whether the version is there: False when it was pruned since CURRENT named it.
    """
    try:
        fd = os.open(version / READERS, os.O_RDONLY)
    except OSError:  # pruned, or written before versions had a readers lock: read without one
        yield version.is_dir()
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a writer renames this version away
        yield version.is_dir()  # a pruned version is renamed away before its lock is let go
    finally:
        os.close(fd)


def _open_version(index_dir: Path, names: tuple[str, ...]) -> tuple[Path, dict[str, BinaryIO | None]] | None:
    """The live version and its files `names` opened for reading (None: missing), all from one
    version; None when there is no index yet. The caller closes them.

    The files are opened while the version's readers lock is held, so none is pruned meanwhile. An
    open file stays readable after a writer prunes its version, and a live version's files never
    change, so whatever is read through them later is that version. When a writer replaced and
    pruned the version before it was opened, CURRENT is resolved again: a reader never mixes
    versions, and never reports a pruned one as corrupt.
    """
    for _ in range(LOAD_TRIES):
        version = current_version(index_dir)
        if version is None:
            return None
        files: dict[str, BinaryIO | None] = {}
        with _reading(version) as there:
            for name in names:
                try:
                    files[name] = (version / name).open("rb") if there else None
                except OSError:
                    files[name] = None
        if all(f is not None for f in files.values()) or current_version(index_dir) == version:
            return version, files  # complete, or CURRENT still names what is missing: damage
        _close(files)
    raise IndexStateError(f"the index in {index_dir} changed {LOAD_TRIES} times while it was being read", "try again")


def _close(files: dict[str, BinaryIO | None]) -> None:
    for fh in files.values():
        if fh is not None:
            fh.close()


def _read_whole(fh: BinaryIO | None) -> bytes | None:
    try:
        return fh.read() if fh is not None else None
    except OSError:
        return None


def _checksum(fh: BinaryIO) -> tuple[str, int] | None:
    """sha256 and size of an open file, read in blocks (None: it can't be read); rewinds it."""
    h, size = hashlib.sha256(), 0
    try:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
        fh.seek(0)
    except OSError:
        return None
    return h.hexdigest(), size


def _parse_manifest(version: Path, raw: bytes | None) -> dict[str, Any]:
    if raw is None and not version.is_dir():
        raise IndexStateError(f"the index version {version} named by CURRENT is missing (no such folder)", REBUILD)
    try:
        manifest = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise IndexStateError(f"the index manifest in {version} is missing or corrupt", "run `docqa index --rebuild`")
    return manifest


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The live manifest, or None when there is no index yet."""
    found = _open_version(index_dir, ("manifest.json",))
    if found is None:
        return None
    version, files = found
    try:
        return _parse_manifest(version, _read_whole(files["manifest.json"]))
    finally:
        _close(files)


def load_index(index_dir: Path) -> StoredIndex:
    """The live version, loaded whole into memory: later writes and prunes don't touch it.

    Each file's checksum is checked before anything parses it (a damaged file never reaches FAISS);
    then FAISS reads its file straight into the index and chunks.jsonl is parsed line by line, so
    loading holds no copy of either file's bytes besides what it builds.
    """
    found = _open_version(index_dir, ("manifest.json", *FILES))
    if found is None:
        raise IndexStateError(f"no index in {index_dir}", "run `docqa index` to build it from your documents")
    version, files = found
    try:
        return _load(index_dir, version, files)
    finally:
        _close(files)


def _load(index_dir: Path, version: Path, files: dict[str, BinaryIO | None]) -> StoredIndex:
    import faiss

    manifest = _parse_manifest(version, _read_whole(files["manifest.json"]))
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexStateError(
            f"the index in {index_dir} has format {manifest.get('format')}, this docqa reads {FORMAT_VERSION}",
            "run `docqa index --rebuild`",
        )
    checksums = manifest.get("checksums")
    if not isinstance(checksums, dict) or not isinstance(manifest.get("dim"), int):
        raise IndexStateError(
            f"the index manifest in {version} lacks its checksums or dimension", "run `docqa index --rebuild`"
        )
    for name in FILES:
        fh = files[name]
        summed = _checksum(fh) if fh is not None else None
        if fh is None or summed is None:
            raise IndexStateError(f"index file {version / name} is missing or corrupt (it is not there)", REBUILD)
        if summed[0] != checksums.get(name):
            raise IndexStateError(
                f"index file {version / name} is corrupt (checksum mismatch: {summed[1]} bytes,"
                " truncated or changed since it was written)",
                REBUILD,
            )
    index_file, chunk_file = files["faiss.index"], files["chunks.jsonl"]
    assert index_file is not None and chunk_file is not None
    try:
        index = faiss.read_index(faiss.PyCallbackIOReader(index_file.read, 1 << 20))
        chunks = [Chunk.from_dict(json.loads(line)) for line in chunk_file if line.strip()]
    except (RuntimeError, OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise IndexStateError(f"could not read the index in {version} ({exc})", REBUILD) from None
    if index.ntotal != len(chunks) or index.d != manifest["dim"]:
        raise IndexStateError(
            f"the index in {version} has {index.ntotal} vectors of dimension {index.d}"
            f" for {len(chunks)} chunks of dimension {manifest['dim']}",
            "run `docqa index --rebuild`",
        )
    # The index's own rows, not a copy: a 100k-chunk index holds its 154 MB of vectors once.
    return StoredIndex(chunks, _rows_of(index), index, manifest, version)


def write_index(index_dir: Path, chunks: list[Chunk], vectors: np.ndarray, manifest: dict[str, Any]) -> Path:
    """Write a new version and make it live atomically. Returns the version folder."""
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")

    def fill(tmp: Path) -> None:
        flat = _flat_index(int(manifest["dim"]), len(vectors))
        _rows_of(flat)[:] = vectors
        _write_faiss(flat, tmp)
        with (tmp / "chunks.jsonl").open("wb") as fh:
            fh.writelines(map(_chunk_line, chunks))

    return _publish(index_dir, fill, manifest)


def _publish(index_dir: Path, fill: Callable[[Path], None], manifest: dict[str, Any]) -> Path:
    """Make a new version live atomically: `fill(folder)` writes its FILES, this adds the manifest
    with their checksums, fsyncs, and points CURRENT at it. Returns the version folder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    version = index_dir / f"v-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    tmp = index_dir / f".tmp-{version.name}"
    tmp.mkdir()
    try:
        fill(tmp)
        manifest = {**manifest, "format": FORMAT_VERSION, "checksums": {n: sha256_file(tmp / n) for n in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        (tmp / READERS).touch()  # readers lock it while loading this version (see `_reading`)
        for name in (*FILES, "manifest.json"):
            _fsync(tmp / name)
        os.replace(tmp, version)
        _fsync(index_dir)
        pointer_tmp = index_dir / f".CURRENT-{uuid.uuid4().hex[:6]}"
        pointer_tmp.write_text(version.name + "\n", encoding="utf-8")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, index_dir / "CURRENT")  # the commit point
        _fsync(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clean(index_dir, keep=version.name)
    return version


def _chunk_line(chunk: Chunk) -> bytes:
    return (json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")


def _flat_index(dim: int, rows: int) -> Any:
    """An empty-valued flat index with room for exactly `rows` vectors, filled through `_rows_of`.

    Sized once, so writing n vectors holds n vectors: `IndexFlat.add` per batch grows its buffer by
    doubling (briefly old + new), and adding one big array holds that array and the copy.
    """
    import faiss

    flat = faiss.IndexFlatIP(dim)
    if rows:
        flat.codes.resize(rows * dim * 4)  # what IndexFlatCodes.add does before copying rows in
        flat.ntotal = rows
    return flat


def _rows_of(flat: Any) -> np.ndarray:
    """The (ntotal, d) float32 rows of a flat index, as a view of its own buffer (no copy).

    The view keeps `flat` alive (through `_Buffer`), so it stays valid however long it is held.
    """
    import faiss

    n, d = int(flat.ntotal), int(flat.d)
    if not n:
        return np.zeros((0, d), np.float32)
    if not isinstance(flat, faiss.IndexFlat):  # docqa writes only flat indexes; anything else is copied out
        return np.ascontiguousarray(flat.reconstruct_n(0, n), dtype=np.float32)
    raw = faiss.rev_swig_ptr(flat.codes.data(), n * d * 4)
    return np.asarray(_Buffer(flat, raw)).view(np.float32).reshape(n, d)


class _Buffer:
    """Exposes a faiss-owned byte buffer to numpy while holding the index that owns it."""

    def __init__(self, owner: Any, raw: np.ndarray) -> None:
        self.owner = owner
        self.__array_interface__ = raw.__array_interface__


def _write_faiss(flat: Any, folder: Path) -> None:
    import faiss

    faiss.write_index(flat, str(folder / "faiss.index"))


class Spool:
    """What an update has put so far, on disk instead of in memory: chunk lines and float32 rows in
    two unnamed temporary files in the index folder, which the OS deletes when they are closed or
    the writer dies (even by kill -9). Each version written copies them, so a 100k-chunk update
    holds its vectors once, while writing, and never all the chunk texts.
    """

    def __init__(self, folder: Path, dim: int) -> None:
        self.dim, self.rows = dim, 0
        self.chunks = tempfile.TemporaryFile(dir=folder)
        self.vectors = tempfile.TemporaryFile(dir=folder)

    def add(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self.chunks.writelines(map(_chunk_line, chunks))
        self.vectors.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        self.rows += len(chunks)

    def write_version(
        self, index_dir: Path, manifest: dict[str, Any], more: StoredIndex | None, rows: list[int]
    ) -> Path:
        """A version holding the spooled chunks, then rows `rows` of `more` (a loaded index)."""

        def fill(tmp: Path) -> None:
            flat = _flat_index(self.dim, self.rows + len(rows))
            if flat.ntotal:
                view = _rows_of(flat)
                self.vectors.flush()
                self.vectors.seek(0)
                for start in range(0, self.rows, 4096):  # straight into the index's buffer
                    part = view[start : min(start + 4096, self.rows)]
                    if self.vectors.readinto(memoryview(part).cast("B")) != part.nbytes:
                        raise OSError(f"the spooled vectors in {index_dir} are short")
                if rows:
                    assert more is not None
                    np.take(more.vectors, rows, axis=0, out=view[self.rows :])
            _write_faiss(flat, tmp)
            self.chunks.flush()
            self.chunks.seek(0)
            with (tmp / "chunks.jsonl").open("wb") as fh:
                shutil.copyfileobj(self.chunks, fh, 1 << 20)
                if more is not None:
                    fh.writelines(_chunk_line(more.chunks[i]) for i in rows)
            self.chunks.seek(0, os.SEEK_END)
            self.vectors.seek(0, os.SEEK_END)

        return _publish(index_dir, fill, manifest)

    def close(self) -> None:
        self.chunks.close()
        self.vectors.close()


def clean(index_dir: Path, keep: str | None = None) -> list[str]:
    """Remove what a killed writer left (half-written `.tmp-*` and half-removed `.trash-*` folders,
    `.CURRENT-*` files) and, when `keep` names the live version, every other version that no reader
    is loading right now; one being loaded is left for the next writer. Returns the names removed.

    Call only while holding the writer lock.
    """
    removed = []
    for path in sorted(index_dir.iterdir()) if index_dir.is_dir() else ():
        name = path.name
        if name.startswith((".tmp-", ".trash-")) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".CURRENT-"):
            path.unlink(missing_ok=True)
        elif not (keep and name != keep and name.startswith("v-") and path.is_dir() and prune(path)):
            continue
        removed.append(name)
    return removed


def prune(version: Path) -> bool:
    """Remove a superseded version unless a reader is loading it (then False: it stays for now).

    The folder is renamed away while its `.readers` lock is held exclusively, so a reader either
    holds the lock first (and the version stays whole) or finds the folder gone and resolves
    CURRENT again; it never sees a version half removed.
    """
    try:
        fd: int | None = os.open(version / READERS, os.O_RDONLY)
    except OSError:
        fd = None  # written before versions had a readers lock
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        trash = version.with_name(f".trash-{version.name}")
        os.rename(version, trash)
    except OSError:
        return False
    finally:
        if fd is not None:
            os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def live_name(index_dir: Path) -> str | None:
    """The live version's folder name, or None when there is none or CURRENT is damaged."""
    try:
        version = current_version(index_dir)
    except IndexStateError:
        return None
    return version.name if version is not None and version.is_dir() else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def writer_lock(index_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold index/.lock exclusively; waits up to `wait_s`, then says who holds it.

    An flock is released by the kernel when its holder dies, so a killed `docqa index` never
    leaves a stale lock behind.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / ".lock"
    fh = path.open("a+")
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise IndexStateError(
                        f"the index in {index_dir} is being written by {holder}",
                        "wait for it to finish, or pass --wait SECONDS",
                    ) from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.close()


class FaissStore:
    """The `Store` over `index/`: rankings from the loaded version, writes as new versions.

    Chunk keys are row numbers. An update carries the rows of unchanged files (`keep`) and the new
    ones (`put`) into a version written atomically by `commit`; rows neither kept nor put are gone
    from it, so `remove` has nothing to do. On a long update `flush` writes checkpoint versions: the
    files handled so far, as now, and every other file of the old index as it was. Each version is
    a consistent index whose manifest lists exactly what it holds, so the next run resumes from it.
    """

    def __init__(self, index_dir: Path, loaded: StoredIndex | None = None) -> None:
        self.index_dir = index_dir
        self.where = str(index_dir)
        self.loaded = loaded
        self._bm25: BM25 | None = None
        self._manifest: Manifest | None = None
        self._rows: dict[str, list[int]] = {}  # source -> its rows in `loaded`, while updating
        self._spool: Spool | None = None  # the chunks and vectors kept and put since `begin`
        self._handled: set[str] = set()  # sources kept or put since `begin`
        self._last_write = 0.0  # time.monotonic() of `begin` or the last checkpoint
        self._write_s = 0.0  # how long the last checkpoint took to write

    # --- reading --------------------------------------------------------------------------------
    @classmethod
    def from_index(cls, loaded: StoredIndex) -> FaissStore:
        """A store over an index already in memory (benchmarks build one without writing it)."""
        store = cls(loaded.path, loaded)
        store._bm25 = BM25(c.search_text for c in loaded.chunks)
        return store

    def open(self) -> Manifest:
        self.loaded = load_index(self.index_dir)
        self._manifest = Manifest.from_dict(self.loaded.manifest, str(self.loaded.path))
        self._bm25 = BM25(c.search_text for c in self.loaded.chunks)  # built once, before any query
        return self._manifest

    @property
    def manifest(self) -> dict[str, Any]:
        assert self.loaded is not None, "open() first"
        return self.loaded.manifest

    @property
    def vectors(self) -> np.ndarray:
        assert self.loaded is not None, "open() first"
        return self.loaded.vectors

    def chunks(self) -> list[Chunk]:
        return self.loaded.chunks if self.loaded else []

    def count(self) -> int:
        return len(self.chunks())

    def dense(self, qvec: np.ndarray, n: int) -> list[int]:
        assert self.loaded is not None
        _, ids = self.loaded.faiss_index.search(qvec[None, :], n)
        return [int(i) for i in ids[0] if i >= 0]

    def lexical(self, query: str, n: int) -> list[int]:
        assert self._bm25 is not None
        return [i for i, _ in self._bm25.top(query, n)]

    def cosines(self, keys: list[int], qvec: np.ndarray) -> dict[int, float]:
        return dict(zip(keys, (self.vectors[keys] @ qvec).tolist(), strict=True))

    def chunks_for(self, keys: list[int]) -> dict[int, Chunk]:
        chunks = self.chunks()
        return {i: chunks[i] for i in keys}

    # --- writing --------------------------------------------------------------------------------
    @property
    def batch_chunks(self) -> int:
        return EMBED_BATCH  # read at each use, so tests can shrink the batches

    @contextmanager
    def writer_lock(self, wait_s: float = 0.0) -> Iterator[None]:
        with writer_lock(self.index_dir, wait_s):
            # What a writer killed mid-write left (kill -9, power cut), and versions a reader was
            # still loading when the last writer pruned.
            clean(self.index_dir, keep=live_name(self.index_dir))
            yield

    def read_manifest(self) -> Manifest | None:
        data = read_manifest(self.index_dir)
        if data is None:
            versions = [p for p in self.index_dir.glob("v-*") if p.is_dir()] if self.index_dir.is_dir() else []
            if versions:  # CURRENT was deleted: an index is there, but which version is live is lost
                raise IndexStateError(
                    f"the index pointer {self.index_dir / 'CURRENT'} is missing, though {len(versions)}"
                    " version folder(s) are there",
                    REBUILD,
                )
            return None
        return Manifest.from_dict(data, self.where)

    def begin(self, wanted: Manifest, old: Manifest | None) -> None:
        self.loaded = load_index(self.index_dir) if old is not None else None
        self._rows = {}
        for row, chunk in enumerate(self.loaded.chunks if self.loaded else ()):
            self._rows.setdefault(chunk.source, []).append(row)
        if self._spool is not None:
            self._spool.close()
        self._spool = Spool(self.index_dir, wanted.dim)
        self._handled = set()
        self._last_write, self._write_s = time.monotonic(), 0.0

    def keep(self, source: str) -> None:
        assert self.loaded is not None and self._spool is not None
        rows = self._rows.get(source, [])
        self._spool.add([self.loaded.chunks[i] for i in rows], self.loaded.vectors[rows])
        self._handled.add(source)

    def put(self, source: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        assert self._spool is not None, "begin() first"
        self._spool.add(chunks, vectors)
        self._handled.add(source)

    def remove(self, sources: list[str]) -> None:
        pass  # a removed file's rows are neither kept nor put

    def flush(self, manifest: Manifest) -> None:
        """Write a checkpoint version when one is due: what was kept and put so far, plus the old
        index's files not handled yet, unchanged; `manifest` lists the former, the old one the latter.
        """
        assert self._spool is not None, "begin() first"
        since = time.monotonic() - self._last_write
        if since < max(CHECKPOINT_S, CHECKPOINT_COST * self._write_s):
            return
        started = time.monotonic()
        files, rows = dict(manifest.files), []
        if self.loaded is not None:
            old_files = self.loaded.manifest.get("files", {})
            rest = [s for s in self._rows if s not in self._handled and s in old_files]
            rows = [i for s in rest for i in self._rows[s]]
            files.update((s, old_files[s]) for s in rest)
        checkpoint = replace(manifest, files=dict(sorted(files.items())), chunk_count=self._spool.rows + len(rows))
        self._spool.write_version(self.index_dir, checkpoint.to_dict(), self.loaded, rows)
        self._last_write = time.monotonic()
        self._write_s = self._last_write - started

    def commit(self, manifest: Manifest) -> None:
        assert self._spool is not None, "begin() first"
        try:
            self._spool.write_version(self.index_dir, manifest.to_dict(), None, [])
        finally:
            self._spool.close()
            self._spool = None
