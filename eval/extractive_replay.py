"""Would an extractive third attempt help? Replayed on the double declines of saved runs, no LLM.

When the model declines twice with the evidence in front of it, the candidate third attempt
quotes the passage sentence that covers most of the question's idf-weighted terms, if it
addresses the question (`checks.addresses`) and is the kind of answer asked for
(`shapes.fits`). For every record of a saved run that abstained because the model declined, this
prints what that attempt would have said, its coverage, and, for answerable questions, the fact
recall of the quote. Traps it would answer are the cost.

    python eval/extractive_replay.py --floor 0.7 \\
        RUN/results.json:eval/questions.jsonl:docs:index \\
        eval/results/collections/pdfs-full-default-first/results.json:eval/collections/pdfs/questions.jsonl:eval/collections/pdfs/docs:eval/runs/collections/pdfs/index

Measured on the first default-model runs and written up in eval/README.md; not part of docqa.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from docqa.answering import checks
from docqa.answering.shapes import _candidates, _stems, fits
from docqa.evaluate.metrics import fact_recall
from docqa.evaluate.runner import load_questions
from docqa.ingest.embeddings import embedder_from_settings
from docqa.settings import Settings
from docqa.stores import open_retriever
from docqa.types import Passage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="RESULTS.json:QUESTIONS.jsonl:DOCS:INDEX")
    parser.add_argument("--floor", type=float, default=0.7, help="least idf-weighted coverage to quote")
    args = parser.parse_args()
    embedder = None
    tally = {"recovered": 0, "wrong": 0, "trap answered": 0, "still refused": 0}
    for spec in args.runs:
        results, questions, docs, index = spec.split(":")
        settings = Settings.load(docs_dir=Path(docs), index_dir=Path(index))
        embedder = embedder or embedder_from_settings(settings)
        retriever = open_retriever(settings, embedder)
        by_id = {c.id: c for c in retriever.chunks}
        df: dict[str, int] = {}
        for c in retriever.chunks:
            for t in _stems(c.search_text):
                df[t] = df.get(t, 0) + 1
        n = len(by_id)

        def idf(t: str, df: dict[str, int] = df, n: int = n) -> float:
            return math.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))

        asked = {q.id: q for q in load_questions(Path(questions))}
        for rec in json.loads(Path(results).read_text())["records"]:
            if not rec["abstained"] or not (rec["abstain_reason"] or "").startswith("the model said"):
                continue
            q, query = asked[rec["id"]], rec.get("standalone_question") or rec["question"]
            passages = [Passage(i + 1, by_id[c], 0.0) for i, c in enumerate(rec["retrieved_ids"]) if c in by_id]
            terms = _stems(query) - {"say", "manual", "document", "essay"}
            total = sum(idf(t) for t in terms) or 1.0
            best: tuple[float, str] | None = None
            for p in passages:
                for sentence in _candidates(p):
                    if checks.addresses(query, sentence) and fits(query, sentence):
                        cover = sum(idf(t) for t in terms & _stems(sentence)) / total
                        best = max(best or (cover, sentence), (cover, sentence))
            if best is None or best[0] < args.floor:
                tally["still refused"] += 1
                continue
            recall = fact_recall(best[1], q.expected) if q.answerable else None
            verdict = "trap answered" if recall is None else "recovered" if recall == 1.0 else "wrong"
            tally[verdict] += 1
            print(f"{rec['id']}  {verdict:13}  coverage {best[0]:.2f}  {best[1][:120]}")
    print(tally)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
