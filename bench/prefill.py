"""Less to prefill: prompt tokens vs evidence recall for each way of shortening the answer prompt.

    .venv/bin/python bench/prefill.py                 # the three collections, every option -> bench/prefill.json
    .venv/bin/python bench/prefill.py --only essay    # one collection

No LLM runs. For each collection (the bundled essay, eval/collections/pgdocs and pdfs, each from its
already built index, opened read-only with auto_index off), every question is retrieved with docqa's
own pipeline (`Pipeline.ask(..., retrieval_only=True)`: top_k, broad_top_k, a search per part, the
score gate). A follow-up takes the pipeline's cheap standalone form (`paired_with_last`), as no
rewrite model runs. Then, for each option of `docqa.answering.trim`:

- prompt tokens: the real answer prompt (`Prompts().answer_messages` with the shape hint), counted by
  the generator's own tokenizer through its chat template, for each question the gate lets through;
- evidence recall and hit: the eval's `evidence_recall` / `contains_evidence` over the prompt's
  (trimmed) passage texts, for each answerable question, against its `evidence` spans.

Prefill on 2 AVX2 cores is compute-bound at about 55 tokens/s for the 1.5B, so the time to first
token saved is estimated as (tokens cut) / 55 s: an estimate, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from docqa.answering.pipeline import Pipeline  # noqa: E402
from docqa.answering.prompting import Prompts  # noqa: E402
from docqa.answering.question import needs_rewrite, paired_with_last  # noqa: E402
from docqa.answering.shapes import shape  # noqa: E402
from docqa.answering.trim import TrimOptions, dynamic_top_k, trim_prompt, trim_sentences  # noqa: E402
from docqa.cpu import cpu_summary, describe_cpu  # noqa: E402
from docqa.evaluate import metrics as m  # noqa: E402
from docqa.settings import Settings  # noqa: E402
from docqa.types import Passage  # noqa: E402

MODEL = Path("~/.cache/docqa/models/qwen2.5-coder-1.5b-instruct-q4_k_m").expanduser()
PREFILL_TOK_S = 55.0  # the 1.5B's prefill on 2 AVX2 cores (bench/README.md); TTFT savings are estimates
COLLECTIONS = {
    "essay": (ROOT / "docs", ROOT / "index", ROOT / "eval" / "questions.jsonl"),
    **{
        name: (
            ROOT / "eval" / "collections" / name / "docs",
            ROOT / "eval" / "runs" / "collections" / name / "index",
            ROOT / "eval" / "collections" / name / "questions.jsonl",
        )
        for name in ("pgdocs", "pdfs")
    },
}

Option = Callable[[str, list[Passage]], list[Passage]]
RECOMMENDED = "recommended: trim_prompt() defaults"  # = topk gap=0.05 lex=0.75 + trim nb=1 w=0.3
KEEP_QUESTIONS = ("full", RECOMMENDED)  # the options whose per-question records go to the JSON file


def options() -> dict[str, Option]:
    """Every option the bench measures, by name: the full prompt, each lever alone, and combinations."""
    out: dict[str, Option] = {"full": lambda q, ps: list(ps)}
    for gap in (0.05, 0.1, 0.15, 0.2, 0.25):
        out[f"topk gap={gap}"] = lambda q, ps, gap=gap: dynamic_top_k(q, ps, gap=gap, lexical_keep=0.0)
    for gap, lex in ((0.0, 0.75), (0.05, 0.9), (0.05, 0.5), (0.05, 0.75), (0.1, 0.5), (0.1, 0.75), (0.15, 0.75)):
        label = f"topk gap={gap} lex={lex}"
        out[label] = lambda q, ps, gap=gap, lex=lex: dynamic_top_k(q, ps, gap=gap, lexical_keep=lex)
    for nb in (0, 1, 2):
        for w in (0.3, 1.0, 2.0):
            o = TrimOptions(neighbours=nb, min_weight=w)
            out[f"trim nb={nb} w={w}"] = lambda q, ps, o=o: trim_sentences(q, ps, o)
    for w in (0.3, 1.0):
        o = TrimOptions(min_weight=w, keep_first=False)
        out[f"trim nb=1 w={w} nofirst"] = lambda q, ps, o=o: trim_sentences(q, ps, o)
        o = TrimOptions(min_weight=w, min_units=1, top_min_units=2)
        out[f"trim nb=1 w={w} min=1 top=2"] = lambda q, ps, o=o: trim_sentences(q, ps, o)
        o = TrimOptions(min_weight=w, min_units=1, top_min_units=2, keep_first=False)
        out[f"trim nb=1 w={w} min=1 top=2 nofirst"] = lambda q, ps, o=o: trim_sentences(q, ps, o)
    out["trim nb=1 w=1.0 top=5"] = lambda q, ps: trim_sentences(q, ps, TrimOptions(min_weight=1.0, top_min_units=5))
    out["trim nb=1 w=1.0 broad"] = lambda q, ps: trim_sentences(q, ps, TrimOptions(min_weight=1.0, skip_broad=False))
    combos = [(gap, lex, w) for gap, lex in ((0.0, 0.75), (0.05, 0.75), (0.1, 0.75), (0.15, 0.0)) for w in (0.3, 1.0)]
    for gap, lex, w in [*combos, (0.05, 0.75, 2.0)]:
        o = TrimOptions(min_weight=w)
        label = f"topk gap={gap}{f' lex={lex}' if lex else ''} + trim nb=1 w={w}"
        out[label] = lambda q, ps, o=o, gap=gap, lex=lex: trim_prompt(q, ps, o, gap=gap, lexical_keep=lex)
    o = TrimOptions(min_weight=0.3, min_units=1, top_min_units=2, keep_first=False)
    label = "topk gap=0.05 lex=0.75 + trim nb=1 w=0.3 min=1 top=2 nofirst"
    out[label] = lambda q, ps, o=o: trim_prompt(q, ps, o, gap=0.05, lexical_keep=0.75)
    out[RECOMMENDED] = lambda q, ps: trim_prompt(q, ps)
    return out


def load_questions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def retrieve_all(name: str) -> list[dict[str, Any]]:
    """Each question of the collection with the query the pipeline would use and its passages."""
    docs, index, questions = COLLECTIONS[name]
    pipeline = Pipeline.from_settings(Settings(docs_dir=docs, index_dir=index, auto_index=False))
    out = []
    for q in load_questions(questions):
        history = [tuple(t) for t in q.get("history", [])]
        query = paired_with_last(q["question"], history) if needs_rewrite(q["question"], history) else q["question"]
        answer = pipeline.ask(query, retrieval_only=True)
        out.append({**q, "query": query, "gated": answer.abstained, "passages": answer.retrieved})
    return out


def measure(name: str, rows: list[dict[str, Any]], opts: dict[str, Option], count: Callable[[list], int]) -> dict:
    """Per option: prompt tokens (gate-passed questions) and evidence recall/hit (answerable ones), by kind too."""
    prompts = Prompts()
    result: dict[str, Any] = {}
    for label, option in opts.items():
        per_q = []
        for r in rows:
            passages = option(r["query"], r["passages"])
            texts = [p.chunk.text for p in passages]
            rec: dict[str, Any] = {"id": r["id"], "kind": r["kind"], "passages": len(passages)}
            if not r["gated"]:
                rec["tokens"] = count(prompts.answer_messages(r["query"], passages, hint=shape(r["query"]).hint))
            if r["answerable"]:
                rec["recall"] = m.evidence_recall(texts, r["evidence"], len(texts))
                rec["hit"] = m.evidence_hit(texts, r["evidence"], len(texts))
            per_q.append(rec)
        result[label] = {"overall": summarise(per_q), "by_kind": by_kind(per_q)}
        if label in KEEP_QUESTIONS:
            result[label]["questions"] = per_q
    full = result["full"]["overall"]
    for res in result.values():
        o = res["overall"]
        o["cut_pct"] = 100 * (1 - o["tokens_mean"] / full["tokens_mean"])
        o["recall_vs_full"] = o["recall"] - full["recall"]
        o["hit_vs_full"] = o["hit"] - full["hit"]
        o["est_ttft_saving_s"] = (full["tokens_mean"] - o["tokens_mean"]) / PREFILL_TOK_S
    return result


def summarise(per_q: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [r["tokens"] for r in per_q if "tokens" in r]
    answerable = [r for r in per_q if "recall" in r]
    return {
        "prompted": len(tokens),
        "answerable": len(answerable),
        "tokens_p50": statistics.median(tokens) if tokens else None,
        "tokens_mean": statistics.fmean(tokens) if tokens else None,
        "passages_mean": statistics.fmean(r["passages"] for r in per_q) if per_q else None,
        "recall": statistics.fmean(r["recall"] for r in answerable) if answerable else None,
        "hit": statistics.fmean(r["hit"] for r in answerable) if answerable else None,
    }


def by_kind(per_q: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in per_q:
        groups[r["kind"]].append(r)
    return {kind: summarise(rs) for kind, rs in sorted(groups.items())}


def token_counter() -> Callable[[list], int]:
    """Prompt tokens as the generator sees them: its tokenizer, through its chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL)

    def count(messages: list) -> int:
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)

    return count


