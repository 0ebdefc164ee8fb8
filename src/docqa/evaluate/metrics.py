"""Judge-free metrics for the eval runner: pure functions over strings and numbers.

Matching is lenient on case and whitespace, strict on content: a fact counts only if one of its
phrasings appears in the answer.
"""

from __future__ import annotations

from collections import Counter

from docqa.answering.checks import strip_markers
from docqa.retrieve.bm25 import tokenize


def normalize(text: str) -> str:
    """Lowercase, unify quotes and dashes, collapse whitespace.

    >>> normalize("  The “Three  Rural”\\nissues ")
    'the "three rural" issues'
    """
    text = text.lower().translate(
        str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\xa0": " "})
    )
    return " ".join(text.split())


def has_fact(answer: str, alternatives: list[str]) -> bool:
    """True when any phrasing of the fact appears in the answer.

    >>> has_fact("It rose to 60.6% [1].", ["60.60%", "60.6%"])
    True
    """
    norm = normalize(strip_markers(answer))
    return any(normalize(alt) in norm for alt in alternatives)


def fact_recall(answer: str, expected: list[list[str]]) -> float:
    """1.0 when every expected fact is present, else 0.0 (an empty list counts as recalled).

    >>> fact_recall("29% in 1995 and 60.60% in 2019", [["29%"], ["60.60%", "60.6%"]])
    1.0
    >>> fact_recall("60.60% in 2019", [["29%"], ["60.60%"]])
    0.0
    """
    return float(all(has_fact(answer, alts) for alts in expected))


def token_f1(answer: str, expected: list[list[str]]) -> float:
    """Token F1 between the answer and the expected facts (first phrasing of each), stopwords out.

    >>> round(token_f1("The rate was 60.60% in 2019", [["60.60%"], ["2019"]]), 3)
    0.8
    """
    pred = Counter(tokenize(strip_markers(answer)))
    gold = Counter(t for alts in expected for t in tokenize(alts[0]))
    common = sum((pred & gold).values())
    if not pred or not gold or not common:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


def contains_evidence(passage: str, span: str, min_coverage: float = 0.9) -> bool:
    """True when the evidence span lies inside the passage.

    Exact containment after normalisation; failing that, when the passage holds at least
    `min_coverage` of the span's content words (a span cut by a chunk boundary, or by a
    reader that changed spacing, still counts if almost all of it is there).

    >>> contains_evidence("Rates: it soared from 29% to 60.60% in 2019.", "soared from 29% to 60.60%")
    True
    >>> contains_evidence("It soared.", "soared from 29% to 60.60%")
    False
    """
    if normalize(span) in normalize(passage):
        return True
    words = tokenize(span)
    if len(words) < 3:
        return False
    found = set(tokenize(passage))
    return sum(w in found for w in words) / len(words) >= min_coverage


def evidence_rank(passages: list[str], spans: list[str]) -> int | None:
    """1-based rank of the first passage holding any evidence span, or None.

    >>> evidence_rank(["tea", "rice grows here", "rice"], ["rice grows"])
    2
    """
    for rank, text in enumerate(passages, start=1):
        if any(contains_evidence(text, s) for s in spans):
            return rank
    return None


def evidence_hit(passages: list[str], spans: list[str], k: int) -> float:
    """1.0 when an evidence span lies in one of the first k passages (hit@k).

    >>> evidence_hit(["a b c d", "q r s t"], ["a b c d", "x y z w"], 1)
    1.0
    >>> evidence_hit(["q r s t", "a b c d"], ["a b c d"], 1)
    0.0
    """
    return float(evidence_rank(passages[:k], spans) is not None)


def evidence_recall(passages: list[str], spans: list[str], k: int) -> float:
    """Share of the evidence spans found in the first k passages (for multi-passage questions).

    >>> evidence_recall(["a b c d", "x y z w"], ["a b c d", "x y z w"], 1)
    0.5
    """
    top = passages[:k]
    return sum(any(contains_evidence(p, s) for p in top) for s in spans) / len(spans)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100].

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([], 50) is None
    True
    """
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ratio(num: int, den: int) -> float | None:
    """A share, or None when there is nothing to divide by.

    >>> ratio(1, 4), ratio(1, 0)
    (0.25, None)
    """
    return num / den if den else None
