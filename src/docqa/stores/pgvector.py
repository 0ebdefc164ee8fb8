"""PostgreSQL + pgvector as docqa's store: chunks, vectors and the manifest in one database.

Tables, for `pg_table = "docqa"`:

    data_docqa_chunks   llama-index's PGVectorStore: text, metadata (the chunk's fields, ref_doc_id =
                        its source file), a pgvector embedding, and a generated tsvector column
                        (to_tsvector('english', text), GIN-indexed) for full-text search
    docqa_terms         per chunk: its BM25 term counts (jsonb, GIN-indexed) and length, from the
                        same tokenizer as docqa's in-memory BM25 (bm25.tokenize)
    docqa_manifest      one row: the same manifest the FAISS index keeps in manifest.json

Dense search is exact (no ANN index), so it ranks like FAISS's flat index. The lexical ranking is
computed by PostgreSQL. With `pg_lexical = "bm25"` (the default) it is Okapi BM25 in SQL over
docqa_terms, with the same tokens, k1, b and idf as the FAISS store's BM25, so retrieval ranks as it
does on FAISS and nothing is held in memory. With `pg_lexical = "postgres"` it is PostgreSQL's own
full-text ranking (ts_rank over the english tsvector, through llama-index's hybrid search), which
ranks differently. Either ranking is fused with the dense one by the same weighted RRF.

Updates are per batch of files: a changed file's rows are deleted and re-added, then the manifest
row is rewritten to list exactly the files whose rows are in the table. An interrupted update
leaves a consistent manifest, and the next run resumes with the files not yet in it. Writers hold
a PostgreSQL advisory lock, so two `docqa index` runs against one database don't interleave.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from docqa.errors import IndexStateError, SettingsError
from docqa.ingest.embeddings import Embedder
from docqa.ingest.indexer import (
    IndexReport,
    Progress,
    _mismatch,
    discover,
    library_versions,
    nothing_indexable,
    scan_files,
    wanted_manifest,
)
from docqa.retrieve.fusion import Mode, Retrieval, drop_near_duplicates, rrf
from docqa.settings import Settings
from docqa.stores.faiss_store import FORMAT_VERSION
from docqa.types import Chunk, Passage

EXTRA_HINT = "pip install 'docqa[pgvector]' (llama-index-vector-stores-postgres, psycopg2-binary)"
PG_SCHEMA = 2  # 2: the BM25 terms table; an index with an older layout is rebuilt
EMBED_BATCH = 512  # chunks embedded and written per step: bounds memory and the work an interruption loses


def sqlalchemy_urls(pg_url: str) -> tuple[str, str]:
    """The sync (psycopg2) and async (asyncpg) SQLAlchemy URLs for a libpq-style connection URL.

    >>> sqlalchemy_urls("postgresql://ann:pw@db.example:5432/docs")
    ('postgresql+psycopg2://ann:pw@db.example:5432/docs', 'postgresql+asyncpg://ann:pw@db.example:5432/docs')
    >>> sqlalchemy_urls("postgres://postgres:@/postgres?host=/tmp/pg")[0]
    'postgresql+psycopg2://postgres:@/postgres?host=/tmp/pg'
    """
    scheme, rest = pg_url.split("://", 1) if "://" in pg_url else ("", pg_url)
    if scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise SettingsError(
            f"pg_url must start with postgresql:// (got '{redact(pg_url)}')",
            "set pg_url to e.g. postgresql://user:password@host:5432/database",
        )
    return f"postgresql+psycopg2://{rest}", f"postgresql+asyncpg://{rest}"


def redact(url: str) -> str:
    """The URL with its password replaced, for messages.

    >>> redact("postgresql://ann:s3cret@db:5432/docs")
    'postgresql://ann:***@db:5432/docs'
    """
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _node_metadata(chunk: Chunk) -> dict[str, Any]:
    # The stored text is `search_text` (heading + text), so full-text search sees the heading as
    # docqa's BM25 does; `prefixed` says whether to strip it off again.
    return {
        "chunk_id": chunk.id,
        "source": chunk.source,
        "start": chunk.start,
        "end": chunk.end,
        "heading": chunk.heading,
        "page": chunk.page,
        "prefixed": chunk.search_text != chunk.text,
    }


def chunk_from_row(text: str, meta: dict[str, Any]) -> Chunk:
    """Rebuild a Chunk from a stored row (text = search_text).

    >>> c = Chunk("ab12", "a.txt", "Body.", 0, 5, heading="Title")
    >>> chunk_from_row(c.search_text, _node_metadata(c)) == c
    True
    """
    heading = meta.get("heading")
    body = text[len(heading) + 1 :] if meta.get("prefixed") and heading else text
    return Chunk(meta["chunk_id"], meta["source"], body, meta["start"], meta["end"], heading, meta.get("page"))


class PgDatabase:
    """One docqa index in one PostgreSQL database: the chunk table and the manifest table."""

    def __init__(self, settings: Settings) -> None:
        try:
            import sqlalchemy
            from llama_index.vector_stores.postgres import PGVectorStore  # noqa: F401
        except ImportError:
            raise SettingsError(
                "vector_store = 'pgvector' needs the pgvector extra, which is not installed",
                f"{EXTRA_HINT}, or set vector_store = 'faiss'",
            ) from None
        if not settings.pg_url:
            raise SettingsError(
                "vector_store = 'pgvector' needs pg_url",
                "set pg_url (or DOCQA_PG_URL) to e.g. postgresql://user:password@host:5432/database",
            )
        self.url = settings.pg_url
        self.sync_url, self.async_url = sqlalchemy_urls(settings.pg_url)
        self.prefix = settings.pg_table
        self.chunk_table = f"data_{self.prefix}_chunks"  # PGVectorStore's name for table_name=<prefix>_chunks
        self.manifest_table = f"{self.prefix}_manifest"
        self.terms_table = f"{self.prefix}_terms"
        self._terms_ready = False  # the terms table is known to exist
        self.engine = sqlalchemy.create_engine(self.sync_url, pool_pre_ping=True)
        self._vector_store: Any = None
        self._dim: int | None = None

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection in a transaction, with connection failures turned into one named error."""
        import sqlalchemy.exc

        try:
            with self.engine.begin() as conn:
                yield conn
        except sqlalchemy.exc.OperationalError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise IndexStateError(
                f"could not use PostgreSQL at {redact(self.url)} ({first})",
                "start the server or correct pg_url; the database must allow CREATE EXTENSION vector",
            ) from None

    def read_manifest(self) -> dict[str, Any] | None:
        import sqlalchemy as sa

        with self.connect() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": self.manifest_table}).scalar()
            if exists is None:
                return None
            value = conn.execute(sa.text(f"SELECT manifest FROM {self.manifest_table} WHERE name = 'current'")).scalar()
        return json.loads(value) if isinstance(value, str) else value

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        import sqlalchemy as sa

        with self.connect() as conn:
            conn.execute(
                sa.text(f"CREATE TABLE IF NOT EXISTS {self.manifest_table} (name text PRIMARY KEY, manifest jsonb)")
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO {self.manifest_table} (name, manifest) VALUES ('current', CAST(:m AS jsonb))"
                    " ON CONFLICT (name) DO UPDATE SET manifest = EXCLUDED.manifest"
                ),
                {"m": json.dumps(manifest, ensure_ascii=False)},
            )

    def drop(self) -> None:
        import sqlalchemy as sa

        with self.connect() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.chunk_table}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.terms_table}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.manifest_table}"))
        self._vector_store = None
        self._terms_ready = False

    def vector_store(self, dim: int) -> Any:
        """llama-index's PGVectorStore over the chunk table (created on first use, with the extension)."""
        from llama_index.vector_stores.postgres import PGVectorStore

        if self._vector_store is None or self._dim != dim:
            self._vector_store = PGVectorStore.from_params(
                connection_string=self.sync_url,
                async_connection_string=self.async_url,
                table_name=f"{self.prefix}_chunks",
                embed_dim=dim,
                hybrid_search=True,  # adds the tsvector column and its GIN index
                text_search_config="english",
                use_jsonb=True,
                indexed_metadata_keys={("ref_doc_id", "text")},  # per-file deletes without a table scan
            )
            self._dim = dim
            with self.connect():
                pass  # a bad URL fails here with a named error, not deep inside llama-index
        return self._vector_store

    def count(self) -> int:
        import sqlalchemy as sa

        with self.connect() as conn:
            if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": self.chunk_table}).scalar() is None:
                return 0
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {self.chunk_table}")).scalar() or 0)

    def all_chunks(self) -> list[Chunk]:
        import sqlalchemy as sa

        if not self.count():
            return []
        with self.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT text, metadata_ FROM {self.chunk_table} ORDER BY id")).all()
        return [chunk_from_row(text, meta) for text, meta in rows]

    def replace_terms(self, sources: list[str], chunks: list[Chunk]) -> None:
        """Delete the BM25 rows of `sources`, then add one row per chunk (term counts and length)."""
        import sqlalchemy as sa

        from docqa.retrieve.bm25 import tokenize

        with self.connect() as conn:
            if not self._terms_ready:  # once per process, not once per batch
                t = self.terms_table
                conn.execute(
                    sa.text(
                        f"CREATE TABLE IF NOT EXISTS {t}"
                        " (node_id text PRIMARY KEY, source text NOT NULL, tf jsonb NOT NULL, doclen int NOT NULL)"
                    )
                )
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {t}_tf ON {t} USING gin (tf)"))
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {t}_src ON {t} (source)"))
                self._terms_ready = True
            if sources:
                conn.execute(sa.text(f"DELETE FROM {self.terms_table} WHERE source = ANY(:s)"), {"s": sources})
            rows = []
            for c in chunks:
                tokens = tokenize(c.search_text)
                rows.append({"id": c.id, "src": c.source, "tf": json.dumps(Counter(tokens)), "len": len(tokens)})
            if rows:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {self.terms_table} (node_id, source, tf, doclen)"
                        " VALUES (:id, :src, CAST(:tf AS jsonb), :len)"
                    ),
                    rows,
                )

    def bm25(self, query: str, n: int) -> list[tuple[str, float]]:
        """(chunk id, score) by Okapi BM25, best first, computed in PostgreSQL (the scores of bm25.BM25)."""
        import sqlalchemy as sa

        from docqa.retrieve.bm25 import K1, B, tokenize

        terms = sorted(set(tokenize(query)))
        if not terms:
            return []
        # MATERIALIZED: computed once. Inlined, the per-term document counts were re-run for every
        # candidate row (minutes at 20k chunks instead of milliseconds).
        sql = f"""
            WITH st AS MATERIALIZED (
                SELECT count(*)::float8 AS n, avg(doclen)::float8 AS avgdl FROM {self.terms_table}
            ),
            df AS MATERIALIZED (
                SELECT q.term, count(t.node_id)::float8 AS df
                FROM unnest(CAST(:terms AS text[])) AS q(term)
                JOIN {self.terms_table} t ON t.tf ? q.term
                GROUP BY q.term
            )
            SELECT t.node_id,
                   sum(ln(1 + (st.n - df.df + 0.5) / (df.df + 0.5))
                       * (t.tf ->> df.term)::float8 * (:k1 + 1)
                       / ((t.tf ->> df.term)::float8
                          + :k1 * (1 - :b + :b * t.doclen / greatest(st.avgdl, 1e-9)))) AS score
            FROM {self.terms_table} t JOIN df ON t.tf ? df.term CROSS JOIN st
            WHERE t.tf ?| CAST(:terms AS text[])
            GROUP BY t.node_id ORDER BY score DESC, t.node_id LIMIT :n
        """
        with self.connect() as conn:
            if not self._terms_ready:
                if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": self.terms_table}).scalar() is None:
                    return []
                self._terms_ready = True
            rows = conn.execute(sa.text(sql), {"terms": terms, "k1": K1, "b": B, "n": n}).all()
        return [(node_id, float(score)) for node_id, score in rows]

    def chunks_by_id(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        import sqlalchemy as sa

        if not chunk_ids:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT node_id, text, metadata_ FROM {self.chunk_table} WHERE node_id = ANY(:ids)"),
                {"ids": chunk_ids},
            ).all()
        return {node_id: chunk_from_row(text, meta) for node_id, text, meta in rows}

    def cosines(self, chunk_ids: list[str], qvec: np.ndarray) -> dict[str, float]:
        """Cosine of the query to each listed chunk (pgvector's <=> is cosine distance)."""
        import sqlalchemy as sa

        if not chunk_ids:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT node_id, 1 - (embedding <=> CAST(:q AS vector)) FROM {self.chunk_table}"
                    " WHERE node_id = ANY(:ids)"
                ),
                {"q": _vector_literal(qvec), "ids": chunk_ids},
            ).all()
        return {node_id: float(cos) for node_id, cos in rows}

    @contextmanager
    def writer_lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """A session-level advisory lock named after the table prefix; released if the writer dies."""
        import sqlalchemy as sa

        key = zlib.crc32(f"docqa:{self.prefix}".encode())
        deadline = time.monotonic() + wait_s
        with self.connect() as conn:
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise IndexStateError(
                        f"the index '{self.prefix}' in {redact(self.url)} is being written by another process",
                        "wait for it to finish, or pass --wait SECONDS",
                    )
                time.sleep(0.2)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _vector_literal(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in np.asarray(vec, dtype=np.float32).tolist()) + "]"


