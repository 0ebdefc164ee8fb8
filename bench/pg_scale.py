"""pgvector at scale (issue 13 point 4): HNSW vs exact dense search, BM25 over postings vs jsonb, hybrid.

    python bench/pg_scale.py                          # 20k and 100k chunks, 50 queries -> bench/pg-scale.json
    python bench/pg_scale.py --chunks 30000 --small 0 --queries 20   # one quick size

A throwaway PostgreSQL + pgvector server is started the way the pg tests start one (tests/pgtest.py),
and each size is written into it through PgStore's own update methods (begin, put, flush, commit:
rows, postings, then the HNSW index and VACUUM ANALYZE). The collection is synthetic, so no model
runs: chunk texts of 60-140 words from a Zipf-distributed made-up vocabulary (bench/bigfolder.py's)
with figures and names mixed in, and 384-d unit vectors (MiniLM's dimension) drawn around 256
random centres (cosine about 0.3 within a cluster, 0 across), so a query's 20 nearest are close
calls among its cluster's chunks and a graph search can miss some. Queries
are 3-6 words of a random chunk (plus a few stopwords) and that chunk's vector with noise added.

Per size and query: dense top 20 exact vs HNSW (at several ef_search values; recall@4 and @20 of
HNSW against exact), BM25 top 20 over the postings and the same by layout 2's SQL over a jsonb table
(built from the postings, on fewer queries since it is slow; the scores are checked equal), and
hybrid retrieval (`Retriever.retrieve(query, 4, "hybrid")` on PgStore: dense + BM25 + fusion +
cosines + chunk rows, everything but the query embedding) with HNSW and with exact dense search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "bench")]

from bigfolder import vocabulary  # noqa: E402

import docqa.stores.pgvector as pgmod  # noqa: E402
from docqa.cpu import cpu_summary, describe_cpu  # noqa: E402
from docqa.retrieve.hybrid import Retriever  # noqa: E402
from docqa.settings import Settings  # noqa: E402
from docqa.stores.manifest import Manifest  # noqa: E402
from docqa.stores.pgvector import PgStore  # noqa: E402
from docqa.types import Chunk  # noqa: E402

DIM = 384
CENTRES = 256
SPREAD = 1.5  # noise around a centre, relative to it: two chunks of one cluster have a cosine of about 0.3
QUERY_NOISE = 0.7  # a query's distance from its chunk, in the same units
CANDIDATES = 20  # Retriever's default: what dense() and lexical() are asked for
CHUNKS_PER_FILE = 10
EF_SWEEP = (40, 64, 100, 200, 400)
STOPWORDS = ("what", "is", "the", "of", "in", "how", "does")

# Layout 2's BM25 (docqa before the postings table), for comparison: jsonb term counts per chunk.
OLD_BM25 = """
    WITH st AS MATERIALIZED (
        SELECT count(*)::float8 AS n, avg(doclen)::float8 AS avgdl FROM {t}
    ),
    df AS MATERIALIZED (
        SELECT q.term, count(t.node_id)::float8 AS df
        FROM unnest(CAST(:terms AS text[])) AS q(term)
        JOIN {t} t ON t.tf ? q.term
        GROUP BY q.term
    )
    SELECT t.node_id,
           sum(ln(1 + (st.n - df.df + 0.5) / (df.df + 0.5))
               * (t.tf ->> df.term)::float8 * (:k1 + 1)
               / ((t.tf ->> df.term)::float8
                  + :k1 * (1 - :b + :b * t.doclen / greatest(st.avgdl, 1e-9)))) AS score
    FROM {t} t JOIN df ON t.tf ? df.term CROSS JOIN st
    WHERE t.tf ?| CAST(:terms AS text[])
    GROUP BY t.node_id ORDER BY score DESC, t.node_id LIMIT :n
"""


class LookupEmbedder:
    """Returns each bench query's prepared vector: hybrid retrieval runs without a model."""

    name = "bench-pg-scale-384"
    dim = DIM
    max_tokens = 256

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def make_collection(n: int, seed: int = 5) -> tuple[list[Chunk], np.ndarray]:
    """`n` chunks of Zipf text and their clustered unit vectors."""
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    cdf = np.cumsum(p)
    names = [f"Station{i}" for i in range(2000)]
    lengths = rng.integers(60, 141, size=n)
    ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), len(words) - 1)
    chunks, at = [], 0
    for i, length in enumerate(lengths.tolist()):
        tokens = [words[k] for k in ids[at : at + length]]
        at += length
        for j in np.flatnonzero(rng.random(length) < 0.03):  # figures, as "60.60%"
            tokens[j] += f" {rng.integers(1, 100_000) / 100:.2f}%"
        for j in np.flatnonzero(rng.random(length) < 0.02):  # names
            tokens[j] += f" {names[rng.integers(len(names))]}"
        text = " ".join(tokens).capitalize() + "."
        source = f"part{i // 5000:03d}/report-{i // CHUNKS_PER_FILE:06d}.txt"
        start = (i % CHUNKS_PER_FILE) * 1000
        chunks.append(Chunk(f"{seed:02x}{i:014x}", source, text, start, start + len(text)))
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * SPREAD / np.sqrt(DIM)
    vectors = centres[rng.integers(0, CENTRES, size=n)] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return chunks, vectors


