"""Okapi BM25 over chunk texts: the lexical half of hybrid retrieval.

Exact numbers and rare names ("60.60%", "Deng Xiaoping") are where BM25 beats a small embedder.
"""

from __future__ import annotations

import math
import re
from collections import Counter
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
    def __init__(self, texts: list[str], k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        docs = [Counter(tokenize(t)) for t in texts]
        self.doc_len = np.array([sum(d.values()) for d in docs], dtype=np.float32)
        self.avg_len = float(self.doc_len.mean()) if len(docs) else 0.0
        # term -> (doc indices, term frequencies): a small inverted index, so a query touches only
        # the documents that contain its terms.
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, counts in enumerate(docs):
            for term, tf in counts.items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        n = len(docs)
        self.postings = {
            term: (np.array(ids, dtype=np.int64), np.array(tfs, dtype=np.float32))
            for term, (ids, tfs) in postings.items()
        }
        self.idf = {term: idf(n, len(ids)) for term, (ids, _) in self.postings.items()}
        self.size = n

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        if not self.size:
            return out
        norm = self.k1 * (1 - self.b + self.b * self.doc_len / max(self.avg_len, 1e-9))
        for term in set(tokenize(query)):
            if term not in self.postings:
                continue
            ids, tfs = self.postings[term]
            out[ids] += self.idf[term] * tfs * (self.k1 + 1) / (tfs + norm[ids])
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
