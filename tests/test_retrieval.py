from docqa.ingest.indexer import update_index
from docqa.retrieve.bm25 import BM25
from docqa.retrieve.fusion import rrf
from docqa.retrieve.hybrid import Retriever
from docqa.stores.faiss_store import FaissStore


def test_bm25_prefers_rare_exact_terms():
    bm = BM25(["the rate was 60.60% in 2019", "the rate rose slowly", "tea grows in Yunnan"])
    top = bm.top("rate in 2019", 3)
    assert top[0][0] == 0
    assert {i for i, _ in top} == {0, 1}  # the tea text shares no term and scores zero
    assert bm.top("nothing matches", 3) == []


def test_rrf_hand_computed():
    fused = dict(rrf([[10, 20], [20, 30]], k=60))
    assert abs(fused[20] - (1 / 62 + 1 / 61)) < 1e-12
    assert abs(fused[10] - 1 / 61) < 1e-12
    assert abs(fused[30] - 1 / 62) < 1e-12
    assert [i for i, _ in rrf([[10, 20], [20, 30]])] == [20, 10, 30]


def test_hybrid_retrieval_and_dedup(settings, embedder, docs):
    (docs / "copy.txt").write_text((docs / "yunnan.txt").read_text())  # an exact duplicate file
    update_index(settings, embedder)
    store = FaissStore(settings.index_dir)
    store.open()
    retriever = Retriever(store, embedder, dedup_threshold=0.8)
    found = retriever.retrieve("When were the Hani terraces listed as World Heritage?", top_k=4)
    texts = [p.chunk.text for p in found.passages]
    assert "2013" in texts[0]
    assert len(texts) == len(set(texts)), "duplicate passages reach the prompt"
    assert [p.n for p in found.passages] == list(range(1, len(found.passages) + 1))
    assert found.best_score == max(p.score for p in found.passages)
    for mode in ("dense", "bm25"):
        assert "2013" in retriever.retrieve("Hani terraces World Heritage", 2, mode).passages[0].chunk.text
