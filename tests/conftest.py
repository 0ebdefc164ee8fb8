from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from docqa.settings import Settings  # noqa: E402
from fakes import HashEmbedder, ScriptedGenerator  # noqa: E402

ESSAY = Path(__file__).parents[1] / "docs" / "poverty-alleviation-and-rural-revitalization.txt"

SMALL_DOC = """Tea in Yunnan

Yunnan grows most of China's pu-erh tea. Farmers in Pu'er city picked 120 tonnes of leaves in 2020.
The harvest begins in March and ends in October.

Rice terraces

The Hani terraces cover 16,603 hectares. They were listed as a World Heritage site in 2013.
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("DOCQA_"):
            monkeypatch.delenv(name)
    # Conversations a test saves go to its own folder, never the user's data dir.
    monkeypatch.setenv("DOCQA_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "yunnan.txt").write_text(SMALL_DOC, encoding="utf-8")
    return folder


@pytest.fixture
def settings(tmp_path: Path, docs: Path) -> Settings:
    return Settings(
        docs_dir=docs,
        index_dir=tmp_path / "index",
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "data",
        chunk_tokens=40,
        chunk_overlap_tokens=8,
        min_score=0.1,
    )


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def make_pipeline(settings: Settings, embedder: HashEmbedder):
    from docqa.answering.pipeline import Pipeline

    def make(reply, **overrides) -> Pipeline:
        s = settings.model_copy(update=overrides)
        return Pipeline.from_settings(s, embedder=embedder, generator=ScriptedGenerator(reply))

    return make
