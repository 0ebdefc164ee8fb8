"""Okapi BM25 over chunk texts: the lexical half of hybrid retrieval.

Exact numbers and rare names ("60.60%", "Deng Xiaoping") are where BM25 beats a small embedder.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is"
    " it its of on or so such than that the their them then there these they this those to was were"
    " what when where which while who whom why will with would you your".split()
)


def tokenize(text: str) -> list[str]:
    """Lowercase, stemmed word tokens and number tokens, without stopwords.

    Stemming lets "benefit" match "benefiting"; numbers keep their decimals.

    >>> tokenize("The rates rose to 60.60% in 2019, benefiting farmers.")
    ['rate', 'rose', '60.60', '2019', 'benefit', 'farmer']
    """
    return [stem(t) for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    if word[0].isdigit() or len(word) <= 3:
        return word
    return _porter().stem(word)


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem.porter import PorterStemmer  # pure Python rules, no data download

    return PorterStemmer()


K1, B = 1.5, 0.75  # Okapi BM25 parameters; the pgvector store's SQL BM25 uses the same


def idf(n_docs: int, df: int) -> float:
    """BM25's smoothed inverse document frequency (never negative)."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


class BM25:
    """Okapi BM25 over `texts`, read one at a time (a generator is fine).

    The postings are built without holding every text's term counts at once: one flat array of
    (term, document, frequency) per occurrence, 12 bytes each, sorted by term once at the end. They
    stay as two shared arrays (int32 document ids, float32 frequencies) cut by term at `bounds`.
    """

    def __init__(self, texts: Iterable[str], k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        term_ids: dict[str, int] = {}
        terms, docs, freqs, lengths = array("i"), array("i"), array("f"), array("f")
        n = 0
        for n, text in enumerate(texts, start=1):
            counts = Counter(tokenize(text))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                terms.append(term_ids.setdefault(term, len(term_ids)))
                docs.append(n - 1)
                freqs.append(tf)
        self.doc_len = np.frombuffer(lengths, dtype=np.float32).copy()
        self.avg_len = float(self.doc_len.mean()) if n else 0.0
        term_of = np.frombuffer(terms, dtype=np.int32)
        df = np.bincount(term_of, minlength=len(term_ids))  # documents per term
        order = np.argsort(term_of, kind="stable")  # grouped by term, documents ascending
        del term_of, terms
        ids = np.frombuffer(docs, dtype=np.int32)[order]
        tfs = np.frombuffer(freqs, dtype=np.float32)[order]
        del order, docs, freqs
        # Per term only its number: a term's postings are ids/tfs[bounds[t]:bounds[t + 1]]. (A pair of
        # array slices per term cost ~400 bytes each, and 11k chunks of bench/bigfolder.py's text have 68k terms.)
        self.terms = term_ids
        self.bounds = np.concatenate(([0], np.cumsum(df)))
        self.idf = np.array([idf(n, int(d)) for d in df], dtype=np.float64)
        self.ids, self.tfs = ids, tfs
        self.size = n

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The chunks holding `term` (ascending) and its frequency in each; None when none does."""
        t = self.terms.get(term)
        if t is None:
            return None
        a, z = self.bounds[t], self.bounds[t + 1]
        return self.ids[a:z], self.tfs[a:z]

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        if not self.size:
            return out
        norm = self.k1 * (1 - self.b + self.b * self.doc_len / max(self.avg_len, 1e-9))
        for term in set(tokenize(query)):
            found = self.postings(term)
            if found is None:
                continue
            ids, tfs = found
            weight = float(self.idf[self.terms[term]])  # a Python float, as before: float32 arithmetic
            out[ids] += weight * tfs * (self.k1 + 1) / (tfs + norm[ids])
        return out

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """Best `k` (index, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        k = min(k, int((scores > 0).sum()))
        if k == 0:
            return []
        idx = np.argpartition(-scores, k - 1)[:k]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        return [(int(i), float(scores[i])) for i in idx]
