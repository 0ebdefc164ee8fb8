"""Re-apply docqa's post-generation steps to the answers of a saved run, without the LLM.

A full eval with the default model takes hours on a 2-core CPU without AMX. A step that only
rewrites the model's draft (list completion, for one) can be measured in seconds instead: take
each saved answer and the passages it was written from (rebuilt by chunk id from an index of the
same documents), apply the step, and score old and new answers with the eval's own metrics.

    python eval/replay.py eval/results/default/results.json --docs docs --index /tmp/essay-idx
    python eval/replay.py RUN/results.json --set eval/collections/pdfs/questions.jsonl --docs ... --index ...

What it cannot show: how the model would have answered a different prompt (the hints that go
with a question's shape are measured by real runs only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from docqa.answering.shapes import complete_list, complete_parts
from docqa.evaluate.metrics import contains_evidence, fact_recall
from docqa.evaluate.runner import load_questions
from docqa.ingest.embeddings import embedder_from_settings
from docqa.settings import Settings
from docqa.stores import open_retriever
from docqa.types import Passage

ROOT = Path(__file__).resolve().parents[1]


def holds(passages: list[Passage], cited: list[int], evidence: list[str]) -> int:
    """How many of the cited passages hold an evidence span."""
    return sum(any(contains_evidence(passages[n - 1].chunk.text, s) for s in evidence) for n in cited)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--set", type=Path, default=ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    args = parser.parse_args()

    settings = Settings.load(docs_dir=args.docs, index_dir=args.index)
    embedder = embedder_from_settings(settings)
    retriever = open_retriever(settings, embedder)
    by_id = {c.id: c for c in retriever.chunks}
    questions = {q.id: q for q in load_questions(args.set)}
    run = json.loads(args.results.read_text())

    before = after = cited_ok_before = cited_ok_after = cited_before = cited_after = answerable = 0
    changed = []
    kinds: dict[str, list[float]] = {}  # kind -> [questions, fact recall before, after]
    for rec in run["records"]:
        q = questions.get(rec["id"])
        if q is None or not q.answerable:
            continue
        answerable += 1
        answer, cited = rec["answer"], rec["cited"]
        old = fact_recall(answer, q.expected) if not rec["abstained"] else 0.0
        chunks = [by_id.get(cid) for cid in rec["retrieved_ids"]]
        if None in chunks:
            sys.exit(f"{rec['id']}: a retrieved chunk is not in {args.index}; index the same documents")
        passages = [Passage(i + 1, c, 0.0) for i, c in enumerate(chunks)]
        new_answer, new_cited = answer, cited
        if not rec["abstained"]:
            done = complete_list(q.question, answer, passages, cited)
            if done is not None:
                new_answer, new_cited = done[0], [done[1]]
            for sentence, n in complete_parts(q.question, new_answer, passages):
                new_answer, new_cited = f"{new_answer} {sentence} [{n}]", [*new_cited, n]
        new = fact_recall(new_answer, q.expected) if not rec["abstained"] else 0.0
        before, after = before + old, after + new
        row = kinds.setdefault(q.kind, [0, 0.0, 0.0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + old, row[2] + new

        cited_before += len(cited)
        cited_after += len(new_cited)
        cited_ok_before += holds(passages, cited, q.evidence)
        cited_ok_after += holds(passages, new_cited, q.evidence)
        if new_answer != answer:
            changed.append((rec["id"], old, new, answer, new_answer))

    for qid, old, new, answer, new_answer in changed:
        print(f"{qid}: fact recall {old:.2f} -> {new:.2f}\n  was: {answer[:200]}\n  now: {new_answer[:200]}")
    print("\n| kind | questions | fact recall before | after |\n|---|---|---|---|")
    for kind, (n, b, a) in sorted(kinds.items()):
        print(f"| {kind} | {n} | {b / n:.3f} | {a / n:.3f} |")
    print(f"\n{len(changed)} of {answerable} answerable answers changed")
    print(f"fact recall        {before / answerable:.3f} -> {after / answerable:.3f}")
    if cited_before and cited_after:
        print(f"citation precision {cited_ok_before / cited_before:.3f} -> {cited_ok_after / cited_after:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
