"""Reranking and query-expansion ablation: does reordering the fused candidates find the evidence sooner?

docqa fuses dense and BM25 rankings (20 candidates each) and keeps the top k. This script takes
the same candidates for every answerable question of a set and measures hit@k and MRR for the
fusion as it is and for each reranker or expansion tried on top of it. No LLM: seconds to minutes.

    python eval/rerank_ablation.py --set eval/questions.jsonl --docs docs --index index
    python eval/rerank_ablation.py --set eval/collections/pgdocs/questions.jsonl \\
        --docs eval/collections/pgdocs/docs --index eval/runs/collections/pgdocs/index

Tried (none needs weights beyond the bundled embedder; no cross-encoder installs offline here):
- `sentences`: each candidate scored by its best-matching sentence (headed by the chunk's
  heading), embedded with the bundled MiniLM: the whole-chunk vector is truncated at 256 word
  pieces and averages a chunk's topics, a sentence vector does neither. Fused with the original
  order by RRF.
- `coverage`: the idf-weighted share of the question's terms found in the candidate (heading
  included), fused with the original order by RRF.
- `prf`: pseudo-relevance feedback for BM25: the question plus the 5 highest-idf terms of its top
  3 candidates, searched again and fused.

Follow-up questions are asked as they stand (no rewrite), the same for every method.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from docqa.evaluate.metrics import evidence_rank
from docqa.evaluate.runner import load_questions
from docqa.ingest.embeddings import embedder_from_settings
from docqa.retrieve.bm25 import tokenize
from docqa.retrieve.fusion import rrf
from docqa.settings import Settings
from docqa.stores import open_retriever
from docqa.types import Chunk

ROOT = Path(__file__).resolve().parents[1]
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")


def sentences(chunk: Chunk) -> list[str]:
    head = f"{chunk.heading}: " if chunk.heading else ""
    found = [s.strip() for s in _SENTENCE.split(chunk.text) if len(s.split()) >= 3]
    return [head + s for s in found] or [chunk.search_text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=20)
    args = parser.parse_args()

    settings = Settings.load(docs_dir=args.docs, index_dir=args.index)
    embedder = embedder_from_settings(settings)
    retriever = open_retriever(settings, embedder)
    chunks = retriever.chunks
    df: Counter[str] = Counter()
    for c in chunks:
        df.update(set(tokenize(c.search_text)))
    n_docs = len(chunks)

    def idf(term: str) -> float:
        return math.log(1 + (n_docs - df[term] + 0.5) / (df[term] + 0.5))

    def by_sentences(query: str, cands: list[Chunk]) -> list[Chunk]:
        q = embedder.embed([query])[0]
        pieces = [sentences(c) for c in cands]
        vecs = embedder.embed([s for p in pieces for s in p])
        best, i = [], 0
        for p in pieces:
            best.append(float(np.max(vecs[i : i + len(p)] @ q)))
            i += len(p)
        order = sorted(range(len(cands)), key=lambda j: -best[j])
        return fuse(cands, order)

    def by_coverage(query: str, cands: list[Chunk]) -> list[Chunk]:
        terms = set(tokenize(query))
        total = sum(idf(t) for t in terms) or 1.0
        cover = [sum(idf(t) for t in terms & set(tokenize(c.search_text))) / total for c in cands]
        order = sorted(range(len(cands)), key=lambda j: -cover[j])
        return fuse(cands, order)

    def fuse(cands: list[Chunk], order: list[int]) -> list[Chunk]:
        fused = rrf([list(range(len(cands))), order])
        return [cands[j] for j, _ in fused]

    def prf(query: str, cands: list[Chunk]) -> list[Chunk]:
        asked = set(tokenize(query))
        pool = Counter(t for c in cands[:3] for t in set(tokenize(c.search_text)) if t not in asked)
        extra = sorted(pool, key=lambda t: -(idf(t) * pool[t]))[:5]
        again = retriever.retrieve(f"{query} {' '.join(extra)}", args.candidates, "bm25").passages
        ids = {c.id: c for c in cands} | {p.chunk.id: p.chunk for p in again}
        fused = rrf([[c.id for c in cands], [p.chunk.id for p in again]], weights=[1.0, 0.5])
        return [ids[key] for key, _ in fused]

    methods: dict[str, Callable[[str, list[Chunk]], list[Chunk]]] = {
        "fusion (docqa now)": lambda q, cands: cands,
        "sentences": by_sentences,
        "coverage": by_coverage,
        "sentences + coverage": lambda q, cands: by_coverage(q, by_sentences(q, cands)),
        "prf": prf,
    }
    ranks: dict[str, list[int | None]] = {name: [] for name in methods}
    in_pool: list[bool] = []
    for q in load_questions(args.set):
        if not q.answerable or not q.evidence:
            continue
        cands = [p.chunk for p in retriever.retrieve(q.question, args.candidates, "hybrid").passages]
        in_pool.append(evidence_rank([c.text for c in cands], q.evidence) is not None)
        for name, method in methods.items():
            ordered = method(q.question, cands)
            ranks[name].append(evidence_rank([c.text for c in ordered], q.evidence))

    k = args.top_k
    print(
        f"{args.set}: {len(in_pool)} answerable questions; evidence among the {args.candidates} fused candidates: "
        f"{sum(in_pool) / len(in_pool):.3f}"
    )
    print(f"| method | hit@{k} | MRR@{args.candidates} | hit@1 |")
    print("|---|---|---|---|")
    for name, found in ranks.items():
        hit = statistics.mean(r is not None and r <= k for r in found)
        mrr = statistics.mean(1 / r if r else 0.0 for r in found)
        top = statistics.mean(r == 1 for r in found)
        print(f"| {name} | {hit:.3f} | {mrr:.3f} | {top:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