def make_queries(chunks: list[Chunk], vectors: np.ndarray, q: int, seed: int = 11) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(chunks), size=q, replace=False).tolist():
        words = chunks[i].text.rstrip(".").split()
        picked = [words[j] for j in sorted(rng.choice(len(words), size=int(rng.integers(3, 7)), replace=False))]
        text = " ".join([STOPWORDS[int(rng.integers(len(STOPWORDS)))], *picked, "?"])
        vec = vectors[i] + rng.standard_normal(DIM).astype(np.float32) * QUERY_NOISE / np.sqrt(DIM)
        out.append((text, vec / np.linalg.norm(vec)))
    return out


def ms_stats(times: list[float]) -> dict[str, float]:
    a = np.array(times) * 1000
    return {"p50_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2), "n": len(a)}


def timed(fn, *args):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def table_mb(store: PgStore, tables: list[str]) -> dict[str, float]:
    import sqlalchemy as sa

    with store.connect() as conn:
        return {
            t: round(conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar() / 2**20, 1)
            for t in tables
        }


def write(settings: Settings, chunks: list[Chunk], vectors: np.ndarray) -> tuple[PgStore, dict[str, float]]:
    """The collection written as `docqa index` writes it: batches of files, then commit."""
    store = PgStore(settings)
    manifest = Manifest(LookupEmbedder.name, DIM, {"chunk_tokens": 128}, 1, "/bench", extra={})
    t0 = time.perf_counter()
    store.begin(manifest, None)
    batch = 5000
    for a in range(0, len(chunks), batch):
        by_source: dict[str, list[int]] = {}
        for i in range(a, min(a + batch, len(chunks))):
            by_source.setdefault(chunks[i].source, []).append(i)
        for source, rows in by_source.items():
            store.put(source, [chunks[i] for i in rows], vectors[rows])
            manifest.files[source] = {"sha256": "0" * 64, "chunks": len(rows)}
        manifest = dataclasses.replace(manifest, chunk_count=min(a + batch, len(chunks)))
        store.flush(dataclasses.replace(manifest, complete=False))
    t_rows = time.perf_counter() - t0
    store._write_pending()  # nothing left: commit's own steps timed one by one
    _, t_index = timed(store.build_dense_index)
    store.write_manifest(manifest)
    _, t_vacuum = timed(store.vacuum)
    return store, {"rows_s": round(t_rows, 1), "hnsw_build_s": round(t_index, 1), "vacuum_s": round(t_vacuum, 1)}


def build_jsonb(store: PgStore) -> tuple[str, float]:
    """Layout 2's terms table, from the postings (same terms, counts and lengths)."""
    import sqlalchemy as sa

    t = f"{store.prefix}_old_terms"
    t0 = time.perf_counter()
    with store.connect() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {t}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {t} AS SELECT c.node_id, c.source, jsonb_object_agg(p.term, p.tf) AS tf, c.doclen"
                f" FROM {store.terms_table} p JOIN {store.bm25_chunks_table} c ON c.doc = p.doc"
                " GROUP BY c.doc, c.node_id, c.source, c.doclen"
            )
        )
        conn.execute(sa.text(f"ALTER TABLE {t} ADD PRIMARY KEY (node_id)"))
        conn.execute(sa.text(f"CREATE INDEX ON {t} USING gin (tf)"))
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text(f"VACUUM (ANALYZE) {t}"))
    return t, time.perf_counter() - t0


def old_bm25(store: PgStore, table: str, query: str, n: int) -> list[tuple[str, float]]:
    import sqlalchemy as sa

    from docqa.retrieve.bm25 import K1, B, tokenize

    terms = sorted(set(tokenize(query)))
    with store.connect() as conn:
        rows = conn.execute(sa.text(OLD_BM25.format(t=table)), {"terms": terms, "k1": K1, "b": B, "n": n}).all()
    return [(i, float(s)) for i, s in rows]