@dataclass
class PgIndexInfo:
    manifest: dict[str, Any]


class PgRetriever:
    """Dense (pgvector) + full-text (PostgreSQL) over one database, fused like `retrieval.Retriever`."""

    def __init__(
        self,
        db: PgDatabase,
        manifest: dict[str, Any],
        embedder: Embedder,
        candidates: int = 20,
        dedup_threshold: float = 0.8,
        bm25_weight: float = 1.0,
        lexical: str = "bm25",
    ) -> None:
        self.db = db
        self.lexical = lexical  # "bm25" (Okapi BM25 in SQL) or "postgres" (PostgreSQL's ts_rank)
        self.index = PgIndexInfo(manifest)
        self.embedder = embedder
        self.candidates = candidates
        self.dedup_threshold = dedup_threshold
        self.bm25_weight = bm25_weight
        self.size = db.count()
        self._chunks: list[Chunk] | None = None

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder) -> PgRetriever:
        db = PgDatabase(settings)
        manifest = db.read_manifest()
        if manifest is None:
            raise IndexStateError(
                f"no index '{settings.pg_table}' in {redact(db.url)}",
                "run `docqa index` to build it from your documents",
            )
        if manifest.get("embed_model") != embedder.name or manifest.get("dim") != embedder.dim:
            raise IndexStateError(
                f"the index in {redact(db.url)} was built with {manifest.get('embed_model')} ({manifest.get('dim')}-d)",
                "run `docqa index --rebuild`, or set embed_model to the model it was built with",
            )
        return cls(
            db,
            manifest,
            embedder,
            settings.candidates,
            settings.dedup_threshold,
            settings.bm25_weight,
            settings.pg_lexical,
        )

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk, read once on first use (the status line and example questions need them)."""
        if self._chunks is None:
            self._chunks = self.db.all_chunks()
        return self._chunks

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval:
        from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

        if not self.size:
            return Retrieval([], 0.0)
        store = self.db.vector_store(self.embedder.dim)
        qvec = self.embedder.embed([query])[0]
        n = min(self.candidates, self.size)
        by_id: dict[str, Chunk] = {}
        rankings: list[list[str]] = []
        weights: list[float] = []
        cos_of: dict[str, float] = {}
        if mode in ("dense", "hybrid"):
            found = store.query(VectorStoreQuery(query_embedding=qvec.tolist(), similarity_top_k=n))
            for node, sim in zip(found.nodes, found.similarities or [], strict=True):
                cos_of[node.metadata["chunk_id"]] = float(sim)
            rankings.append(self._collect(found.nodes, by_id))
            weights.append(1.0)
        if mode in ("bm25", "hybrid") and self.lexical == "bm25":
            rankings.append(self._bm25_ranking(query, n, by_id))
            weights.append(self.bm25_weight)
        elif mode in ("bm25", "hybrid"):
            found = store.query(
                VectorStoreQuery(
                    query_str=query, sparse_top_k=n, similarity_top_k=n, mode=VectorStoreQueryMode.TEXT_SEARCH
                )
            )
            rankings.append(self._collect(found.nodes, by_id))
            weights.append(self.bm25_weight)
        fused = [i for i, _ in rrf(rankings, weights=weights)]  # type: ignore[arg-type]  # str ids fuse as ints do
        if not fused:
            return Retrieval([], 0.0)
        cos_of.update(self.db.cosines([i for i in fused if i not in cos_of], qvec))
        kept = drop_near_duplicates(fused, lambda i: by_id[i].text, self.dedup_threshold, top_k)
        passages = [Passage(n=j + 1, chunk=by_id[i], score=cos_of[i]) for j, i in enumerate(kept)]
        return Retrieval(passages, max(cos_of[i] for i in fused))

    def _bm25_ranking(self, query: str, n: int, by_id: dict[str, Chunk]) -> list[str]:
        ranking = [i for i, _ in self.db.bm25(query, n)]
        missing = [i for i in ranking if i not in by_id]
        by_id.update(self.db.chunks_by_id(missing))
        return [i for i in ranking if i in by_id]

    @staticmethod
    def _collect(nodes: list[Any], by_id: dict[str, Chunk]) -> list[str]:
        ranking = []
        for node in nodes:
            meta = {k: v for k, v in node.metadata.items() if k != "custom_fields"}
            chunk = chunk_from_row(node.get_content(), meta)
            by_id.setdefault(chunk.id, chunk)
            ranking.append(chunk.id)
        return ranking


def update_pg_index(
    settings: Settings,
    embedder: Embedder,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_wait_s: float = 0.0,
) -> IndexReport:
    """Make the PostgreSQL index match `settings.docs_dir`, re-embedding only files whose sha256 changed."""
    db = PgDatabase(settings)
    with db.writer_lock(lock_wait_s):
        return _update(db, settings, embedder, rebuild, progress or (lambda *_: None))


def _update(db: PgDatabase, settings: Settings, embedder: Embedder, rebuild: bool, progress: Progress) -> IndexReport:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    started = time.perf_counter()
    report = IndexReport()
    files, report.failed = discover(settings.docs_dir, int(settings.max_file_mb * 1e6))
    wanted = {
        **wanted_manifest(settings, embedder),
        "format": FORMAT_VERSION,
        "vector_store": "pgvector",
        "pg_schema": PG_SCHEMA,
    }
    old = None if rebuild else db.read_manifest()
    if rebuild:
        report.rebuilt_because = "--rebuild was asked for"
    elif old is not None:
        report.rebuilt_because = _mismatch(old, wanted)
        if report.rebuilt_because is None and old.get("pg_schema") != PG_SCHEMA:
            report.rebuilt_because = f"the PostgreSQL layout changed ({old.get('pg_schema')} -> {PG_SCHEMA})"
    if old is None or report.rebuilt_because:
        db.drop()
        old = None
    store = db.vector_store(embedder.dim)
    old_files: dict[str, Any] = dict(old["files"]) if old else {}
    # What the table holds right now, by file: the manifest is rewritten from this after each batch.
    live: dict[str, Any] = dict(old_files)
    pending: list[tuple[str, dict[str, Any], list[Chunk]]] = []

    def manifest(building: bool) -> dict[str, Any]:
        return {
            **wanted,
            "files": dict(sorted(live.items())),
            "chunk_count": sum(r["chunks"] for r in live.values()),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "complete": not building,
        }

    def flush() -> None:
        chunks = [c for _, _, cs in pending for c in cs]
        vectors = embedder.embed([c.search_text for c in chunks])
        nodes = [
            TextNode(
                id_=c.id,
                text=c.search_text,
                embedding=v.tolist(),
                metadata=_node_metadata(c),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=c.source)},
            )
            for c, v in zip(chunks, vectors, strict=True)
        ]
        for source, _, _ in pending:
            store.delete(source)
        if nodes:
            store.add(nodes)
        db.replace_terms([source for source, _, _ in pending], chunks)
        live.update({source: record for source, record, _ in pending})
        db.write_manifest(manifest(building=True))
        report.embedded += len(chunks)
        pending.clear()

    for scanned in scan_files(settings, embedder, files, old_files, report, progress):
        if scanned.chunks is None:
            continue  # unchanged: its rows stay in the table
        pending.append((scanned.source, scanned.record, scanned.chunks))
        if sum(len(cs) for _, _, cs in pending) >= EMBED_BATCH:
            progress(scanned.position, len(files), f"embedding {sum(len(cs) for _, _, cs in pending)} chunks")
            flush()
    if pending:
        progress(len(files), len(files), f"embedding {sum(len(cs) for _, _, cs in pending)} chunks")
        flush()
    report.removed = sorted(set(old_files) - {s for s, _ in files})
    for source in report.removed:
        store.delete(source)
        live.pop(source, None)
    if report.removed:
        db.replace_terms(report.removed, [])
    if not live:
        raise nothing_indexable(settings, report)
    report.chunks = sum(r["chunks"] for r in live.values())
    if report.changed or old is None or not old.get("complete", True):
        db.write_manifest(manifest(building=False))
        report.wrote = True
    report.seconds = time.perf_counter() - started
    return report
