"""PostgreSQL + pgvector as docqa's store: chunks, vectors and the manifest in one database.

Tables, for `pg_table = "docqa"`:

    data_docqa_chunks   llama-index's PGVectorStore: text, metadata (the chunk's fields, ref_doc_id =
                        its source file), a pgvector embedding (HNSW-indexed, cosine), and a generated
                        tsvector column (to_tsvector('english', text), GIN-indexed) for full-text search
    docqa_postings      BM25 postings: one row per (term, chunk) with the term's frequency in the chunk
                        and the chunk's length; primary key (term, doc), tf and length included, so a
                        term's postings are one index range read without the table
    docqa_bm25_chunks   per chunk: its BM25 number (doc), node id, source file, length and terms (the
                        terms say which postings and document frequencies a deleted chunk takes away)
    docqa_bm25_df       per term: its document frequency, kept up to date on every write
    docqa_bm25_stats    one row: the number of chunks and their total length (BM25's N and avgdl)
    docqa_manifest      one row: the same manifest the FAISS index keeps in manifest.json

All BM25 tables use the same tokenizer as docqa's in-memory BM25 (bm25.tokenize).

Dense search uses the HNSW index (`pg_dense = "hnsw"`, the default: approximate, with
hnsw.ef_search set from the number of candidates; recall against exact search is measured in
bench/README.md) or scans every row (`pg_dense = "exact"`: ranks like FAISS's flat index). The
index is built after the rows are written, at the end of an update, and kept up to date by later
ones. The lexical ranking is computed by PostgreSQL. With `pg_lexical = "bm25"` (the default) it is
Okapi BM25 over the postings, with the same tokens, k1, b and idf as the FAISS store's BM25, so
retrieval ranks as it does on FAISS and nothing is held in memory. The postings of common query
terms are not read when their largest possible scores can't lift a chunk into the top n (a
MaxScore-style bound, see PgStore.bm25): the top n stays exact, and a query's cost follows its rare
terms, not the collection's size. With
`pg_lexical = "postgres"` it is PostgreSQL's own full-text ranking (ts_rank over the english
tsvector, through llama-index's hybrid search), which ranks differently. Either ranking is fused
with the dense one by the same weighted RRF.

`PgStore` is the `Store` (docqa.stores) over these tables: chunk keys are node ids. The shared update
loop (ingest/indexer.py) writes per batch of files: `flush` deletes and re-adds the batch's rows,
then rewrites the manifest row to list exactly the files whose rows are in the table. An
interrupted update leaves a consistent manifest, and the next run resumes with the files not yet
in it. Writers hold a PostgreSQL advisory lock, so two `docqa index` runs against one database
don't interleave. An index with an older layout, or without its BM25 tables, is refused
(IndexStateError) and rebuilt by the next update, never searched without its lexical ranking.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from docqa.errors import IndexStateError, SettingsError
from docqa.settings import Settings
from docqa.stores.manifest import FORMAT_VERSION, REBUILD, Manifest
from docqa.types import Chunk

EXTRA_HINT = "pip install 'docqa[pgvector]' (llama-index-vector-stores-postgres, psycopg2-binary)"
PG_SCHEMA = 3  # 2: the BM25 terms table; 3: BM25 postings and the HNSW index. An older layout is rebuilt
EMBED_BATCH = 512  # chunks embedded and written per step: bounds memory and the work an interruption loses
# hnsw.ef_search for n wanted neighbours: max(HNSW_EF_MIN, HNSW_EF_PER_RESULT * n). pgvector returns at
# most ef_search rows, so it must be >= n. 200 by recall@k against exact search (bench/README.md, "pgvector
# at scale"): at 100k chunks recall@4 0.90 at ef_search 40, 0.985 at 200, for about 1 ms more.
HNSW_EF_MIN = 200
HNSW_EF_PER_RESULT = 2
HNSW_MAX_DIM = 2000  # pgvector's HNSW indexes vectors of up to 2,000 dimensions; wider ones are scanned
HNSW_BUILD_MEMORY = "512MB"  # maintenance_work_mem while the index is built: 100k x 384-d fits in memory
BM25_FIRST_POSTINGS = 10_000  # BM25's first pass reads the rarest query terms' postings, about this many
BM25_FIRST_CANDIDATES = 50  # ... completes the scores of its best chunks, at least this many (and 2 n),
BM25_MAX_LOOKUPS = 2000  # ... then of those chunks that may still rank, unless more than this: then more terms
BM25_MARGIN = 1e-9  # relative: a bound must stay this far below the n-th best score to leave chunks out


def hnsw_ef_search(n: int) -> int:
    """hnsw.ef_search for `n` wanted neighbours (pgvector returns at most ef_search rows).

    >>> hnsw_ef_search(4), hnsw_ef_search(20), hnsw_ef_search(150)
    (200, 200, 300)
    """
    return max(HNSW_EF_MIN, HNSW_EF_PER_RESULT * n)


def rarest_terms(dfs: list[int], budget: int) -> int:
    """How many of the query terms (rarest first) hold about `budget` postings together (at least one).

    >>> rarest_terms([10, 500, 90000], 2000), rarest_terms([5000, 9000], 2000)
    (2, 1)
    """
    k, seen = 1, dfs[0]
    while k < len(dfs) and seen + dfs[k] <= budget:
        seen += dfs[k]
        k += 1
    return k


def terms_needed(rest: list[float], theta: float) -> int:
    """The fewest leading terms whose chunks must be scored when the n-th best score is at least `theta`.

    `rest[k]` bounds what the terms from the k-th on can add to a chunk's score together (rest[-1] = 0):
    a chunk holding none of the first k terms scores at most rest[k], so below theta it can't rank.
    The margin covers the rounding of the sums.

    >>> terms_needed([14.2, 5.2, 0.2, 0.0], 8.0), terms_needed([14.2, 5.2, 0.2, 0.0], 3.0)
    (1, 2)
    >>> terms_needed([14.2, 5.2, 0.2, 0.0], 0.1)
    3
    """
    k = 0
    while k < len(rest) - 1 and rest[k] * (1 + BM25_MARGIN) >= theta:
        k += 1
    return k


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
        self.dense_search = settings.pg_dense  # "hnsw" (the HNSW index) or "exact" (every row)
        self.hnsw_index = f"{self.chunk_table}_hnsw"
        self.terms_table = f"{self.prefix}_postings"  # BM25 postings: (term, doc, tf, dl)
        self.bm25_chunks_table = f"{self.prefix}_bm25_chunks"  # per chunk: doc, node_id, source, doclen, terms
        self.df_table = f"{self.prefix}_bm25_df"  # per term: document frequency
        self.stats_table = f"{self.prefix}_bm25_stats"  # one row: chunks and their total length
        self.legacy_terms_table = f"{self.prefix}_terms"  # layout 2's jsonb term counts, dropped on rebuild
        self._terms_ready = False  # the BM25 tables are known to exist
        self.engine = sqlalchemy.create_engine(self.sync_url, pool_pre_ping=True)
        self._vector_store: Any = None
        self._dim: int | None = None
        self._manifest: Manifest | None = None
        self._chunks: list[Chunk] | None = None
        self._pending: list[tuple[str, list[Chunk], np.ndarray]] = []  # put, not yet flushed
        self._fetched: dict[str, Chunk] = {}  # rows read by the last cosines(), for the chunks_for() after it

    @property
    def batch_chunks(self) -> int:
        return EMBED_BATCH  # read at each use, so tests can shrink the batches

    @property
    def bm25_tables(self) -> tuple[str, ...]:
        return (self.terms_table, self.bm25_chunks_table, self.df_table, self.stats_table)

    @contextmanager
    def connect(self, snapshot: bool = False) -> Iterator[Any]:
        """A connection in a transaction, with connection failures turned into one named error.

        `snapshot`: every statement sees the same committed state (REPEATABLE READ), for reads that
        combine several queries while a writer may commit in between.
        """
        import sqlalchemy.exc

        try:
            with self.engine.connect() as conn:
                if snapshot:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
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
            missing = [t for t in self.bm25_tables if not self._exists(conn, t)]
            if missing:  # BM25 would silently rank nothing
                raise IndexStateError(f"the index {self.where} has no BM25 terms table ({', '.join(missing)})", REBUILD)
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
        """Nearest neighbours by cosine distance: by the HNSW index, or exact (`pg_dense`)."""
        import sqlalchemy as sa

        with self.connect() as conn:
            sql = self._dense_sql(conn, n)
            return [row[0] for row in conn.execute(sa.text(sql), {"q": _vector_literal(qvec), "n": n})]

    def dense_plan(self, qvec: np.ndarray, n: int) -> str:
        """PostgreSQL's plan for `dense(qvec, n)` (EXPLAIN), to check which search it runs."""
        import sqlalchemy as sa

        with self.connect() as conn:
            sql = self._dense_sql(conn, n)
            rows = conn.execute(sa.text(f"EXPLAIN {sql}"), {"q": _vector_literal(qvec), "n": n}).all()
        return "\n".join(row[0] for row in rows)

    def _dense_sql(self, conn: Any, n: int) -> str:
        import sqlalchemy as sa

        if self.dense_search == "exact":
            # Every row is compared, and ties rank by row order, as in FAISS's flat index. The second
            # sort key alone kept pgvector 0.6's HNSW index out, not newer ones' (an index scan feeding
            # an incremental sort): index scans are switched off for this query's transaction.
            conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
            return f"SELECT node_id FROM {self.chunk_table} ORDER BY embedding <=> CAST(:q AS vector), id LIMIT :n"
        conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {hnsw_ef_search(n)}"))
        return f"SELECT node_id FROM {self.chunk_table} ORDER BY embedding <=> CAST(:q AS vector) LIMIT :n"

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
        """(chunk id, score) by Okapi BM25, best first, computed in PostgreSQL (the scores of bm25.BM25).

        The exact top n, without reading every posting of the common query terms where that can't
        change it. A pass reads the postings of the rarest terms (the first k: their partial
        scores), completes the scores of the m best of those chunks by looking up the other terms,
        takes the n-th best as theta, and completes every other chunk whose partial score plus the
        other terms' bounds (idf * the largest tf-part any of their postings can have) reaches theta.
        A chunk holding none of the first k terms scores at most those bounds together: when they are
        below the n-th best score, the pass's top n is the exact top n. Else the next pass reads as
        many terms as that score says are needed, and at last every posting of every query term is
        scored. Ties rank by the chunk's BM25 number.
        """
        import sqlalchemy as sa

        from docqa.retrieve.bm25 import K1, B, idf, tokenize

        terms = sorted(set(tokenize(query)))
        if not terms or n <= 0:
            return []
        with self.connect(snapshot=True) as conn:
            rows = conn.execute(  # N and total length with each query term's df and bounds, in one round trip
                sa.text(
                    f"SELECT s.n, s.total, f.term, f.df, f.max_tf, f.min_dl FROM {self.stats_table} s"
                    f" JOIN {self.df_table} f ON f.term = ANY(:t) AND f.df > 0"
                ),
                {"t": terms},
            ).all()
            if not rows or not rows[0][0]:
                return []
            n_docs, avgdl = int(rows[0][0]), max(float(rows[0][1]) / float(rows[0][0]), 1e-9)
            found = [row[2:] for row in rows]
            c1, c2 = K1 * (1 - B), K1 * B / avgdl  # a posting scores w * tf / (tf + c1 + c2 * dl)
            found.sort(key=lambda row: (row[1], row[0]))  # rarest first
            order = [row[0] for row in found]
            dfs = [int(row[1]) for row in found]
            weights = [idf(n_docs, df) * (K1 + 1) for df in dfs]
            bounds = [w * tf / (tf + c1 + c2 * dl) for w, (_, _, tf, dl) in zip(weights, found, strict=True)]
            rest = [sum(bounds[k:]) for k in range(len(bounds) + 1)]
            k = rarest_terms(dfs, BM25_FIRST_POSTINGS)
            m = max(BM25_FIRST_CANDIDATES, 2 * n)
            for _ in range(3):
                if k >= len(order):
                    break
                rows, capped = self._bm25_pass(conn, order, weights, k, rest[k] * (1 + BM25_MARGIN), m, c1, c2, n)
                theta = rows[n - 1][1] if len(rows) >= n else None
                if theta is not None and not capped and rest[k] * (1 + BM25_MARGIN) < theta:
                    return rows
                k = max(k + 1, terms_needed(rest, theta) if theta is not None else 0)
            rows, _ = self._bm25_pass(conn, order, weights, len(order), 0.0, m, c1, c2, n)
        return rows

    def _bm25_pass(
        self,
        conn: Any,
        terms: list[str],
        weights: list[float],
        k: int,
        rest: float,
        m: int,
        c1: float,
        c2: float,
        n: int,
    ) -> tuple[list[tuple[str, float]], bool]:
        """The top n of the chunks holding any of the first k terms, and whether some went unscored.

        Partial scores by the first k terms; complete scores (the other terms looked up per chunk)
        for the best m, then for every chunk whose partial score + `rest` (the other terms' bounds)
        reaches the n-th best complete score (theta) so far, unless there are more than
        BM25_MAX_LOOKUPS of those (then `capped`). With k = all terms: every chunk, no lookups.
        """
        import sqlalchemy as sa

        score = "q.w * p.tf / (p.tf + CAST(:c1 AS float8) + CAST(:c2 AS float8) * p.dl)"
        q = "unnest(CAST(:terms AS text[]), CAST(:w AS float8[])) AS q(term, w)"
        if k >= len(terms):  # every chunk holding a query term: one range read per term
            sql = f"""
                WITH s AS (
                    SELECT p.doc, sum({score}) AS score FROM {q} JOIN {self.terms_table} p ON p.term = q.term
                    GROUP BY p.doc ORDER BY score DESC, p.doc LIMIT :n
                )
                SELECT c.node_id, s.score, false FROM s JOIN {self.bm25_chunks_table} c ON c.doc = s.doc
                ORDER BY s.score DESC, s.doc"""
        else:
            lookup = f"""LEFT JOIN LATERAL (
                    SELECT sum({score}) AS rest FROM unnest(CAST(:others AS text[]), CAST(:wothers AS float8[]))
                    AS q(term, w) JOIN {self.terms_table} p ON p.term = q.term AND p.doc = e.doc
                ) x ON true"""
            sql = f"""
                WITH e AS MATERIALIZED (
                    SELECT p.doc, sum({score}) AS part FROM {q} JOIN {self.terms_table} p ON p.term = q.term
                    WHERE q.term = ANY(:first) GROUP BY p.doc
                ),
                best AS MATERIALIZED (
                    SELECT e.doc, e.part + coalesce(x.rest, 0) AS score
                    FROM (SELECT * FROM e ORDER BY part DESC, doc LIMIT :m) e {lookup}
                ),
                theta AS MATERIALIZED (SELECT score FROM best ORDER BY score DESC OFFSET :n - 1 LIMIT 1),
                todo AS MATERIALIZED (
                    SELECT e.* FROM e WHERE e.part + :rest >= (SELECT score FROM theta)
                    AND e.doc NOT IN (SELECT doc FROM best)
                ),
                capped AS MATERIALIZED (SELECT count(*) > :cap AS capped FROM todo),
                more AS (
                    SELECT e.doc, e.part + coalesce(x.rest, 0) AS score
                    FROM todo e {lookup} WHERE NOT (SELECT capped FROM capped)
                ),
                s AS (
                    SELECT * FROM (SELECT * FROM best UNION ALL SELECT * FROM more) a ORDER BY score DESC, doc LIMIT :n
                )
                SELECT c.node_id, s.score, (SELECT capped FROM capped)
                FROM s JOIN {self.bm25_chunks_table} c ON c.doc = s.doc ORDER BY s.score DESC, s.doc"""
        params = {
            "terms": terms,
            "w": weights,
            "first": terms[:k],
            "others": terms[k:],
            "wothers": weights[k:],
            "c1": c1,
            "c2": c2,
            "rest": rest,
            "m": m,
            "n": n,
            "cap": BM25_MAX_LOOKUPS,
        }
        rows = conn.execute(sa.text(sql), params).all()
        return [(row[0], float(row[1])) for row in rows], bool(rows and rows[0][2])

    def chunks_for(self, keys: list[str]) -> dict[str, Chunk]:
        import sqlalchemy as sa

        if not keys:
            return {}
        fetched, self._fetched = self._fetched, {}
        if all(key in fetched for key in keys):  # read with the cosines just before (the retriever's order)
            return {key: fetched[key] for key in keys}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT node_id, text, metadata_ FROM {self.chunk_table} WHERE node_id = ANY(:ids)"),
                {"ids": keys},
            ).all()
        return {node_id: chunk_from_row(text, meta) for node_id, text, meta in rows}

    def cosines(self, keys: list[str], qvec: np.ndarray) -> dict[str, float]:
        """Cosine of the query to each listed chunk (pgvector's <=> is cosine distance).

        The chunks' rows come along and are kept for the `chunks_for(keys)` that follows in the
        retriever: one round trip fewer per question.
        """
        import sqlalchemy as sa

        if not keys:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT node_id, 1 - (embedding <=> CAST(:q AS vector)), text, metadata_ FROM {self.chunk_table}"
                    " WHERE node_id = ANY(:ids)"
                ),
                {"q": _vector_literal(qvec), "ids": keys},
            ).all()
        self._fetched = {node_id: chunk_from_row(text, meta) for node_id, _, text, meta in rows}
        return {node_id: float(cos) for node_id, cos, _, _ in rows}

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
        self._write_pending()
        self.write_manifest(manifest)

    def commit(self, manifest: Manifest) -> None:
        """The last batch, the HNSW index (built once, then kept up to date), then the final manifest.

        The index is built before the manifest says the update is complete, so an interrupted build
        is redone by the next update. VACUUM ANALYZE at the end gives the planner the new sizes and
        lets the postings be read from their index alone.
        """
        self._write_pending()
        self.build_dense_index()
        self.write_manifest(manifest)
        self.vacuum()

    def build_dense_index(self) -> None:
        """Create the HNSW index on the embeddings (cosine), and one on node ids, unless they exist."""
        import sqlalchemy as sa

        with self.connect() as conn:  # chunks_for and cosines look rows up by node id; llama-index has no index
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {self.chunk_table}_node ON {self.chunk_table} (node_id)"))
        if (self._dim or 0) > HNSW_MAX_DIM:
            return  # pgvector can't index it: dense search scans every row
        with self.connect() as conn:
            conn.execute(sa.text(f"SET LOCAL maintenance_work_mem = '{HNSW_BUILD_MEMORY}'"))
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS {self.hnsw_index} ON {self.chunk_table}"
                    " USING hnsw (embedding vector_cosine_ops)"
                )
            )

    def vacuum(self) -> None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
            for table in (self.chunk_table, *self.bm25_tables):
                conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))

    def _write_pending(self) -> None:
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
            for table in (self.chunk_table, *self.bm25_tables, self.legacy_terms_table, self.manifest_table):
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
        """Delete the BM25 rows of `sources`, then add `chunks`' postings, keeping df, N and lengths current."""
        with self.connect() as conn:
            if not self._terms_ready:  # once per process, not once per batch
                self._create_bm25_tables(conn)
                self._terms_ready = True
            if sources:
                self._delete_terms(conn, sources)
            if chunks:
                self._add_terms(conn, chunks)

    def _create_bm25_tables(self, conn: Any) -> None:
        import sqlalchemy as sa

        # COLLATE "C": terms are compared byte by byte (docqa's tokens are ASCII), faster than a locale's rules.
        for sql in (
            f"""CREATE TABLE IF NOT EXISTS {self.terms_table} (term text COLLATE "C" NOT NULL, doc int NOT NULL,
                tf int NOT NULL, dl int NOT NULL, PRIMARY KEY (term, doc) INCLUDE (tf, dl))""",
            f"""CREATE TABLE IF NOT EXISTS {self.bm25_chunks_table} (doc int GENERATED BY DEFAULT AS IDENTITY
                PRIMARY KEY, node_id text NOT NULL UNIQUE, source text NOT NULL, doclen int NOT NULL,
                terms text[] NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.bm25_chunks_table}_src ON {self.bm25_chunks_table} (source)",
            # max_tf and min_dl bound what any posting of the term can score; a delete leaves them
            # as they were (still bounds, if looser), the next insert of the term widens them if needed
            f"""CREATE TABLE IF NOT EXISTS {self.df_table} (term text COLLATE "C" PRIMARY KEY, df int NOT NULL,
                max_tf int NOT NULL, min_dl int NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {self.stats_table} (one boolean PRIMARY KEY DEFAULT true CHECK (one),
                n bigint NOT NULL, total bigint NOT NULL)""",
            f"INSERT INTO {self.stats_table} (n, total) VALUES (0, 0) ON CONFLICT DO NOTHING",
        ):
            conn.execute(sa.text(sql))

    def _delete_terms(self, conn: Any, sources: list[str]) -> None:
        """Take the chunks of `sources` out of the postings, the document frequencies and N/lengths."""
        import sqlalchemy as sa

        c = self.bm25_chunks_table
        gone = f"SELECT d.doc, t.term FROM {c} d, unnest(d.terms) AS t(term) WHERE d.source = ANY(:s)"
        for sql in (
            f"""UPDATE {self.stats_table} SET n = n - g.k, total = total - g.len
                FROM (SELECT count(*) AS k, coalesce(sum(doclen), 0) AS len FROM {c} WHERE source = ANY(:s)) g""",
            f"""UPDATE {self.df_table} f SET df = f.df - g.k
                FROM (SELECT term, count(*) AS k FROM ({gone}) x GROUP BY term) g WHERE f.term = g.term""",
            f"DELETE FROM {self.df_table} WHERE df <= 0 AND term IN (SELECT term FROM ({gone}) x)",
            f"DELETE FROM {self.terms_table} p USING ({gone}) g WHERE p.term = g.term AND p.doc = g.doc",
            f"DELETE FROM {c} WHERE source = ANY(:s)",
        ):
            conn.execute(sa.text(sql), {"s": sources})

    def _add_terms(self, conn: Any, chunks: list[Chunk]) -> None:
        """Postings, document frequencies and N/lengths for `chunks` (arrays in, one statement per table)."""
        import sqlalchemy as sa

        from docqa.retrieve.bm25 import tokenize

        counts = [Counter(tokenize(c.search_text)) for c in chunks]
        lengths = [sum(tf.values()) for tf in counts]
        docs = dict(
            conn.execute(
                sa.text(
                    f"INSERT INTO {self.bm25_chunks_table} (node_id, source, doclen, terms)"
                    " SELECT i, s, l, string_to_array(t, ' ') FROM unnest(CAST(:ids AS text[]),"
                    " CAST(:srcs AS text[]), CAST(:lens AS int[]), CAST(:terms AS text[])) AS u(i, s, l, t)"
                    " RETURNING node_id, doc"
                ),
                {
                    "ids": [c.id for c in chunks],
                    "srcs": [c.source for c in chunks],
                    "lens": lengths,
                    "terms": [" ".join(tf) for tf in counts],  # tokens hold no spaces
                },
            ).all()
        )
        # In primary-key order, so the index is filled page by page, not at random places.
        rows = sorted(
            (term, docs[chunk.id], f, length)
            for chunk, tf, length in zip(chunks, counts, lengths, strict=True)
            for term, f in tf.items()
        )
        df: Counter[str] = Counter()
        max_tf: dict[str, int] = {}
        min_dl: dict[str, int] = {}
        for term, _, f, dl in rows:
            df[term] += 1
            max_tf[term] = max(max_tf.get(term, 0), f)
            min_dl[term] = min(min_dl.get(term, dl), dl)
        # Array literals ('{"a","b"}'), parsed once, not bound lists (ARRAY['a', 'b', ...] expressions: 4x slower).
        conn.execute(
            sa.text(
                f"INSERT INTO {self.terms_table} (term, doc, tf, dl) SELECT * FROM unnest(CAST(:t AS text[]),"
                " CAST(:d AS int[]), CAST(:f AS int[]), CAST(:l AS int[]))"
            ),
            {k: _array_literal(row[j] for row in rows) for j, k in enumerate("tdfl")},
        )
        if df:
            conn.execute(
                sa.text(
                    f"INSERT INTO {self.df_table} AS f (term, df, max_tf, min_dl) SELECT * FROM unnest("
                    "CAST(:t AS text[]), CAST(:k AS int[]), CAST(:tf AS int[]), CAST(:dl AS int[]))"
                    " ON CONFLICT (term) DO UPDATE SET df = f.df + EXCLUDED.df,"
                    " max_tf = greatest(f.max_tf, EXCLUDED.max_tf), min_dl = least(f.min_dl, EXCLUDED.min_dl)"
                ),
                {
                    "t": _array_literal(df),
                    "k": _array_literal(df.values()),
                    "tf": _array_literal(max_tf[t] for t in df),
                    "dl": _array_literal(min_dl[t] for t in df),
                },
            )
        conn.execute(
            sa.text(f"UPDATE {self.stats_table} SET n = n + :k, total = total + :len"),
            {"k": len(chunks), "len": sum(lengths)},
        )


def _array_literal(items: Iterable[str | int]) -> str:
    """A PostgreSQL array literal of docqa's tokens (no quotes or backslashes in them) or integers.

    >>> _array_literal(["1,000", "tea"]), _array_literal([3, 4])
    ('{"1,000","tea"}', '{"3","4"}')
    """
    return "{" + ",".join(f'"{item}"' for item in items) + "}"


def _vector_literal(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in np.asarray(vec, dtype=np.float32).tolist()) + "]"
