"""Ablation: the quoting second attempt shown only the passage sharing most of the question's words.

Runs the real generator on every record of the first default-model runs whose two attempts both
declined, and prints whether the variant answered, with its fact recall (eval/README.md, "A
second attempt shown one passage"). Not part of docqa: the variant was not kept.

    python eval/one_passage_retry.py
"""

import json
import time
from pathlib import Path

from docqa.answering import checks
from docqa.answering.prompting import Prompts
from docqa.answering.shapes import _stems, shape
from docqa.evaluate.metrics import fact_recall
from docqa.evaluate.runner import load_questions
from docqa.generate import load_generator
from docqa.ingest.embeddings import embedder_from_settings
from docqa.settings import Settings
from docqa.stores import open_retriever
from docqa.types import Passage

runs = [
    ("eval/results/default-openvino/results.json", "eval/questions.jsonl", "docs", "index"),
    (
        "eval/results/collections/pdfs-full-default-first/results.json",
        "eval/collections/pdfs/questions.jsonl",
        "eval/collections/pdfs/docs",
        "eval/runs/collections/pdfs/index",
    ),
    (
        "eval/results/collections/pgdocs-full-default-first/results.json",
        "eval/collections/pgdocs/questions.jsonl",
        "eval/collections/pgdocs/docs",
        "eval/runs/collections/pgdocs/index",
    ),
]
emb = None
gen = None
prompts = None
for res, qs, docs, idx in runs:
    s = Settings.load(docs_dir=Path(docs), index_dir=Path(idx), profile="default")
    emb = emb or embedder_from_settings(s)
    gen = gen or load_generator(s)
    prompts = prompts or Prompts()
    r = open_retriever(s, emb)
    by = {c.id: c for c in r.chunks}
    Q = {q.id: q for q in load_questions(Path(qs))}
    for x in json.load(open(res))["records"]:
        if not x["abstained"] or "(second attempt)" not in (x["abstain_reason"] or ""):
            continue
        q = Q[x["id"]]
        query = x.get("standalone_question") or x["question"]
        ps = [Passage(i + 1, by[c], 0.0) for i, c in enumerate(x["retrieved_ids"]) if c in by]
        terms = _stems(query)
        best = max(ps, key=lambda p: len(terms & _stems(p.chunk.search_text)))
        one = [Passage(1, best.chunk, 0.0)]
        msgs = prompts.answer_messages(query, one, "quote_system", hint=shape(query).hint)
        t = time.time()
        out = "".join(gen.stream(msgs, 160)).strip()
        text, cites, reason = checks.judge(out, one, [query, x["question"]])
        if reason is None and not checks.addresses(query, text):
            reason = "not addressed"
        fr = fact_recall(text, q.expected) if (q.answerable and reason is None) else None
        print(
            x["id"],
            q.answerable,
            "REFUSED" if reason else "ANSWERED",
            fr,
            f"{time.time() - t:.1f}s",
            "|",
            (reason or text)[:160].replace("\n", " "),
            flush=True,
        )
