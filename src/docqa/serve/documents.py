"""The documents folder as the web page manages it: save uploads, delete files, list what is indexed.

Every name that comes from a browser is checked before it touches the disk: no folders, no `..`,
no absolute paths, no hidden names, nothing that resolves outside the documents folder. Bad input
raises `DocsError` saying what was wrong and what to do instead.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from docqa.errors import DocqaError, DocsError
from docqa.ingest.indexer import FileProblem, discover
from docqa.ingest.readers import SUPPORTED
from docqa.settings import Settings
from docqa.stores import faiss_store as store
from docqa.types import Chunk

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w .,()+\-]")  # keep letters (any script), digits, space and a little punctuation
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FUNCTION_WORDS = {"the", "a", "an", "why", "how", "what", "when", "where", "who", "which", "on", "of", "in"}

DocState = Literal["indexed", "not indexed yet", "changed since indexing", "missing from folder", "can't be indexed"]


@dataclass(frozen=True)
class DocumentRow:
    """One file in the Documents tab. `chunks`/`indexed_at` are None for a file not yet indexed."""

    source: str  # relative to the docs folder, forward slashes (as in the index)
    state: DocState
    size_bytes: int | None
    chunks: int | None
    indexed_at: str | None  # when the index holding this file was built (ISO 8601, UTC)
    note: str | None = None  # why the indexer refused or failed the file


@dataclass(frozen=True)
class UploadResult:
    """What became of one uploaded file: `source` when saved, else `error`."""

    name: str
    source: str | None = None
    replaced: bool = False
    error: str | None = None

    @property
    def message(self) -> str:
        if self.error:
            return f"{self.name}: not saved: {self.error}"
        verb = "replaced" if self.replaced else "saved"
        return f"{self.name}: {verb} as {self.source}"


def supported_list() -> str:
    return ", ".join(sorted(SUPPORTED))


def clean_name(name: str) -> str:
    """Check an uploaded file's name and make it safe to save; raises DocsError for a refused name.

    Refused: folders, `..`, absolute paths, hidden names, unsupported types. Unusual characters are
    replaced with "_" and runs of spaces collapsed.

    >>> clean_name("  Annual report (2019)?.PDF ")
    'Annual report (2019)_.PDF'
    >>> try:
    ...     clean_name("../x.txt")
    ... except DocsError as exc:
    ...     print(exc.cause)
    the file name '../x.txt' climbs out of the documents folder ('..')
    """
    raw = name or ""
    shown = _CONTROL.sub("?", raw)[:80]
    plain_fix = "upload the file under a plain name such as report.pdf"
    for flavour in (PurePosixPath(raw), PureWindowsPath(raw)):
        if flavour.is_absolute() or raw.startswith(("/", "\\")) or flavour.drive:
            raise DocsError(f"the file name '{shown}' is an absolute path", plain_fix)
        if ".." in flavour.parts:
            raise DocsError(f"the file name '{shown}' climbs out of the documents folder ('..')", plain_fix)
    if "/" in raw or "\\" in raw:
        raise DocsError(f"the file name '{shown}' contains a folder", plain_fix)
    text = unicodedata.normalize("NFC", _CONTROL.sub("", raw))
    text = " ".join(_UNSAFE.sub("_", text).split()).rstrip(". ")
    if not text or not text.strip("._ "):
        raise DocsError(f"the file name '{shown}' is empty after removing unsafe characters", plain_fix)
    if text.startswith("."):
        raise DocsError(
            f"the file name '{shown}' is hidden (starts with '.'); the indexer skips hidden files",
            "rename it without the leading dot",
        )
    suffix = Path(text).suffix
    if suffix.lower() not in SUPPORTED:
        raise DocsError(
            f"'{shown}' has an unsupported file type '{suffix or '(none)'}'",
            f"upload one of: {supported_list()}",
        )
    if len(text) > MAX_NAME_CHARS:
        text = text[: MAX_NAME_CHARS - len(suffix)].rstrip(". ") + suffix
    return text


def resolve_source(docs_dir: Path, source: str) -> Path:
    """The path of document `source` (relative, forward slashes) inside `docs_dir`, after checks.

    >>> try:
    ...     resolve_source(Path("docs"), "/etc/passwd")
    ... except DocsError as exc:
    ...     print(exc.cause)
    '/etc/passwd' is an absolute path, not a document in the documents folder
    """
    fix = "pick a file from the list of documents"
    raw = source or ""
    shown = _CONTROL.sub("?", raw)[:80]
    posix = PurePosixPath(raw.replace("\\", "/"))
    if not raw.strip():
        raise DocsError("no document was chosen", fix)
    if posix.is_absolute() or PureWindowsPath(raw).drive:
        raise DocsError(f"'{shown}' is an absolute path, not a document in the documents folder", fix)
    if ".." in posix.parts:
        raise DocsError(f"'{shown}' climbs out of the documents folder ('..')", fix)
    if any(part.startswith(".") for part in posix.parts):
        raise DocsError(f"'{shown}' is a hidden file, not a document", fix)
    root = docs_dir.resolve()
    path = docs_dir / Path(*posix.parts)
    if not path.resolve().is_relative_to(root):
        raise DocsError(f"'{shown}' resolves outside the documents folder {docs_dir}", fix)
    return path


def save_upload(settings: Settings, upload: Path, name: str | None = None) -> UploadResult:
    """Copy an uploaded file into the docs folder under a checked name. Raises DocsError if refused.

    `name` is the name the user gave the file (default: the upload's own file name). An existing
    document of the same name is replaced. The copy is written to a hidden temporary name first
    (the indexer skips hidden files) and renamed into place, so a half-written file is never indexed.
    """
    target_name = clean_name(upload.name if name is None else name)
    limit = int(settings.max_upload_mb * 1e6)
    try:
        size = upload.stat().st_size
    except OSError as exc:
        raise DocsError(f"the upload {target_name} can't be read ({exc.strerror})", "upload it again") from None
    if size > limit:
        raise DocsError(
            f"{target_name} is {size / 1e6:.1f} MB, over the {settings.max_upload_mb:g} MB upload limit",
            "upload a smaller file, or raise max_upload_mb in the settings",
        )
    if size == 0:
        raise DocsError(f"{target_name} is empty", "upload a file with text in it")
    docs_dir = settings.docs_dir
    docs_dir.mkdir(parents=True, exist_ok=True)
    target = resolve_source(docs_dir, target_name)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise DocsError(f"{target_name} exists in the documents folder and is not a plain file", "rename the upload")
    replaced = target.exists()
    tmp = docs_dir / f".upload-{uuid.uuid4().hex[:8]}{target.suffix}"
    try:
        shutil.copyfile(upload, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return UploadResult(name=name or upload.name, source=target.relative_to(docs_dir).as_posix(), replaced=replaced)


def save_uploads(settings: Settings, uploads: Sequence[str | Path]) -> list[UploadResult]:
    """Save several uploads; a refused file gets an error result and doesn't stop the others."""
    results = []
    for item in uploads:
        path = Path(item)
        try:
            results.append(save_upload(settings, path))
        except DocqaError as exc:
            results.append(UploadResult(name=path.name, error=exc.message))
    return results


def delete_document(settings: Settings, source: str) -> Path:
    """Remove one document from the docs folder (the index forgets it at the next re-index)."""
    path = resolve_source(settings.docs_dir, source)
    if not path.is_file() and not path.is_symlink():
        raise DocsError(f"'{source}' is not in the documents folder {settings.docs_dir}", "refresh the list")
    path.unlink()
    return path


def list_documents(
    settings: Settings, manifest: dict[str, Any], failed: Iterable[FileProblem] = ()
) -> list[DocumentRow]:
    """Files in the index and in the docs folder, with each one's indexing state.

    `manifest` is the live index's manifest (`pipeline.retriever.index.manifest`); it records
    each file's sha256, chunk count and size, and when the index was built. `failed` are the last
    re-index's failures (`IndexReport.failed`), shown next to their files.
    """
    indexed: dict[str, Any] = manifest.get("files", {})
    built_at = manifest.get("built_at")
    try:  # the indexer's own view of what counts as a document
        found, problems = discover(settings.docs_dir, int(settings.max_file_mb * 1e6))
    except DocsError:
        found, problems = [], []
    on_disk = dict(found)
    reasons = {p.source: p.reason for p in [*problems, *failed]}
    rows = []
    for source in sorted(set(indexed) | set(on_disk) | set(reasons)):
        record = indexed.get(source)
        path = on_disk.get(source)
        note = reasons.get(source)
        size = _size(path if path else settings.docs_dir / source)
        if record is None:
            state: DocState = "can't be indexed" if note else "not indexed yet"
            rows.append(DocumentRow(source, state, size, None, None, note))
            continue
        state = "indexed"
        if path is None and note is None:
            state = "missing from folder"
        elif path is None or size != record.get("bytes") or _sha256(path) != record.get("sha256"):
            state = "changed since indexing"
        indexed_at = record.get("indexed_at", built_at)  # indexes built before per-file times used the build time
        rows.append(DocumentRow(source, state, size, record.get("chunks"), indexed_at, note))
    return rows


PAGE_ROWS = 50  # rows of the Documents table on one page


@dataclass(frozen=True)
class DocumentsPage:
    """One page of the Documents table, after the filter: a folder of 10,000 files shows 50 at a time."""

    rows: list[DocumentRow]
    page: int  # 1-based, within 1..pages
    pages: int
    matched: int  # rows that pass the filter
    total: int  # rows in all
    query: str
    per_page: int = PAGE_ROWS

    @property
    def first(self) -> int:
        """The 1-based number of the page's first row among the matches (0 when none match)."""
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    def summary(self) -> str:
        """Which rows are shown, of how many.

        >>> rows = [DocumentRow(f"f{i}.txt", "indexed", 1, 1, None) for i in range(10_000)]
        >>> page_of(rows, page=2).summary()
        'rows 51–100 of 10,000'
        >>> page_of(rows, "f999").summary()
        "rows 1–11 of 11 matching 'f999' (10,000 files in all)"
        """
        if not self.query:
            return f"rows {self.first:,}–{self.last:,} of {self.total:,}" if self.rows else "no files"
        if not self.rows:
            return f"no file name contains '{self.query}' ({self.total:,} files in all)"
        shown = f"rows {self.first:,}–{self.last:,} of {self.matched:,}"
        return f"{shown} matching '{self.query}' ({self.total:,} files in all)"


def page_of(
    rows: Sequence[DocumentRow], query: str = "", page: float | None = 1, per_page: int = PAGE_ROWS
) -> DocumentsPage:
    """Page `page` of the rows whose path contains `query` (any case); a page past the end shows the last.

    >>> rows = [DocumentRow(name, "indexed", 1, 1, None) for name in ("a/Tea.md", "b/rice.txt", "c/tea.pdf")]
    >>> [r.source for r in page_of(rows, " TEA ").rows]
    ['a/Tea.md', 'c/tea.pdf']
    """
    needle = " ".join((query or "").split())[:200]
    folded = needle.casefold()
    matched = [row for row in rows if folded in row.source.casefold()] if folded else list(rows)
    pages = max(1, -(-len(matched) // per_page))
    try:
        number = int(page or 1)
    except (TypeError, ValueError, OverflowError):
        number = 1
    number = min(max(number, 1), pages)
    shown = matched[(number - 1) * per_page : number * per_page]
    return DocumentsPage(shown, number, pages, len(matched), len(rows), needle, per_page)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_SHA_CACHE_MAX = 200_000


def _sha256(path: Path) -> str | None:
    """The file's sha256, remembered while its modification time and size stay the same, so listing
    a folder of 10,000 indexed files again reads none of them."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _SHA_CACHE:
            if len(_SHA_CACHE) >= _SHA_CACHE_MAX:
                _SHA_CACHE.clear()
            _SHA_CACHE[key] = store.sha256_file(path)
        return _SHA_CACHE[key]
    except OSError:
        return None


def title_from_source(source: str) -> str | None:
    """A readable topic from a file name, or None when the name says nothing.

    >>> title_from_source("reports/poverty-alleviation_and-rural-revitalization.txt")
    'poverty alleviation and rural revitalization'
    >>> title_from_source("doc1.pdf") is None
    True
    """
    words = re.sub(r"[-_.]+", " ", PurePosixPath(source).stem).split()
    if len(words) < 2 or not any(len(w) > 3 and w.isalpha() for w in words):
        return None
    return " ".join(words)


def topic(heading: str) -> str:
    """A heading as the object of "say about ...": a leading function word loses its capital.

    >>> topic("Why the two strategies should be connected.")
    'why the two strategies should be connected'
    >>> topic("Yunnan tea")
    'Yunnan tea'
    """
    text = " ".join(heading.split()).rstrip(" .:;?!")
    first, _, rest = text.partition(" ")
    if first.lower() in _FUNCTION_WORDS:
        text = first.lower() + (" " + rest if rest else "")
    return text


def example_questions(chunks: Iterable[Chunk], limit: int = 4, max_chars: int = 110) -> list[str]:
    """Questions to offer on the start screen, from file names and headings; no model call.

    Files take turns, so every document is represented before any gets a second question.

    >>> from docqa.types import Chunk
    >>> chunks = [Chunk("1", "rice-terraces.txt", "t", 0, 1, "The Hani terraces"), Chunk("2", "doc2.txt", "t", 0, 1)]
    >>> for q in example_questions(chunks):
    ...     print(q)
    What does the document say about rice terraces?
    What does the document say about the Hani terraces?
    """
    per_file: dict[str, list[str]] = {}
    for chunk in chunks:
        topics = per_file.setdefault(chunk.source, [])
        if not topics:
            title = title_from_source(chunk.source)
            topics.append(topic(title) if title else "")
        if chunk.heading:
            topics.append(topic(chunk.heading))
    queues = [[t for t in dict.fromkeys(topics) if t] for topics in per_file.values()]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < limit and any(queues):
        for queue in queues:
            if not queue or len(out) >= limit:
                continue
            question = f"What does the document say about {queue.pop(0)}?"
            if len(question) <= max_chars and question.lower() not in seen:
                seen.add(question.lower())
                out.append(question)
    return out
