"""The question before retrieval: cleaned of control characters, and a follow-up made standalone."""

from __future__ import annotations

import re
from collections.abc import Sequence

from docqa.answering.checks import strip_markers
from docqa.answering.prompting import Prompts
from docqa.errors import QuestionError
from docqa.generate import Generator, Message
from docqa.retrieve.bm25 import tokenize

History = Sequence[tuple[str, str]]  # (question, answer) turns, oldest first

# Whole ANSI escape sequences (colours, cursor moves, terminal titles), then single control characters.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_FOLLOW_UP_START = re.compile(r"^(and|but|or|so|also|then|what about|how about|why|why not|how come|and why)\b", re.I)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this|that|these|those|there|he|she|his|her|then)\b", re.I)


def clean_question(question: str, max_chars: int) -> tuple[str, list[str]]:
    """Strip control characters and extra whitespace; truncate overly long questions.

    >>> clean_question("  what\\x00 is\\n it? ", 100)
    ('what is it?', [])
    """
    notices: list[str] = []
    text = " ".join(_CONTROL.sub(" ", _ANSI.sub(" ", question or "")).split())
    if not text:
        raise QuestionError("the question is empty", "type a question about your documents")
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
        notices.append(f"The question was {len(question)} characters long; only the first {len(text)} were used.")
    return text, notices


def needs_rewrite(question: str, history: History) -> bool:
    """Cheap check for a follow-up that can't stand alone, so most turns skip the rewrite call.

    >>> needs_rewrite("and in 1995?", [("What was the rate in 2019?", "60.60% [1].")])
    True
    >>> needs_rewrite("What was the rural population in 1995?", [("q", "a")])
    False
    """
    if not history:
        return False
    content = tokenize(question)
    if len(content) <= 2 or _FOLLOW_UP_START.match(question):
        return True
    return bool(_PRONOUN.search(question)) and len(content) <= 4


def paired_with_last(question: str, history: History) -> str:
    """The cheap standalone form of a follow-up: the previous question, then this one.

    >>> paired_with_last("and in 1995?", [("What was the rate in 2019?", "60.60% [1].")])
    'What was the rate in 2019? and in 1995?'
    """
    return f"{history[-1][0]} {question}"


def rewrite(question: str, history: History, generator: Generator, prompts: Prompts) -> str:
    """Turn a follow-up into a standalone question with one short model call."""
    turns = "\n".join(f"User: {q}\nAssistant: {strip_markers(a)}" for q, a in list(history)[-3:])
    messages: list[Message] = [
        {"role": "system", "content": prompts.render("rewrite_system")},
        {"role": "user", "content": prompts.render("rewrite_user", history=turns, question=question)},
    ]
    out = "".join(generator.stream(messages, 48)).strip().splitlines()
    rewritten = out[0].strip().strip('"') if out else ""
    if not rewritten or len(rewritten) > 4 * len(question) + 200:
        # A rambling or empty rewrite: fall back to pairing with the last question.
        rewritten = paired_with_last(question, history)
    return rewritten
