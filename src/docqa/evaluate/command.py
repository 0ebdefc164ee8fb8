"""`docqa eval`: wires the eval runner to a pipeline, a progress bar and the output folder."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

from docqa.evaluate import runner as ev
from docqa.settings import DEFAULT_SETTINGS_FILE, Settings, update_toml


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
    compare = None
    if compare_path is not None:
        compare = {"path": str(compare_path), **json.loads(compare_path.read_text(encoding="utf-8"))}
    out_dir = out_dir or Path("eval/runs") / time.strftime("%Y%m%d-%H%M%S")
    pipeline = Pipeline.from_settings(settings)
    k = settings.top_k

    if calibrate or retrieval_only:
        ask = functools.partial(pipeline.ask, retrieval_only=True)
    elif system == "naive":
        from docqa.evaluate.baseline import build_naive

        ask = build_naive(settings, pipeline.embedder, pipeline.generator)
        k = 2  # the starter query engine's similarity_top_k
    else:
        ask = pipeline.ask
        pipeline.generator  # load before the clock starts  # noqa: B018

    bar = lambda items: tqdm(items, desc=f"eval {system}", unit="q", file=sys.stderr)  # noqa: E731
    records, summary = ev.run_eval(questions, ask, k, progress=bar)
    if calibrate or retrieval_only:
        for key in (
            "fact_recall",
            "token_f1",
            "citation_precision",
            "citation_recall",
            "ttft_p50_ms",
            "ttft_p95_ms",
            "decode_tok_s",
        ):
            summary[key] = None
    config = {
        "set": str(set_path),
        "system": system,
        "mode": "retrieval-only" if (calibrate or retrieval_only) else "full",
        "profile": settings.profile,
        "model": pipeline.model_name if not (calibrate or retrieval_only) else "-",
        "retrieval": settings.retrieval,
        "top_k": k,
        "min_score": settings.min_score,
        "questions": len(questions),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if calibrate:
        threshold, curve = ev.calibrate([(r["best_score"] or 0.0, r["answerable"]) for r in records])
        target = settings.settings_file or Path(DEFAULT_SETTINGS_FILE)
        update_toml(target, {"min_score": round(threshold, 4)})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "calibration.json").write_text(json.dumps({"threshold": threshold, "curve": curve}, indent=2))
        ev.write_calibration_chart(out_dir / "calibration.png", curve, threshold)
        chosen = next(c for c in curve if c["threshold"] == threshold)
        print(
            f"min_score = {threshold:.4f}: keeps {chosen['answerable_kept']:.0%} of answerable questions"
            " and abstains on "
            f"{chosen['unanswerable_abstained']:.0%} of unanswerable ones (by retrieval score alone)"
        )
        print(f"written to {target}; curve in {out_dir / 'calibration.png'}")
        return []
    ev.write_report(out_dir, records, summary, config, compare)
    ev.print_table(summary)
    print(f"wrote {out_dir}/results.json, report.md, chart.png")
    return ev.check_fail_under(summary, fail_under)
