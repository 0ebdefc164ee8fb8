"""`docqa index --ray`: embedding through Ray Data on a local Ray, with the real MiniLM embedder."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray.data")

pytestmark = pytest.mark.e2e  # a local Ray cluster starts in each test: minutes on 2 cores

from docqa.ingest.embeddings import SentenceTransformerEmbedder  # noqa: E402
from docqa.ingest.ray import RayEmbedder, checkpoint_dir_for  # noqa: E402
from docqa.stores import open_retriever  # noqa: E402


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def ray_local():
    import ray

    yield
    ray.shutdown()


def test_ray_embeddings_match_local_and_resume_from_checkpoint(minilm, ray_local, tmp_path, monkeypatch):
    texts = [f"Sentence number {i} about rice terraces and tea." for i in range(40)]
    ray_embedder = RayEmbedder(minilm, None, tmp_path / "ckpt", batch_size=8)
    vectors = ray_embedder.embed(texts)
    assert vectors.shape == (40, minilm.dim)
    np.testing.assert_allclose(vectors, minilm.embed(texts), atol=1e-5)
    assert len(list((tmp_path / "ckpt").glob("*.npz"))) == 5  # one file per finished batch

    # A rerun finds every text in the checkpoint and starts no Ray job at all.
    import ray.data

    monkeypatch.setattr(ray.data, "from_items", lambda *_: pytest.fail("should not embed again"))
    np.testing.assert_array_equal(ray_embedder.embed(list(reversed(texts))), vectors[::-1])


def test_cli_index_ray_builds_the_same_index(minilm, ray_local, settings):
    from click.testing import CliRunner

    from docqa.cli import cli

    args = ["index", "--docs", str(settings.docs_dir), "--index", str(settings.index_dir), "--ray"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "index written" in result.output and "chunks from 1 files" in result.output
    assert not checkpoint_dir_for(settings.index_dir).exists()  # cleared once the index is written
    retriever = open_retriever(settings, minilm)
    found = retriever.retrieve("How many tonnes of tea did Pu'er pick?", 2, "dense")
    assert "120 tonnes" in found.passages[0].chunk.text
    direct = minilm.embed([c.search_text for c in retriever.chunks])
    np.testing.assert_allclose(retriever.index.vectors, direct, atol=1e-5)
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "index up to date" in again.output and "embedded 0 chunks" in again.output
