"""The manifest: how an index was built and which files it holds, the same on every store.

On disk it is a JSON object (FAISS: `manifest.json` in the version folder; pgvector: one jsonb row).
Keys a store adds for itself (FAISS's `checksums`, pgvector's `vector_store` and `pg_schema`) are
kept in `extra` and written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from docqa.errors import IndexStateError

FORMAT_VERSION = 1  # the manifest and FAISS layout; an index with another is rebuilt, never read
REBUILD = "run `docqa index --rebuild`"

# Settings whose change makes an index unusable for an in-place update, with their names in messages.
_BUILD_KEYS = {
    "embed_model": "embedding model",
    "dim": "embedding dimension",
    "chunking": "chunk settings",
    "chunker": "chunker version",
    "docs_dir": "documents folder",
}


@dataclass(frozen=True)
class Manifest:
    embed_model: str
    dim: int
    chunking: dict[str, int]
    chunker: int
    docs_dir: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> sha256, chunks, bytes, indexed_at
    chunk_count: int = 0
    built_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    complete: bool = True  # False while an update is still writing batches (pgvector)
    extra: dict[str, Any] = field(default_factory=dict)  # the store's own keys

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored on disk (the shape `retriever.index.manifest` shows callers).

        >>> m = Manifest("m", 4, {"chunk_tokens": 8}, 2, "/d", extra={"checksums": {}})
        >>> Manifest.from_dict(m.to_dict(), "test") == m
        True
        """
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: object, where: str) -> Manifest:
        """Parse a stored manifest; anything malformed is an IndexStateError naming `where`.

        >>> try:
        ...     Manifest.from_dict({"embed_model": "m"}, "index/v-1")
        ... except IndexStateError as exc:
        ...     print(exc.cause)
        the index manifest in index/v-1 is missing or corrupt (no dim)
        """
        if not isinstance(data, dict):
            raise IndexStateError(f"the index manifest in {where} is missing or corrupt", REBUILD)
        types = {"embed_model": str, "dim": int, "chunking": dict, "chunker": int, "docs_dir": str, "files": dict}
        for key, kind in types.items():
            if not isinstance(data.get(key), kind):
                raise IndexStateError(f"the index manifest in {where} is missing or corrupt (no {key})", REBUILD)
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {"format": 0, **{k: v for k, v in data.items() if k in names}}  # no format: older than 1
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def mismatch(self, wanted: Manifest) -> str | None:
        """Why this index can't be updated in place to become `wanted`, or None if it can.

        >>> from dataclasses import replace
        >>> old = Manifest("m", 4, {"chunk_tokens": 8}, 2, "/d")
        >>> old.mismatch(replace(old, dim=8))
        'the embedding dimension changed (4 -> 8)'
        """
        for key, label in _BUILD_KEYS.items():
            if getattr(self, key) != getattr(wanted, key):
                return f"the {label} changed ({getattr(self, key)!r} -> {getattr(wanted, key)!r})"
        if self.format != wanted.format:
            return f"the index format changed ({self.format} -> {wanted.format})"
        return None

    def check_embedder(self, name: str, dim: int, where: str) -> None:
        """Queries must be embedded by the model that built the index."""
        if (self.embed_model, self.dim) != (name, dim):
            raise IndexStateError(
                f"the index in {where} was built with {self.embed_model} ({self.dim}-d), not {name} ({dim}-d)",
                "run `docqa index --rebuild`, or set embed_model to the model it was built with",
            )
