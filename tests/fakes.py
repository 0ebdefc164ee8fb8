"""Deterministic stand-ins for the models, for unit tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import numpy as np

from docqa.retrieve.bm25 import tokenize


class HashEmbedder:
    """Bag of words hashed into 64 buckets: texts sharing words get a high cosine; no model needed."""

    name = "hash-bow-64"
    dim = 64
    max_tokens = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokenize(text):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class ScriptedGenerator:
    """Replies with `reply(messages)`, streamed word by word; records every call."""

    name = "scripted"

    def __init__(self, reply: str | Callable[[list[dict]], str]) -> None:
        self.reply = reply
        self.calls: list[list[dict]] = []

    def stream(self, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        text = self.reply(messages) if callable(self.reply) else self.reply
        yield from re.findall(r"\S+\s*", text)

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) for m in messages)


def by_prompt(answer: str, rewrite: str = "", quote: str = "") -> Callable[[list[dict]], str]:
    """A scripted model that tells docqa's prompts apart: `rewrite` for the follow-up rewrite prompt,
    `quote` for the quoting second attempt, `answer` for the answer prompt."""

    def reply(messages: list[dict]) -> str:
        if "Follow-up question" in messages[-1]["content"]:
            return rewrite
        if "quoting the numbered passages" in messages[0]["content"]:
            return quote
        return answer

    return reply


def passage_text(messages: list[dict], n: int) -> str:
    """The text of passage [n] as rendered in the user prompt."""
    user = messages[-1]["content"]
    m = re.search(rf"^\[{n}\] \(.*?\)\n(.*?)(?=\n\n\[\d+\] \(|\n\nQuestion:)", user, re.S | re.M)
    assert m, f"passage [{n}] not in prompt"
    return m.group(1)