def measure(url: str, size: int, queries: int, old_queries: int) -> dict:
    print(f"\n== {size:,} chunks", flush=True)
    (chunks, vectors), t_gen = timed(make_collection, size)
    qs = make_queries(chunks, vectors, queries)
    print(f"generated in {t_gen:.1f} s", flush=True)
    settings = Settings(vector_store="pgvector", pg_url=url, pg_table=f"scale{size}")
    store, times = write(settings, chunks, vectors)
    import sqlalchemy as sa

    with store.connect() as conn:
        postings = int(conn.execute(sa.text(f"SELECT count(*) FROM {store.terms_table}")).scalar())
        terms = int(conn.execute(sa.text(f"SELECT count(*) FROM {store.df_table}")).scalar())
    sizes = table_mb(store, [store.chunk_table, store.hnsw_index, *store.bm25_tables])
    print(f"written: {times}; {postings:,} postings, {terms:,} terms; MB {sizes}", flush=True)
    store.open()
    exact = PgStore(settings.model_copy(update={"pg_dense": "exact"}))
    exact.open()
    plan = store.dense_plan(qs[0][1], CANDIDATES)
    assert store.hnsw_index in plan, f"the HNSW query does not use the index:\n{plan}"
    assert store.hnsw_index not in exact.dense_plan(qs[0][1], CANDIDATES)

    for text, vec in qs[:5]:  # warm the caches
        store.dense(vec, CANDIDATES), exact.dense(vec, CANDIDATES), store.bm25(text, CANDIDATES)
    truth, t_exact = [], []
    for _, vec in qs:
        ids, t = timed(exact.dense, vec, CANDIDATES)
        truth.append(ids)
        t_exact.append(t)
    result: dict = {
        "chunks": size,
        "postings": postings,
        "terms": terms,
        "table_mb": sizes,
        "write": times,
        "dense_exact": ms_stats(t_exact),
        "hnsw": {},
    }
    default_ef = pgmod.HNSW_EF_MIN
    try:
        for ef in EF_SWEEP:
            pgmod.HNSW_EF_MIN = ef
            lat, r4, r20 = [], [], []
            for (_, vec), want in zip(qs, truth, strict=True):
                got, t = timed(store.dense, vec, CANDIDATES)
                lat.append(t)
                r4.append(len(set(got[:4]) & set(want[:4])) / 4)
                r20.append(len(set(got) & set(want)) / len(want))
            key = str(pgmod.hnsw_ef_search(CANDIDATES))
            result["hnsw"][key] = {
                **ms_stats(lat),
                "recall@4": round(float(np.mean(r4)), 4),
                "recall@20": round(float(np.mean(r20)), 4),
            }
            print(f"hnsw ef_search={key}: {result['hnsw'][key]}", flush=True)
    finally:
        pgmod.HNSW_EF_MIN = default_ef
    result["ef_search_default"] = pgmod.hnsw_ef_search(CANDIDATES)

    t_bm25, found = [], []
    for text, _ in qs:
        got, t = timed(store.bm25, text, CANDIDATES)
        t_bm25.append(t)
        found.append(got)
    result["bm25_postings"] = ms_stats(t_bm25)
    result["bm25_hits"] = round(float(np.mean([len(f) for f in found])), 1)
    if old_queries:
        table, t_build = build_jsonb(store)
        t_old = []
        for (text, _), new in zip(qs[:old_queries], found, strict=False):
            old, t = timed(old_bm25, store, table, text, CANDIDATES)
            t_old.append(t)
            # the same scores (ties may rank in another order: node id there, BM25 number here)
            assert np.allclose([s for _, s in old], [s for _, s in new], rtol=1e-9), (text, old, new)
        result["bm25_jsonb"] = {**ms_stats(t_old), "table_build_s": round(t_build, 1), "same_scores": True}

    embedder = LookupEmbedder({text: vec for text, vec in qs})
    for label, st in (("hybrid_hnsw", store), ("hybrid_exact", exact)):
        retriever = Retriever(st, embedder, candidates=CANDIDATES)
        for text, _ in qs[:5]:
            retriever.retrieve(text, 4, "hybrid")
        lat = [timed(retriever.retrieve, text, 4, "hybrid")[1] for text, _ in qs]
        result[label] = ms_stats(lat)
    print({k: v for k, v in result.items() if k.startswith(("dense", "bm25", "hybrid"))}, flush=True)
    store.drop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="the large size (default 100000)")
    parser.add_argument("--small", type=int, default=20_000, help="a smaller size run first (0: none)")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--old-queries", type=int, default=10, help="queries for the slow jsonb BM25 (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "pg-scale.json")
    args = parser.parse_args()

    from pgtest import working_server

    cpu = describe_cpu(cpu_summary())
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    print(cpu, f"(load average {' '.join(load_before)})")
    started = time.perf_counter()
    with working_server() as url:
        import sqlalchemy as sa

        engine = sa.create_engine(pgmod.sqlalchemy_urls(url)[0])
        with engine.connect() as conn:
            server = conn.execute(sa.text("SHOW server_version")).scalar()
            vector = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
        engine.dispose()
        print(f"PostgreSQL {server}, pgvector {vector}")
        sizes = [s for s in (args.small, args.chunks) if s]
        results = [measure(url, size, args.queries, args.old_queries) for size in sizes]
    out = {
        "cpu": cpu,
        "server": f"PostgreSQL {server}, pgvector {vector}",
        "queries": args.queries,
        "candidates": CANDIDATES,
        "dim": DIM,
        "centres": CENTRES,
        "spread": SPREAD,
        "query_noise": QUERY_NOISE,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before_after": [load_before, Path("/proc/loadavg").read_text().split()[:3]],
        "sizes": results,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
