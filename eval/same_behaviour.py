"""Prove that a refactor changed no behaviour, without hours of CPU generation.

The real generator is greedy: a deterministic function of the chat messages it is given. So two
versions of docqa answer alike when (1) every prompt they send the model is byte-identical and
(2) everything after generation (the judge, citations, metrics) maps the same model text to the
same answer. This script checks both over an eval set:

- every question goes through `Pipeline.ask` with the real embedder and index, and a recording
  generator that returns a deterministic extractive reply (the passage sentence that best matches
  the question, cited) while keeping a sha256 of each prompt it was sent;
- it writes, per question, the prompt digests, the retrieved chunk ids and scores, the answer, the
  abstention reason, and the eval metrics of the whole run.

Run it on both versions and compare:

    python eval/same_behaviour.py --out /tmp/before.json        # on the old checkout
    python eval/same_behaviour.py --out /tmp/after.json --compare /tmp/before.json

It uses only `Pipeline.from_settings(...).ask`, `Settings` and the eval runner, so it works across
module moves (it finds the runner under its old and new names).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first(*names: str):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {names}")


class RecordingGenerator:
    """Greedy-like and deterministic: answers with the passage sentence sharing most words with the question."""

    name = "recording-extractive"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def stream(self, messages: list[dict], max_new_tokens: int):
        blob = json.dumps(messages, ensure_ascii=False, sort_keys=True)
        self.prompts.append(hashlib.sha256(blob.encode()).hexdigest()[:16])
        user, _, question = messages[-1]["content"].rpartition("Question:")
        words = set(re.findall(r"[a-z0-9]+", question.lower()))
        best, best_n, best_overlap = "", 0, 0
        for n, body in re.findall(r"(?ms)^\[(\d+)\][^\n]*\n(.*?)(?=^\[\d+\]|\Z)", user):
            for sentence in re.split(r"(?<=[.!?])\s+", body.strip()):
                overlap = len(words & set(re.findall(r"[a-z0-9]+", sentence.lower())))
                if overlap > best_overlap:
                    best, best_n, best_overlap = sentence.strip(), int(n), overlap
        reply = f"{best.rstrip('.')} [{best_n}]." if best else "The documents don't say."
        yield from (reply[i : i + 7] for i in range(0, len(reply), 7))

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) for m in messages)


def run(question_set: Path, docs: Path) -> dict:
    from docqa.settings import Settings

    pipeline_mod = _first("docqa.answering.pipeline", "docqa.pipeline")
    runner = _first("docqa.evaluate.runner", "docqa.evaluation")
    generator = RecordingGenerator()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(docs_dir=docs, index_dir=Path(tmp) / "index", embed_dtype="float32")
        pipeline = pipeline_mod.Pipeline.from_settings(settings, generator=generator)
        questions = runner.load_questions(question_set)
        per_question = {}

        def ask(question: str):
            before = len(generator.prompts)
            answer = pipeline.ask(question)
            per_question[question] = {
                "prompts": generator.prompts[before:],
                "retrieved": [(p.chunk.id, round(p.score, 5)) for p in answer.retrieved],
                "answer": answer.answer,
                "abstain_reason": answer.abstain_reason,
                "cited": [c.n for c in answer.citations],
            }
            return answer

        _, summary = runner.run_eval(questions, ask, settings.top_k)
    timing = ("_ms", "_s", "rss_mb")  # speed differs run to run; behaviour must not
    metrics = {k: v for k, v in summary.items() if not k.endswith(timing)}
    # Through JSON and back, so a fresh run compares like one read from an --out file (tuples become lists).
    return json.loads(json.dumps({"metrics": metrics, "questions": per_question}))


def compare(new: dict, old: dict) -> list[str]:
    """Every difference, one line each; empty when the two runs behave alike."""
    diffs = [
        f"metric {k}: {old['metrics'].get(k)} -> {new['metrics'].get(k)}"
        for k in sorted(set(new["metrics"]) | set(old["metrics"]))
        if new["metrics"].get(k) != old["metrics"].get(k)
    ]
    for q in sorted(set(new["questions"]) | set(old["questions"])):
        a, b = old["questions"].get(q), new["questions"].get(q)
        if a != b:
            fields = [
                f
                for f in ("prompts", "retrieved", "answer", "abstain_reason", "cited")
                if (a or {}).get(f) != (b or {}).get(f)
            ]
            diffs.append(f"question {q[:60]!r}: {', '.join(fields) or 'missing'} differ")
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="an earlier --out file; exit 1 on any difference")
    args = parser.parse_args()
    result = run(args.set, args.docs)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    prompts = sum(len(q["prompts"]) for q in result["questions"].values())
    print(f"{len(result['questions'])} questions, {prompts} prompts recorded -> {args.out}")
    if args.compare:
        diffs = compare(result, json.loads(args.compare.read_text()))
        print("\n".join(diffs) if diffs else "identical: same prompts, passages, answers, reasons and metrics")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
