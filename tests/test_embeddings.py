"""The bundled MiniLM in both precisions: bf16 autocast must give the float32 vectors' neighbours."""

from pathlib import Path

import numpy as np
import pytest

from docqa.cpu import cpu_has_fast_bf16
from docqa.ingest.embeddings import SentenceTransformerEmbedder, resolve_embed_dtype

TEXTS = [
    "What was China's urbanization rate in 2019?",
    "The urbanization rate reached 60.60% at the end of 2019.",
    "Rural revitalization builds on the results of poverty alleviation.",
    "Tea farmers in Yunnan pick leaves in spring.",
]


@pytest.fixture(scope="module")
def embedders():
    return SentenceTransformerEmbedder(dtype="float32"), SentenceTransformerEmbedder(dtype="bfloat16")


@pytest.mark.e2e  # loads the real embedding model twice
def test_bf16_vectors_match_float32(embedders):
    fp32, bf16 = embedders
    a, b = fp32.embed(TEXTS), bf16.embed(TEXTS)
    assert a.dtype == b.dtype == np.float32
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.999
    # the same nearest passage for the question either way
    assert int(np.argmax(a[1:] @ a[0])) == int(np.argmax(b[1:] @ b[0])) == 0


def test_auto_follows_the_cpu(tmp_path: Path):
    assert resolve_embed_dtype("float32") == "float32"
    assert resolve_embed_dtype("bfloat16") == "bfloat16"
    assert resolve_embed_dtype("auto") == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_fast_bf16(flags)
    flags.write_text("flags\t\t: fpu avx2\n")
    assert not cpu_has_fast_bf16(flags)
