"""The pgvector backend against a real PostgreSQL + pgvector server (see pgtest.py for which one).

The server starts in a temporary folder on a unix socket, once per test session (a few seconds).
The embedder is the hash fake, so the FAISS and pgvector rankings can be compared exactly.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("llama_index.vector_stores.postgres")

from docqa.errors import IndexStateError, SettingsError  # noqa: E402
from docqa.settings import Settings  # noqa: E402
from docqa.stores import open_retriever, update_index  # noqa: E402
from docqa.stores.pgvector import PgStore  # noqa: E402
from fakes import ScriptedGenerator  # noqa: E402
from pgtest import pg_url  # noqa: E402,F401  (the session-scoped server fixture)

_tables = itertools.count()


@pytest.fixture
def pg_settings(settings: Settings, pg_url: str) -> Settings:  # noqa: F811
    # A table prefix per test keeps tests independent on the shared server.
    return settings.model_copy(update={"vector_store": "pgvector", "pg_url": pg_url, "pg_table": f"t{next(_tables)}"})


def write_docs(folder: Path, n: int) -> None:
    for i in range(n):
        (folder / f"farm{i}.txt").write_text(
            f"Farm {i}\n\nThe farm number {i} grows {i * 7} tonnes of barley in county {i}. " * 3, encoding="utf-8"
        )


def test_incremental_update_and_manifest(pg_settings, embedder, docs):
    first = update_index(pg_settings, embedder)
    assert first.added == ["yunnan.txt"] and first.embedded == first.chunks > 0 and first.wrote
    again = update_index(pg_settings, embedder)
    assert again.unchanged == ["yunnan.txt"] and again.embedded == 0 and not again.wrote

    write_docs(docs, 2)
    (docs / "yunnan.txt").write_text((docs / "yunnan.txt").read_text() + "\nNew line about oolong.\n")
    third = update_index(pg_settings, embedder)
    assert sorted(third.added) == ["farm0.txt", "farm1.txt"] and third.updated == ["yunnan.txt"]
    (docs / "farm1.txt").unlink()
    fourth = update_index(pg_settings, embedder)
    assert fourth.removed == ["farm1.txt"] and fourth.embedded == 0

    manifest = PgStore(pg_settings).read_manifest()
    assert sorted(manifest.files) == ["farm0.txt", "yunnan.txt"] and manifest.complete
    assert manifest.embed_model == embedder.name and len(manifest.files["yunnan.txt"]["sha256"]) == 64
    retriever = open_retriever(pg_settings, embedder)
    assert len(retriever.chunks) == manifest.chunk_count == fourth.chunks
    assert retriever.index.manifest["files"] == manifest.files  # the JSON view callers show
    assert {c.source for c in retriever.chunks} == {"farm0.txt", "yunnan.txt"}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid", "hybrid+postgres-fts"])
def test_retrieval_matches_faiss(pg_settings, embedder, docs, mode):
    write_docs(docs, 6)
    # Dense scores are identical on both stores. The lexical rankers give equal BM25 scores (see
    # test_sql_bm25_scores_like_docqa_bm25), but these near-identical farm files tie, and ties break by
    # row order, which differs between the stores.
    exact = mode == "dense"
    if mode == "hybrid+postgres-fts":
        pg_settings, mode = pg_settings.model_copy(update={"pg_lexical": "postgres"}), "hybrid"
    update_index(pg_settings, embedder)
    faiss_settings = pg_settings.model_copy(update={"vector_store": "faiss"})
    update_index(faiss_settings, embedder)
    pg, fa = open_retriever(pg_settings, embedder), open_retriever(faiss_settings, embedder)
    assert sorted(c.id for c in pg.chunks) == sorted(c.id for c in fa.chunks)
    for question in ("How many tonnes of tea did Pu'er pick?", "barley in county 3", "Hani terraces heritage"):
        got, want = pg.retrieve(question, 4, mode), fa.retrieve(question, 4, mode)
        if exact:  # the same cosines in the same order (tied ones may swap)
            assert [p.score for p in got.passages] == pytest.approx([p.score for p in want.passages], abs=1e-5)
            assert got.passages[0].chunk.id == want.passages[0].chunk.id
            assert got.best_score == pytest.approx(want.best_score, abs=1e-5)
        else:  # ties (BM25) or a different ranker (PostgreSQL full-text); the top passage agrees here
            assert got.passages[0].chunk.id == want.passages[0].chunk.id
        assert [p.n for p in got.passages] == list(range(1, len(got.passages) + 1))
        assert all(p.chunk == next(c for c in fa.chunks if c.id == p.chunk.id) for p in got.passages)


def test_pipeline_answers_from_pgvector(pg_settings, embedder):
    from docqa.answering.pipeline import Pipeline

    pipeline = Pipeline.from_settings(pg_settings, embedder=embedder, generator=ScriptedGenerator("120 tonnes [1]."))
    answer = pipeline.ask("How many tonnes of tea did Pu'er pick?")
    assert not answer.abstained and "120 tonnes" in answer.citations[0].passage.chunk.text
    status = pipeline.status()
    assert status["documents"] == 1 and status["chunks"] > 0 and status["embed_model"] == embedder.name
    assert pipeline.reindex().unchanged == ["yunnan.txt"]


def test_interrupted_update_resumes(pg_settings, embedder, docs, monkeypatch):
    import docqa.stores.pgvector as pgmod

    write_docs(docs, 5)
    monkeypatch.setattr(pgmod, "EMBED_BATCH", 1)  # one file per batch
    calls = {"n": 0}
    real_embed = embedder.embed

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during the third batch
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        update_index(pg_settings, embedder)
    manifest = PgStore(pg_settings).read_manifest()
    assert len(manifest.files) == 2 and not manifest.complete
    monkeypatch.setattr(embedder, "embed", real_embed)
    resumed = update_index(pg_settings, embedder)
    assert len(resumed.unchanged) == 2 and len(resumed.added) == 4
    assert PgStore(pg_settings).read_manifest().complete
    retriever = open_retriever(pg_settings, embedder)
    assert len(retriever.chunks) == len({c.id for c in retriever.chunks}) == resumed.chunks  # no duplicates


def test_model_change_rebuilds_and_stale_index_is_refused(pg_settings, embedder):
    update_index(pg_settings, embedder)

    class OtherEmbedder(type(embedder)):
        name = "other-model"

    report = update_index(pg_settings, OtherEmbedder())
    assert "embedding model changed" in report.rebuilt_because
    with pytest.raises(IndexStateError, match="built with other-model"):
        open_retriever(pg_settings, embedder)


def test_connection_and_settings_errors(settings, tmp_path, embedder):
    bad = settings.model_copy(update={"vector_store": "pgvector", "pg_url": f"postgresql://x:pw@/db?host={tmp_path}"})
    with pytest.raises(IndexStateError, match="could not use PostgreSQL") as err:
        update_index(bad, embedder)
    assert "pw" not in err.value.message
    with pytest.raises(SettingsError, match="needs pg_url"):
        update_index(settings.model_copy(update={"vector_store": "pgvector"}), embedder)
    with pytest.raises(SettingsError, match="must start with postgresql"):
        update_index(settings.model_copy(update={"vector_store": "pgvector", "pg_url": "mysql://a/b"}), embedder)


def test_second_writer_waits_for_the_lock(pg_settings):
    db = PgStore(pg_settings)
    with db.writer_lock():
        with pytest.raises(IndexStateError, match="being written"):
            with PgStore(pg_settings).writer_lock(wait_s=0.3):
                pass


def test_sql_bm25_scores_like_docqa_bm25(pg_settings, embedder, docs):
    from docqa.retrieve.bm25 import BM25

    write_docs(docs, 6)
    (docs / "farm5.txt").unlink()
    update_index(pg_settings, embedder)
    write_docs(docs, 6)  # farm5 back, then removed again: its terms rows must go with it
    update_index(pg_settings, embedder)
    (docs / "farm5.txt").unlink()
    update_index(pg_settings, embedder)
    db = PgStore(pg_settings)
    chunks = open_retriever(pg_settings, embedder).chunks
    bm25 = BM25([c.search_text for c in chunks])
    assert not any(c.source == "farm5.txt" for c in chunks)
    for query in ("barley tonnes county 3", "Pu'er tea harvest", "farm 5", "oolong nothing-matches-this"):
        memory = {chunks[i].id: score for i, score in enumerate(bm25.scores(query)) if score > 0}
        got = db.bm25(query, 10)
        assert len(got) == min(10, len(memory)), query
        # the same score for each chunk, and the ten best scores (tied chunks may swap places)
        assert all(score == pytest.approx(memory[i], rel=1e-5) for i, score in got), query
        best = sorted(memory.values(), reverse=True)[:10]
        assert [s for _, s in got] == pytest.approx(best, rel=1e-5), query
    assert db.bm25("the of and", 5) == []  # stopwords only


def test_older_layout_is_rebuilt(pg_settings, embedder):
    update_index(pg_settings, embedder)
    db = PgStore(pg_settings)
    manifest = db.read_manifest().to_dict()
    del manifest["pg_schema"]  # as written before the BM25 terms table existed
    db.write_manifest_json(manifest)
    with pytest.raises(IndexStateError, match="PostgreSQL layout changed"):
        open_retriever(pg_settings, embedder)  # refused, not searched with a layout it lacks
    report = update_index(pg_settings, embedder)
    assert "PostgreSQL layout changed" in report.rebuilt_because and report.embedded == report.chunks > 0


def test_missing_terms_table_is_an_error_not_dense_only(pg_settings, embedder):
    import sqlalchemy as sa

    update_index(pg_settings, embedder)
    db = PgStore(pg_settings)
    with db.connect() as conn:
        conn.execute(sa.text(f"DROP TABLE {db.terms_table}"))
    with pytest.raises(IndexStateError, match="no BM25 terms table") as err:
        open_retriever(pg_settings, embedder)
    assert err.value.fix == "run `docqa index --rebuild`"
    report = update_index(pg_settings, embedder)  # the next update rebuilds it
    assert "no BM25 terms table" in report.rebuilt_because
    assert open_retriever(pg_settings, embedder).retrieve("barley tonnes", 2, "bm25").passages


def hnsw_indexes(db: PgStore) -> list[str]:
    import sqlalchemy as sa

    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": db.chunk_table}
        ).all()
    return [name for name, definition in rows if "USING hnsw" in definition and "vector_cosine_ops" in definition]


def test_hnsw_index_and_both_dense_searches(pg_settings, embedder, docs):
    write_docs(docs, 6)
    update_index(pg_settings, embedder)
    db = PgStore(pg_settings)
    assert hnsw_indexes(db) == [db.hnsw_index]
    some = open_retriever(pg_settings, embedder).chunks[0]
    with db.connect() as conn:  # chunks_for and cosines find rows by node id through an index
        import sqlalchemy as sa

        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(f"EXPLAIN SELECT * FROM {db.chunk_table} WHERE node_id = ANY(:i)"), {"i": [some.id]}
            )
        )
    assert f"{db.chunk_table}_node" in plan
    chunks = open_retriever(pg_settings, embedder).chunks
    assert len(chunks) >= 7
    vectors = embedder.embed([c.search_text for c in chunks])
    for dense in ("exact", "hnsw"):
        store = PgStore(pg_settings.model_copy(update={"pg_dense": dense}))
        for question in ("barley in county 3", "farm number 5 tonnes", "Pu'er tea pickers", "Hani terraces"):
            qvec = embedder.embed([question])[0]
            cos = vectors @ qvec
            got = store.dense(qvec, 4)  # the nearest chunk (or one tied with it) first, then the next
            assert len(got) == 4 and len(set(got)) == 4, dense
            ranked = [float(cos[next(i for i, c in enumerate(chunks) if c.id == key)]) for key in got]
            assert ranked == pytest.approx(sorted(cos, reverse=True)[:4], abs=1e-6), (dense, question)
    qvec = embedder.embed(["barley"])[0]
    exact_plan = PgStore(pg_settings.model_copy(update={"pg_dense": "exact"})).dense_plan(qvec, 4)
    assert "Seq Scan" in exact_plan and db.hnsw_index not in exact_plan
    # On a table this small the planner may prefer a scan either way; the HNSW query must be one the
    # index answers, which shows when scans are priced out.
    import sqlalchemy as sa

    no_scans = {"options": "-c enable_seqscan=off"}
    for store in (db, exact := PgStore(pg_settings.model_copy(update={"pg_dense": "exact"}))):
        store.engine = sa.create_engine(store.sync_url, connect_args=no_scans)
    assert db.hnsw_index in db.dense_plan(qvec, 4)
    assert db.hnsw_index not in exact.dense_plan(qvec, 4)
    by_index, by_scan = db.dense(qvec, 4), exact.dense(qvec, 4)  # a graph of a few chunks: the search is exact
    cos_index, cos_scan = db.cosines(by_index, qvec), exact.cosines(by_scan, qvec)  # (tied chunks may swap)
    assert [cos_index[i] for i in by_index] == pytest.approx([cos_scan[i] for i in by_scan], abs=1e-6)


@pytest.mark.parametrize("first_postings", [1, 2000])
def test_postings_bm25_is_docqa_bm25_after_removes_and_readds(pg_settings, embedder, docs, monkeypatch, first_postings):
    import sqlalchemy as sa

    import docqa.stores.pgvector as pgmod
    from docqa.retrieve.bm25 import BM25, tokenize

    if first_postings == 1:  # the pruned passes run: the rarest term's postings, the best chunk or few
        monkeypatch.setattr(pgmod, "BM25_FIRST_POSTINGS", 1)
        monkeypatch.setattr(pgmod, "BM25_FIRST_CANDIDATES", 1)
    passes: list[tuple[int, int]] = []
    real_pass = PgStore._bm25_pass

    def counted(self, conn, terms, weights, k, *args):
        passes.append((k, len(terms)))
        return real_pass(self, conn, terms, weights, k, *args)

    monkeypatch.setattr(PgStore, "_bm25_pass", counted)
    write_docs(docs, 6)
    (docs / "rare.txt").write_text("Quinoa trial\n\nOne quinoa trial plot near farm 3 grew barley too.\n")
    update_index(pg_settings, embedder)
    (docs / "farm2.txt").unlink()  # one source removed, another (farm2 again, changed) re-added
    update_index(pg_settings, embedder)
    (docs / "farm2.txt").write_text("Farm 2\n\nFarm two now grows oats and oolong, no barley.\n" * 2)
    # The rarest query term in a long chunk, the best chunk holding only commoner ones: MaxScore must go on
    # from the first pass, which finds only the rare term's chunk, to the chunks of the other terms.
    (docs / "rare.txt").write_text(
        "Trial plot\n\nThe quinoa trial moved to county 5 after a long dry summer of weeding, watering and"
        " waiting for rain in the hills above the river, where the old mill stood empty for years.\n"
    )
    (docs / "oats.txt").write_text("Oats\n\nOats barley county oats barley county barley.\n")
    update_index(pg_settings, embedder)

    db = PgStore(pg_settings)
    chunks = open_retriever(pg_settings, embedder).chunks
    assert {c.source for c in chunks} == {f"farm{i}.txt" for i in range(6)} | {"oats.txt", "rare.txt", "yunnan.txt"}
    memory = BM25([c.search_text for c in chunks])
    # the kept statistics are those of the chunks in the table, not of everything ever written
    with db.connect() as conn:
        n, total = conn.execute(sa.text(f"SELECT n, total FROM {db.stats_table}")).one()
        df = dict(conn.execute(sa.text(f"SELECT term, df FROM {db.df_table}")).all())
        postings = conn.execute(sa.text(f"SELECT count(*) FROM {db.terms_table}")).scalar()
    tokens = [tokenize(c.search_text) for c in chunks]
    assert (n, total) == (len(chunks), sum(len(t) for t in tokens))
    assert df == dict(Counter(term for t in tokens for term in set(t)))
    assert postings == sum(df.values())

    queries = ("quinoa oats barley county", "barley tonnes county 3", "quinoa barley farm", "oolong oats", "Pu'er tea")
    for query in queries:
        want = {chunks[i].id: score for i, score in enumerate(memory.scores(query)) if score > 0}
        every = db.bm25(query, 1000)  # every chunk with a query term, each with docqa's score
        assert sorted(i for i, _ in every) == sorted(want), query
        assert all(score == pytest.approx(want[i], rel=1e-5) for i, score in every), query
        for n in (1, 2, 3, 5):  # the n best scores (tied chunks may swap places)
            best = sorted(want.values(), reverse=True)[:n]
            got = db.bm25(query, n)
            assert [s for _, s in got] == pytest.approx(best, rel=1e-5), (query, n)
            assert all(want[i] == pytest.approx(s, rel=1e-5) for i, s in got), (query, n)
    if first_postings == 1:
        assert any(k < terms for k, terms in passes)  # some rankings were exact without every term's postings
    else:
        assert all(k == terms for k, terms in passes)


def test_layout_2_index_is_rebuilt_with_postings_and_hnsw(pg_settings, embedder):
    import sqlalchemy as sa

    update_index(pg_settings, embedder)
    db = PgStore(pg_settings)
    manifest = db.read_manifest().to_dict()
    with db.connect() as conn:  # what docqa wrote before: the jsonb terms table, no postings, no HNSW index
        for table in db.bm25_tables:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(sa.text(f"DROP INDEX {db.hnsw_index}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {db.legacy_terms_table} (node_id text PRIMARY KEY, source text, tf jsonb, doclen int)"
            )
        )
    db.write_manifest_json({**manifest, "pg_schema": 2})
    with pytest.raises(IndexStateError, match=r"PostgreSQL layout changed \(2 -> 3\)"):
        open_retriever(pg_settings, embedder)
    report = update_index(pg_settings, embedder)
    assert "PostgreSQL layout changed" in report.rebuilt_because and report.embedded == report.chunks > 0
    with db.connect() as conn:
        assert not PgStore._exists(conn, db.legacy_terms_table)
        assert all(PgStore._exists(conn, t) for t in db.bm25_tables)
    assert hnsw_indexes(db) == [db.hnsw_index]
    assert open_retriever(pg_settings, embedder).retrieve("tonnes of tea", 2, "bm25").passages


@pytest.mark.parametrize(("seed", "lookups"), [(1, 2000), (2, 2000), (3, 0)])
def test_pruned_bm25_is_exact_on_a_random_collection(pg_settings, monkeypatch, seed, lookups):
    """Zipf words in chunks of 3 to 80 words: the pruned passes (first pass on the rarest term, few
    chunks kept) must give the exact top n, the left-out chunks' bounds taken into account.
    lookups = 0: a pass that finds chunks it would still have to complete goes on with more terms."""
    import numpy as np

    import docqa.stores.pgvector as pgmod
    from docqa.retrieve.bm25 import BM25
    from docqa.stores.manifest import Manifest
    from docqa.types import Chunk

    monkeypatch.setattr(pgmod, "BM25_FIRST_POSTINGS", 1)
    monkeypatch.setattr(pgmod, "BM25_FIRST_CANDIDATES", 1)
    monkeypatch.setattr(pgmod, "BM25_MAX_LOOKUPS", lookups)
    rng = np.random.default_rng(seed)
    words = [f"w{i}x" for i in range(300)]
    p = 1.0 / np.arange(1, 301)
    p /= p.sum()
    chunks = []
    for i in range(400):
        text = " ".join(rng.choice(words, size=int(rng.integers(3, 81)), p=p))
        chunks.append(Chunk(f"c{i:05d}", f"f{i // 10}.txt", text, 0, len(text)))
    db = PgStore(pg_settings)
    manifest = Manifest("none", 4, {"chunk_tokens": 128}, 1, "/docs")
    db.begin(manifest, None)
    for a in range(0, len(chunks), 10):
        db.put(chunks[a].source, chunks[a : a + 10], rng.standard_normal((10, 4)).astype(np.float32))
    db.commit(manifest)
    memory = BM25([c.text for c in chunks])
    passes = {"pruned": 0}
    real_pass = PgStore._bm25_pass

    def counted(self, conn, terms, weights, k, *args):
        passes["pruned"] += k < len(terms)
        return real_pass(self, conn, terms, weights, k, *args)

    monkeypatch.setattr(PgStore, "_bm25_pass", counted)
    for _ in range(60):
        query = " ".join(rng.choice(words, size=int(rng.integers(2, 6)), p=np.sqrt(p) / np.sqrt(p).sum()))
        want = {chunks[i].id: score for i, score in enumerate(memory.scores(query)) if score > 0}
        for n in (1, 3, 10):
            got = db.bm25(query, n)
            assert [s for _, s in got] == pytest.approx(sorted(want.values(), reverse=True)[:n], rel=1e-5), (query, n)
            assert all(want[i] == pytest.approx(s, rel=1e-5) for i, s in got), (query, n)
    assert passes["pruned"] > 60  # most rankings went through the pruned passes
