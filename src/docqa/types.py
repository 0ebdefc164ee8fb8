"""The values that cross stage boundaries: chunks, passages, citations, answers and stream events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """A span of one document, sized for the embedder.

    `start`/`end` are character offsets into the document's extracted text; `source` is the path
    relative to the docs folder, with forward slashes.
    """

    id: str
    source: str
    text: str
    start: int
    end: int
    heading: str | None = None
    page: int | None = None  # 1-based, PDFs only

    @property
    def search_text(self) -> str:
        """What is embedded and BM25-indexed: the text, led by its section heading for context."""
        if self.heading and not self.text.startswith(self.heading):
            return f"{self.heading}\n{self.text}"
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as numbered in the prompt. `score` is the dense cosine to the question."""

    n: int
    chunk: Chunk
    score: float

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "n": self.n,
            "source": c.source,
            "chunk_id": c.id,
            "text": c.text,
            "score": round(self.score, 4),
            "heading": c.heading,
            "page": c.page,
            "start": c.start,
            "end": c.end,
        }


@dataclass(frozen=True)
class Citation:
    """A passage the answer cites, with the answer sentence(s) that cite it."""

    passage: Passage
    sentences: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return self.passage.n

    def to_dict(self) -> dict[str, Any]:
        return {**self.passage.to_dict(), "supports": list(self.sentences)}


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    retrieved: list[Passage]
    timings: dict[str, float]
    model: str
    id: str | None = None
    standalone_question: str | None = None  # the rewritten follow-up, when one was rewritten
    abstain_reason: str | None = None
    notices: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, answer_tokens
    draft: str | None = None  # the model's text when the checks turned it into an abstention

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "citations": [c.to_dict() for c in self.citations],
            "retrieved": [p.to_dict() for p in self.retrieved],
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "model": self.model,
            "standalone_question": self.standalone_question,
            "notices": list(self.notices),
            "usage": dict(self.usage),
            "draft": self.draft,
        }


@dataclass(frozen=True)
class StreamEvent:
    """One step of `Pipeline.stream`: text deltas while the model writes, then the checked answer, last.

    `answer` is None on every event but the last, which carries it (and no delta). The final
    answer can differ from the joined deltas: markers are repaired, and a draft that fails the
    checks becomes an abstention.
    """

    delta: str = ""
    answer: Answer | None = None
