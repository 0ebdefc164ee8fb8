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

`PgStore` is the `Store` (docqa.stores) over these tables: chunk keys are node ids. The shared update
loop (ingest/indexer.py) writes per batch of files: `flush` deletes and re-adds the batch's rows,
then rewrites the manifest row to list exactly the files whose rows are in the table. An
interrupted update leaves a consistent manifest, and the next run resumes with the files not yet
in it. Writers hold a PostgreSQL advisory lock, so two `docqa index` runs against one database
don't interleave. An index with an older layout, or without its terms table, is refused
(IndexStateError) and rebuilt by the next update, never searched without its lexical ranking.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from docqa.errors import IndexStateError, SettingsError
from docqa.settings import Settings
from docqa.stores.manifest import FORMAT_VERSION, REBUILD, Manifest
from docqa.types import Chunk

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


class PgStore:
    """The `Store` over one docqa index in one PostgreSQL database (chunk keys are node ids)."""

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
        self.lexical_ranking = settings.pg_lexical  # "bm25" (Okapi BM25 in SQL) or "postgres" (ts_rank)
        self.where = f"'{self.prefix}' in {redact(self.url)}"
        self.chunk_table = f"data_{self.prefix}_chunks"  # PGVectorStore's name for table_name=<prefix>_chunks
        self.manifest_table = f"{self.prefix}_manifest"
        self.terms_table = f"{self.prefix}_terms"
        self._terms_ready = False  # the terms table is known to exist
        self.engine = sqlalchemy.create_engine(self.sync_url, pool_pre_ping=True)
        self._vector_store: Any = None
        self._dim: int | None = None
        self._manifest: Manifest | None = None
        self._chunks: list[Chunk] | None = None
        self._pending: list[tuple[str, list[Chunk], np.ndarray]] = []  # put, not yet flushed

    @property
    def batch_chunks(self) -> int:
        return EMBED_BATCH  # read at each use, so tests can shrink the batches

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

    @staticmethod
    def _exists(conn: Any, table: str) -> bool:
        import sqlalchemy as sa

        return conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None

    # --- reading --------------------------------------------------------------------------------
    def read_manifest(self) -> Manifest | None:
        """The manifest row, checked against this layout; None when there is no index."""
        import sqlalchemy as sa

        with self.connect() as conn:
            if not self._exists(conn, self.manifest_table):
                return None
            value = conn.execute(sa.text(f"SELECT manifest FROM {self.manifest_table} WHERE name = 'current'")).scalar()
            if value is None:
                return None
            manifest = Manifest.from_dict(json.loads(value) if isinstance(value, str) else value, self.where)
            schema = manifest.extra.get("pg_schema")
            if schema != PG_SCHEMA:
                raise IndexStateError(f"the PostgreSQL layout changed ({schema} -> {PG_SCHEMA})", REBUILD)
            if manifest.format != FORMAT_VERSION:
                raise IndexStateError(
                    f"the index {self.where} has format {manifest.format}, this docqa reads {FORMAT_VERSION}", REBUILD
                )
            if not self._exists(conn, self.terms_table):  # BM25 would silently rank nothing
                raise IndexStateError(f"the index {self.where} has no BM25 terms table ({self.terms_table})", REBUILD)
        return manifest

    def open(self) -> Manifest:
        manifest = self.read_manifest()
        if manifest is None:
            raise IndexStateError(f"no index {self.where}", "run `docqa index` to build it from your documents")
        self._manifest, self._terms_ready = manifest, True
        return manifest

    @property
    def manifest(self) -> dict[str, Any]:
        assert self._manifest is not None, "open() first"
        return self._manifest.to_dict()

    def count(self) -> int:
        import sqlalchemy as sa

        with self.connect() as conn:
            if not self._exists(conn, self.chunk_table):
                return 0
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {self.chunk_table}")).scalar() or 0)

    def chunks(self) -> list[Chunk]:
        """Every chunk, read once on first use (the status line and example questions need them)."""
        import sqlalchemy as sa

        if self._chunks is None:
            if not self.count():
                return []
            with self.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT text, metadata_ FROM {self.chunk_table} ORDER BY id")).all()
            self._chunks = [chunk_from_row(text, meta) for text, meta in rows]
        return self._chunks

    def dense(self, qvec: np.ndarray, n: int) -> list[str]:
        """Exact nearest neighbours by cosine distance (no ANN index: ranks like FAISS's flat index)."""
        import sqlalchemy as sa

        sql = f"SELECT node_id FROM {self.chunk_table} ORDER BY embedding <=> CAST(:q AS vector), id LIMIT :n"
        with self.connect() as conn:
            return [row[0] for row in conn.execute(sa.text(sql), {"q": _vector_literal(qvec), "n": n})]

    def lexical(self, query: str, n: int) -> list[str]:
        if self.lexical_ranking == "bm25":
            return [i for i, _ in self.bm25(query, n)]
        from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

        assert self._manifest is not None
        found = self.vector_store(self._manifest.dim).query(
            VectorStoreQuery(query_str=query, sparse_top_k=n, similarity_top_k=n, mode=VectorStoreQueryMode.TEXT_SEARCH)
        )
        return [node.metadata["chunk_id"] for node in found.nodes]

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
            rows = conn.execute(sa.text(sql), {"terms": terms, "k1": K1, "b": B, "n": n}).all()
        return [(node_id, float(score)) for node_id, score in rows]

    def chunks_for(self, keys: list[str]) -> dict[str, Chunk]:
        import sqlalchemy as sa

        if not keys:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT node_id, text, metadata_ FROM {self.chunk_table} WHERE node_id = ANY(:ids)"),
                {"ids": keys},
            ).all()
        return {node_id: chunk_from_row(text, meta) for node_id, text, meta in rows}

    def cosines(self, keys: list[str], qvec: np.ndarray) -> dict[str, float]:
        """Cosine of the query to each listed chunk (pgvector's <=> is cosine distance)."""
        import sqlalchemy as sa

        if not keys:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT node_id, 1 - (embedding <=> CAST(:q AS vector)) FROM {self.chunk_table}"
                    " WHERE node_id = ANY(:ids)"
                ),
                {"q": _vector_literal(qvec), "ids": keys},
            ).all()
        return {node_id: float(cos) for node_id, cos in rows}

    # --- writing --------------------------------------------------------------------------------
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
                        f"the index {self.where} is being written by another process",
                        "wait for it to finish, or pass --wait SECONDS",
                    )
                time.sleep(0.2)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def begin(self, wanted: Manifest, old: Manifest | None) -> None:
        """Start an update: on `old` in place, or (None) on empty tables."""
        if old is None:
            self.drop()
        self.vector_store(wanted.dim)
        self.replace_terms([], [])  # the terms table exists from the first manifest on
        self._pending.clear()

    def keep(self, source: str) -> None:
        pass  # an unchanged file's rows stay in the table

    def put(self, source: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self._pending.append((source, chunks, vectors))

    def remove(self, sources: list[str]) -> None:
        store = self._vector_store
        for source in sources:
            store.delete(source)
        if sources:
            self.replace_terms(sources, [])

    def flush(self, manifest: Manifest) -> None:
        """Replace the rows of the files put since the last flush, then record them in the manifest."""
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        store = self._vector_store
        nodes = [
            TextNode(
                id_=c.id,
                text=c.search_text,
                embedding=v.tolist(),
                metadata=_node_metadata(c),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=c.source)},
            )
            for _, chunks, vectors in self._pending
            for c, v in zip(chunks, vectors, strict=True)
        ]
        for source, _, _ in self._pending:
            store.delete(source)
        if nodes:
            store.add(nodes)
        self.replace_terms([s for s, _, _ in self._pending], [c for _, cs, _ in self._pending for c in cs])
        self._pending.clear()
        self.write_manifest(manifest)

    commit = flush  # the last batch and the final manifest (complete = True) are written the same way

    def write_manifest(self, manifest: Manifest) -> None:
        self.write_manifest_json({**manifest.to_dict(), "vector_store": "pgvector", "pg_schema": PG_SCHEMA})

    def write_manifest_json(self, data: dict[str, Any]) -> None:
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
                {"m": json.dumps(data, ensure_ascii=False)},
            )

    def drop(self) -> None:
        import sqlalchemy as sa

        with self.connect() as conn:
            for table in (self.chunk_table, self.terms_table, self.manifest_table):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
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


def _vector_literal(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in np.asarray(vec, dtype=np.float32).tolist()) + "]"