def fixed_tokens(count: Callable[[list], int]) -> int:
    """Tokens of the prompt with no passages and an empty question: the part every answer prompt shares."""
    return count(Prompts().answer_messages("", []))


def fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def print_table(name: str, result: dict[str, Any]) -> None:
    print(f"\n## {name}")
    print(
        f"{'option':<36} {'tok p50':>7} {'tok mean':>8} {'cut %':>6} {'recall':>6} {'Δrec':>6}"
        f" {'hit':>5} {'Δhit':>6} {'psg':>4} {'est TTFT -s':>11}"
    )
    for label, res in result.items():
        o = res["overall"]
        print(
            f"{label:<36} {fmt(o['tokens_p50'], '7.0f')} {fmt(o['tokens_mean'], '8.1f')} {o['cut_pct']:6.1f}"
            f" {o['recall']:6.3f} {o['recall_vs_full']:+6.3f} {o['hit']:5.3f} {o['hit_vs_full']:+6.3f}"
            f" {o['passages_mean']:4.2f} {o['est_ttft_saving_s']:11.2f}"
        )


def print_kinds(name: str, result: dict[str, Any], labels: list[str]) -> None:
    kinds = list(result["full"]["by_kind"])
    print(f"\n{name}, by kind: recall (tokens mean)")
    print(f"{'option':<36} " + " ".join(f"{k[:12]:>16}" for k in kinds))
    for label in labels:
        bk = result[label]["by_kind"]
        cells = [f"{fmt(bk[k]['recall'], '.2f')} ({fmt(bk[k]['tokens_mean'], '.0f')})" for k in kinds]
        print(f"{label:<36} " + " ".join(f"{c:>16}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(COLLECTIONS), action="append", help="collection(s) to run [all]")
    parser.add_argument("--out", default=str(ROOT / "bench" / "prefill.json"), help="results file")
    parser.add_argument("--kinds", action="append", default=[], help="options to break down by kind [a few]")
    args = parser.parse_args(argv)
    print(describe_cpu(cpu_summary()))
    count = token_counter()
    base = fixed_tokens(count)
    print(f"prompt without passages or question: {base} tokens (the same for every question)")
    opts = options()
    out: dict[str, Any] = {
        "cpu": cpu_summary(),
        "model": MODEL.name,
        "prefill_tok_s_assumed": PREFILL_TOK_S,
        "fixed_prompt_tokens": base,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "collections": {},
    }
    labels = args.kinds or [
        "full",
        "topk gap=0.05 lex=0.75",
        "trim nb=1 w=0.3",
        "topk gap=0.05 lex=0.75 + trim nb=1 w=1.0",
        RECOMMENDED,
    ]
    for name in args.only or list(COLLECTIONS):
        t0 = time.perf_counter()
        rows = retrieve_all(name)
        result = measure(name, rows, opts, count)
        print_table(name, result)
        print_kinds(name, result, [label for label in labels if label in result])
        print(f"({name}: {len(rows)} questions, {time.perf_counter() - t0:.0f} s)")
        out["collections"][name] = result
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
