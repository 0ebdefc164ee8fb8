"""The question before retrieval: cleaned of control characters, and a follow-up made standalone."""

from __future__ import annotations

import re
from collections.abc import Sequence

from docqa.answering.checks import strip_markers
from docqa.answering.prompting import Prompts
from docqa.errors import QuestionError
from docqa.generate import Generator, Message
from docqa.retrieve.bm25 import STOPWORDS, tokenize

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


# Where a question asks a second thing: "..., and what ...", "...; ...", "...? And ...".
_CLAUSE = re.compile(
    r"\s*(?:[;?]\s+|,?\s+and\s+(?=(?:(?:by|in|into|for|from|to|at|on|of|with|since|until|after|before|under|during|through)\s+)?"
    r"(?:what|which|how|why|when|where|who|whose|is|are|does|do|did|can|was|were)\b))",
    re.I,
)
# Words that set two things side by side ("A and B", "A versus B", "A compared with B", "A or B").
_JOINERS = {"and", "versus", "vs", "vs.", "or"}
_COMPARED = re.compile(r"\bcompared\s+(?:with|to)\b|\bdiffers?\s+from\b", re.I)
_ARTICLES = {"the", "a", "an", "its", "their"}
_NOT_SIDE = STOPWORDS | {"compare", "differ", "differs", "each", "both", "between", "difference"}


def split_parts(question: str) -> list[str]:
    """The separate things a multi-part or comparison question asks, each as its own search; [] for one thing.

    Retrieval for the whole question tends to fill every slot with passages about the first part
    or one side; a search per part makes sure each part's best passage reaches the model.

    >>> split_parts("What is the default port, and which file sets it?")
    ['What is the default port', 'which file sets it?']
    >>> split_parts("How do the default values of work_mem and maintenance_work_mem compare?")
    ['How do the default values of work_mem compare?', 'How do the default values of maintenance_work_mem compare?']
    >>> split_parts("What was the rate in 2019, and by which year was poverty to end?")
    ['What was the rate in 2019', 'by which year was poverty to end?']
    >>> split_parts("Which meeting adopted the strategy, and into which document was it written?")
    ['Which meeting adopted the strategy', 'into which document was it written?']
    >>> split_parts("When does the harvest begin?")
    []
    """
    clauses = [c for c in _CLAUSE.split(question.strip()) if len(tokenize(c)) >= 2]
    if len(clauses) > 1:
        return clauses
    return compared_sides(question)


def compared_sides(question: str) -> list[str]:
    """The question asked once per side of a comparison; [] when it sets nothing side by side.

    A side is the run of content words next to the joining word, as long as the shorter of the two
    runs (at most 3), so "A B and C D" gives the sides "A B" and "C D".

    >>> compared_sides("Who is targeted by poverty alleviation versus rural revitalization?")
    ['Who is targeted by poverty alleviation?', 'Who is targeted by rural revitalization?']
    >>> compared_sides("How do the tea harvest and the rice terraces compare?")
    ['How do the tea harvest compare?', 'How do the rice terraces compare?']
    """
    words = _COMPARED.sub("versus", question).rstrip("?").split()
    for i, word in enumerate(words):
        if word.lower().strip(",") not in _JOINERS or i == 0:
            continue
        skip = 1 if i + 1 < len(words) and words[i + 1].lower() in _ARTICLES else 0  # "A and the B"
        left = _side(list(reversed(words[:i])))[::-1]
        right = _side(words[i + 1 + skip :])
        n = min(len(left), len(right))
        if n == 0:
            continue
        before, after = words[: i - n], words[i + 1 + skip + n :]
        return [" ".join([*before, *side, *after]) + "?" for side in (left[-n:], right[:n])]
    return []


def _side(words: list[str]) -> list[str]:
    """The first content words of `words` (at most 3), up to a stopword or punctuation."""
    side: list[str] = []
    for word in words[:3]:
        if word.lower().strip(",.") in _NOT_SIDE or not tokenize(word):
            break
        side.append(word.strip(","))
        if word.endswith(","):
            break
    return side
