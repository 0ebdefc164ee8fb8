"""Replay docqa's newer checks on saved eval runs, without the LLM: what would each one flag?

For every question set, the gate's lower-case names (`checks.unknown_words`) are tried on fresh
retrieval: each question whose gate verdict changes is printed. For every saved run of that set,
each answered record is put through the draft checks that look at a final answer
(`unsupported_code`, `contradiction`, `foreign_source`): each record one of them flags is printed,
with whether it was answerable and its fact recall, so a flag on a right answer shows at once.
eval/README.md ("The default model on every collection") quotes its output.

    python eval/replay_checks.py                 # the essay, and the collections whose docs were fetched
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from docqa.answering import checks
from docqa.answering.pipeline import named_in_sources
from docqa.answering.question import split_parts
from docqa.evaluate.runner import load_questions
from docqa.ingest.embeddings import embedder_from_settings
from docqa.retrieve.parts import cover_parts
from docqa.settings import Settings
from docqa.stores import open_retriever
from docqa.types import Passage

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "eval" / "collections"
# name: (question set, documents, index, saved runs)
SETS = {
    "essay": (ROOT / "eval/questions.jsonl", ROOT / "docs", ROOT / "index", sorted((ROOT / "eval/results").glob("*"))),
    **{
        name: (
            COLLECTIONS / name / "questions.jsonl",
            COLLECTIONS / name / "docs",
            ROOT / "eval/runs/collections" / name / "index",
            sorted((ROOT / "eval/results/collections").glob(f"{name}-full-*")),
        )
        for name in ("pdfs", "pgdocs")
    },
}


def main() -> int:
    embedder = None
    for name, (qset, docs, index, runs) in SETS.items():
        if not docs.is_dir():
            print(f"{name}: no documents (run eval/collections/{name}/fetch.sh); skipped")
            continue
        settings = Settings.load(docs_dir=docs, index_dir=index)
        embedder = embedder or embedder_from_settings(settings)
        replay(name, qset, runs, settings, embedder)
    return 0


def replay(name: str, qset: Path, runs: list[Path], settings: Settings, embedder: Any) -> None:
    retriever = open_retriever(settings, embedder)
    by_id = {c.id: c for c in retriever.chunks}
    texts: dict[str, list[str]] = {}
    for c in retriever.chunks:
        texts.setdefault(c.source, []).append(c.search_text)
    forms: dict[str, set[str]] = {}

    def document(source: str) -> set[str]:
        if source not in forms:
            forms[source] = checks.known_forms(texts.get(source, []))
        return forms[source]

    def rare(word: str) -> bool:
        return embedder.count_tokens(word) >= 3

    print(f"## {name}: the gate with lower-case names")
    for q in load_questions(qset):
        found = retriever.retrieve(q.question, settings.top_k)
        parts = split_parts(q.question)
        if parts:
            more = [retriever.retrieve(p, settings.top_k) for p in parts]
            found = cover_parts(found, more, settings.top_k, settings.dedup_threshold)
        elsewhere = partial(named_in_sources, retriever, found)
        before = checks.gate(q.question, found, settings.min_score, elsewhere)
        after = checks.gate(q.question, found, settings.min_score, elsewhere, rare=rare)
        if before != after:
            print(f"{q.id} answerable={q.answerable} {q.kind}: {before} -> {after}")

    for run in runs:
        results = run / "results.json"
        if not results.is_file():
            continue
        saved = json.loads(results.read_text())
        if (ROOT / saved["config"].get("set", "")).resolve() != qset.resolve():
            continue  # a run of another set (the injection sets have documents of their own)
        answered = flagged = 0
        print(f"## {run.relative_to(ROOT)}: the draft checks on its answers")
        for rec in saved["records"]:
            if rec["abstained"]:
                continue
            answered += 1
            passages = [Passage(i + 1, by_id[c], 0.0) for i, c in enumerate(rec["retrieved_ids"]) if c in by_id]
            question = rec.get("standalone_question") or rec["question"]
            sources = [p.chunk.search_text for p in passages] + [rec["question"], question]
            cited = [p for p in passages if p.n in rec["cited"]]
            why = {
                "code": checks.unsupported_code(rec["answer"], sources),
                "contradiction": checks.contradiction(rec["answer"], passages),
                "foreign": checks.foreign_source(question, cited, document),
            }
            hits = {k: v for k, v in why.items() if v}
            if hits:
                flagged += 1
                print(f"{rec['id']} answerable={rec['answerable']} fact_recall={rec.get('fact_recall')}: {hits}")
        print(f"{answered} answered, {flagged} flagged")


if __name__ == "__main__":
    raise SystemExit(main())
