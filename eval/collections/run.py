"""Run `docqa eval` on one eval collection (full or slice), and tabulate every collection run.

    python eval/collections/run.py pgdocs --retrieval-only          # full collection, no LLM
    python eval/collections/run.py pdfs --slice --profile small     # the committed slice, small model
    python eval/collections/run.py pgdocs --slice -- --top-k 6      # anything after -- goes to docqa eval
    python eval/collections/run.py --table                          # only rewrite RESULTS.md

Each run indexes the collection's own documents (`NAME/docs/`, or `NAME/slice/docs/` with --slice)
into its own index folder, `eval/runs/collections/NAME[-slice]/index` by default (gitignored, built
once and then updated incrementally), never the project's `index/`. It writes the run to
`eval/results/collections/NAME[-slice]-MODE[-PROFILE]/` (results.json, report.md with the per-kind
table, chart.png), then rewrites `eval/collections/RESULTS.md`: one table across every collection
run found there, and each run's per-kind table.

The full collections' documents are not committed: run `bash eval/collections/NAME/fetch.sh` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS_DIR = ROOT / "eval" / "results" / "collections"
INDEX_ROOT = ROOT / "eval" / "runs" / "collections"
TABLE = HERE / "RESULTS.md"

# The combined table's columns: (results.json summary key, header).
COLUMNS = [
    ("questions", "questions"),
    ("evidence_hit@k", "hit@k"),
    ("mrr", "MRR"),
    ("evidence_recall@k", "evidence recall@k"),
    ("fact_recall", "fact recall"),
    ("answered_correct_cited", "correct + cited"),
    ("citation_precision", "citation precision"),
    ("abstention_recall", "abstention recall"),
    ("false_abstention_rate", "false abstention"),
    ("total_p50_ms", "answer p50 ms"),
]


def collections() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/questions.jsonl"))


def paths(name: str, use_slice: bool) -> tuple[Path, Path]:
    """(docs folder, question set) of a collection or its slice."""
    base = HERE / name / "slice" if use_slice else HERE / name
    return base / "docs", base / "questions.jsonl"


def run_name(name: str, use_slice: bool, retrieval_only: bool, profile: str | None) -> str:
    parts = [name + ("-slice" if use_slice else ""), "retrieval" if retrieval_only else "full"]
    if profile and not retrieval_only:
        parts.append(profile)
    return "-".join(parts)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    docs, questions = paths(args.name, args.slice)
    if not docs.is_dir() or not any(docs.iterdir()):
        sys.exit(f"{docs} is missing or empty: run `bash eval/collections/{args.name}/fetch.sh` first")
    name = run_name(args.name, args.slice, args.retrieval_only, args.profile)
    index = Path(args.index) if args.index else INDEX_ROOT / (args.name + ("-slice" if args.slice else "")) / "index"
    out = Path(args.out) if args.out else RESULTS_DIR / name
    if index.resolve() == (ROOT / "index").resolve():
        sys.exit("refusing to use the project's index/ for a collection: pass another --index")
    cmd = [sys.executable, "-m", "docqa.cli", "eval", "--docs", str(docs), "--index", str(index)]
    cmd += ["--set", str(questions), "--out", str(out)]
    if args.retrieval_only:
        cmd.append("--retrieval-only")
    if args.profile:
        cmd += ["--profile", args.profile]
    cmd += extra
    print("+", " ".join(cmd), flush=True)
    started = time.time()
    rc = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy()).returncode
    print(f"{name}: exit {rc} in {time.time() - started:.0f} s", flush=True)
    if (out / "results.json").exists():
        write_table()
    return rc


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def write_table(results_dir: Path = RESULTS_DIR, target: Path = TABLE) -> None:
    """RESULTS.md: every collection run under results_dir, one row each, then their per-kind tables."""
    runs = []
    for path in sorted(results_dir.glob("*/results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        runs.append((path.parent, data))
    lines = [
        "# docqa on the eval collections",
        "",
        "Written by `python eval/collections/run.py` (see its docstring and `eval/README.md`, section",
        '"Collections beyond the essay"); each row is a run folder under `eval/results/collections/`.',
        "Retrieval-only runs measure retrieval and the score gate alone, so their generation columns",
        "are blank and their abstention is the gate's.",
        "",
        "| run | set | mode | profile | k | " + " | ".join(h for _, h in COLUMNS) + " | date |",
        "|---" * (len(COLUMNS) + 6) + "|",
    ]
    for folder, data in runs:
        c, s = data["config"], data["summary"]
        rel = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
        set_name = Path(c.get("set", "?"))
        set_rel = set_name.relative_to(ROOT) if set_name.is_absolute() and set_name.is_relative_to(ROOT) else set_name
        profile = c.get("profile", "") if c.get("mode") == "full" else "–"
        row = [f"`{rel}`", f"`{set_rel}`", c.get("mode", ""), profile, fmt(c.get("top_k"))]
        row += [fmt(s.get(key)) for key, _ in COLUMNS] + [c.get("date", "")]
        lines.append("| " + " | ".join(row) + " |")
    for folder, data in runs:
        kinds = data.get("by_kind")
        if not kinds:
            continue
        columns = [col for col in next(iter(kinds.values())) if any(r.get(col) is not None for r in kinds.values())]
        lines += ["", f"## {folder.name}", ""]
        lines += ["| kind | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(fmt(r.get(col)) for col in columns) + " |" for k, r in kinds.items()]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} ({len(runs)} runs)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", choices=collections(), help="the collection")
    parser.add_argument("--slice", action="store_true", help="the committed slice (12 questions) instead of all")
    parser.add_argument("--retrieval-only", action="store_true", help="no LLM: retrieval and the score gate")
    parser.add_argument("--profile", choices=["default", "small"], help="generator profile [docqa's default]")
    parser.add_argument("--index", help="index folder [eval/runs/collections/NAME[-slice]/index]")
    parser.add_argument("--out", help="run folder [eval/results/collections/NAME[-slice]-MODE[-PROFILE]]")
    parser.add_argument("--table", action="store_true", help="only rewrite eval/collections/RESULTS.md")
    args = parser.parse_args(argv)
    if args.table:
        write_table()
        return 0
    if args.name is None:
        parser.error("name a collection (or pass --table)")
    return run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
