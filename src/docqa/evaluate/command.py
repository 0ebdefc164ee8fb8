"""`docqa eval`: wires the eval runner to a pipeline, a progress bar and the output folder."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docqa.evaluate import runner as ev
from docqa.settings import DEFAULT_SETTINGS_FILE, Settings, update_toml
from docqa.types import Answer

# Metrics a run without generation can't measure: reported as "-", not as zeros.
GENERATION_METRICS = (
    "fact_recall",
    "token_f1",
    "citation_precision",
    "citation_recall",
    "answered_correct_cited",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "decode_tok_s",
)


def run_eval_command(
    settings: Settings,
    set_path: Path,
    out_dir: Path | None,
    system: str,
    compare_path: Path | None,
    fail_under: list[str],
    limit: int | None,
    retrieval_only: bool,
    calibrate: bool,
) -> list[str]:
    """Run one eval; returns the --fail-under rules that failed."""
    from tqdm import tqdm

    from docqa.answering.pipeline import Pipeline

    questions = ev.load_questions(set_path)[:limit]
    out_dir = out_dir or Path("eval/runs") / time.strftime("%Y%m%d-%H%M%S")
    pipeline = Pipeline.from_settings(settings)
    generating = not (calibrate or retrieval_only)
    ask, k = choose_ask(pipeline, system, generating)
    bar = lambda items: tqdm(items, desc=f"eval {system}", unit="q", file=sys.stderr)  # noqa: E731
    records, summary = ev.run_eval(questions, ask, k, progress=bar)
    if not generating:
        summary.update(dict.fromkeys(GENERATION_METRICS))
    if calibrate:
        write_calibration(settings, records, out_dir)
        return []
    config = {
        "set": str(set_path),
        "system": system,
        "mode": "full" if generating else "retrieval-only",
        "profile": settings.profile,
        "model": pipeline.model_name if generating else "-",
        "retrieval": settings.retrieval,
        "top_k": k,
        "min_score": settings.min_score,
        "questions": len(questions),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    compare = None
    if compare_path is not None:
        compare = {"path": str(compare_path), **json.loads(compare_path.read_text(encoding="utf-8"))}
    ev.write_report(out_dir, records, summary, config, compare)
    ev.print_table(summary)
    print(f"wrote {out_dir}/results.json, report.md, chart.png")
    return ev.check_fail_under(summary, fail_under)


def choose_ask(pipeline: Any, system: str, generating: bool) -> tuple[Callable[..., Answer], int]:
    """The question -> Answer function the run scores, and the k its retrieval metrics use.

    The runner calls it as ask(question, history) for follow-ups; each of these takes that.
    """
    if not generating:
        return functools.partial(pipeline.ask, retrieval_only=True), pipeline.settings.top_k
    if system == "naive":
        from docqa.evaluate.baseline import build_naive

        return build_naive(pipeline.settings, pipeline.embedder, pipeline.generator), 2  # the starter engine's top-k
    pipeline.generator  # load before the clock starts  # noqa: B018
    return pipeline.ask, pipeline.settings.top_k


def write_calibration(settings: Settings, records: list[dict[str, Any]], out_dir: Path) -> None:
    """Pick min_score from the run's best scores, write it to the settings file, and chart the curve."""
    threshold, curve = ev.calibrate([(r["best_score"] or 0.0, r["answerable"]) for r in records])
    target = settings.settings_file or Path(DEFAULT_SETTINGS_FILE)
    update_toml(target, {"min_score": round(threshold, 4)})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.json").write_text(json.dumps({"threshold": threshold, "curve": curve}, indent=2))
    ev.write_calibration_chart(out_dir / "calibration.png", curve, threshold)
    chosen = next(c for c in curve if c["threshold"] == threshold)
    print(
        f"min_score = {threshold:.4f}: keeps {chosen['answerable_kept']:.0%} of answerable questions"
        f" and abstains on {chosen['unanswerable_abstained']:.0%} of unanswerable ones (by retrieval score alone)"
    )
    print(f"written to {target}; curve in {out_dir / 'calibration.png'}")
