"""The ONNX Runtime embedding backend against the torch reference, backend choice, and the export cache."""

from __future__ import annotations

import builtins
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from docqa.ingest import embeddings
from docqa.ingest.embeddings import (
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    check_embedder,
    load_embedder,
    resolve_embed_backend,
)
from docqa.settings import Settings

ESSAY = Path(__file__).parents[1] / "docs" / "poverty-alleviation-and-rural-revitalization.txt"
QUESTIONS = [
    "What was China's urbanization rate in 2019?",
    "Why should poverty alleviation be connected with rural revitalization?",
    "Which TCP port does the PostgreSQL server listen on?",
]

pytest.importorskip("onnxruntime")


def essay_texts() -> list[str]:
    """Real text of mixed lengths: sentences, short pieces and a passage past MiniLM's 256 word pieces."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", ESSAY.read_text(encoding="utf-8")) if len(s) > 30]
    return QUESTIONS + sentences[:12] + ["ok", "  Rural   revitalization  ", " ".join(sentences[20:60])]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(dtype="float32")


@pytest.fixture(scope="module")
def onnx(cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=cache)  # the one real export of this module


def test_onnx_vectors_match_torch(onnx: OnnxEmbedder, reference: SentenceTransformerEmbedder):
    texts = essay_texts()
    a, b = reference.embed(texts), onnx.embed(texts)
    assert b.shape == a.shape == (len(texts), 384) and b.dtype == np.float32
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() >= 0.999
    # the same neighbours: every question's nearest passages rank alike
    n = len(QUESTIONS)
    assert (np.argsort(-(a[:n] @ a[n:].T), axis=1)[:, :4] == np.argsort(-(b[:n] @ b[n:].T), axis=1)[:, :4]).all()
    assert [onnx.count_tokens(t) for t in texts] == [reference.count_tokens(t) for t in texts]
    assert (onnx.name, onnx.dim, onnx.max_tokens) == (reference.name, reference.dim, reference.max_tokens)
    assert onnx.embed([]).shape == (0, 384)


def test_batches_by_length_keep_the_order(onnx: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch):
    """Many small batches (run one per core) give each text its own vector back, in the input order."""
    texts = essay_texts()
    whole = onnx.embed(texts)
    monkeypatch.setattr(embeddings, "ONNX_TOKENS_PER_BATCH", 64)
    monkeypatch.setattr(embeddings, "ONNX_BATCH_ROWS", 2)
    batched = onnx.embed(texts)
    one_by_one = np.vstack([onnx.embed([t]) for t in texts])
    assert (whole * batched).sum(axis=1).min() > 0.99999
    assert (whole * one_by_one).sum(axis=1).min() > 0.99999


def test_an_index_built_with_torch_answers_onnx_queries(onnx: OnnxEmbedder, reference: SentenceTransformerEmbedder):
    manifest = {"embed_model": reference.name, "dim": reference.dim}
    check_embedder(manifest, onnx)  # same name and size: no rebuild when the backend changes


def test_the_cached_export_is_reused(onnx: OnnxEmbedder, cache: Path):
    exports = embeddings.ONNX_EXPORTS["count"]
    model = onnx.folder / "model.onnx"
    mtime = model.stat().st_mtime_ns
    again = OnnxEmbedder(cache_dir=cache)
    assert again.folder == onnx.folder
    assert embeddings.ONNX_EXPORTS["count"] == exports
    assert model.stat().st_mtime_ns == mtime
    assert [p.name for p in onnx.folder.parent.iterdir()] == [onnx.folder.name]  # no temporary folder left
    assert onnx.folder.parent == cache / "models"  # beside the converted generator weights


@pytest.mark.parametrize("damage", ["truncated", "garbage", "tokenizer missing"])
def test_a_damaged_export_is_exported_again(
    onnx: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
):
    # A private copy of the good export, damaged; "exporting" again copies the good one back (a real
    # export is what the `onnx` fixture already did), so this checks the repair, not the exporter twice.
    cache = tmp_path / "cache"
    folder = cache / "models" / onnx.folder.name
    shutil.copytree(onnx.folder, folder)
    model = folder / "model.onnx"
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[:1000])
    elif damage == "tokenizer missing":
        (folder / "tokenizer.json").unlink()
    else:
        size = model.stat().st_size  # the same size: only loading it can tell
        model.write_bytes((b"not an onnx file" * (size // 16 + 1))[:size])
    calls: list[Path] = []

    def fake_export(source: str, target: Path) -> None:
        calls.append(target)
        shutil.copytree(onnx.folder, target)

    monkeypatch.setattr(embeddings, "export_onnx", fake_export)
    with caplog.at_level(logging.WARNING, logger="docqa.ingest.embeddings"):
        repaired = OnnxEmbedder(cache_dir=cache)
    assert calls == [folder]
    assert any("damaged" in r.getMessage() and "exporting it again" in r.getMessage() for r in caplog.records)
    vectors = repaired.embed(QUESTIONS)
    assert (vectors * onnx.embed(QUESTIONS)).sum(axis=1).min() > 0.99999


def test_auto_picks_onnx_when_onnxruntime_imports(cache: Path, onnx: OnnxEmbedder):
    assert resolve_embed_backend("auto", dtype="float32") == "onnx"
    assert resolve_embed_backend("torch", dtype="float32") == "torch"
    assert resolve_embed_backend("auto", dtype="bfloat16") == "torch"  # bf16 autocast is torch's
    assert isinstance(load_embedder(dtype="float32", backend="auto", cache_dir=cache), OnnxEmbedder)


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    real_import = builtins.__import__

    def no_onnxruntime(name: str, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    assert resolve_embed_backend("auto", dtype="float32") == "torch"
    assert isinstance(load_embedder(dtype="float32", backend="auto", cache_dir=tmp_path), SentenceTransformerEmbedder)
    with pytest.raises(embeddings.ModelError, match="onnxruntime is not installed"):
        load_embedder(dtype="float32", backend="onnx", cache_dir=tmp_path)
    assert not (tmp_path / "models").exists()


def test_the_setting():
    assert Settings().embed_backend == "auto"
    assert Settings(embed_backend="torch").embed_backend == "torch"
    with pytest.raises(ValidationError):
        Settings(embed_backend="tensorrt")
