"""docqa: answers from a folder of documents, with citations, offline.

    from docqa import Pipeline
    answer = Pipeline.from_settings().ask("What was China's urbanization rate in 2019?")
    print(answer.answer, [c.passage.chunk.source for c in answer.citations])

Importing docqa is cheap: models load when a pipeline is built, not at import.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from docqa.errors import DocqaError
from docqa.settings import Settings
from docqa.types import Answer, Chunk, Citation, Passage

if TYPE_CHECKING:
    from docqa.answering.pipeline import Pipeline

__all__ = ["Answer", "Chunk", "Citation", "DocqaError", "Passage", "Pipeline", "Settings", "answer", "default_pipeline"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":  # keeps `import docqa` light; the pipeline module pulls numpy and friends
        from docqa.answering.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)


@lru_cache(maxsize=1)
def default_pipeline() -> Pipeline:
    """The pipeline for Settings.load(), built once per process on first use."""
    from docqa.answering.pipeline import Pipeline

    return Pipeline.from_settings()


def answer(question: str) -> Answer:
    """Answer with the default pipeline (settings from docqa.toml and DOCQA_* variables)."""
    return default_pipeline().ask(question)
