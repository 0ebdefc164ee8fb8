"""`docqa eval`: wires the eval runner to a pipeline, a progress bar and the output folder; and
`docqa eval --from-feedback`, which turns the web chat's rated answers into draft eval cases."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.evaluate import runner as ev
from docqa.settings import DEFAULT_SETTINGS_FILE, Settings, update_toml
from docqa.types import Answer

if TYPE_CHECKING:
    from docqa.serve.conversations import Feedback

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


# --- draft eval cases from the web chat's thumbs up and down -----------------------------------------

FILL_EXPECTED = (
    'fill "expected" with the key facts a correct answer holds, [["phrasing", "alternative"], ...];'
    ' trim "evidence" to the sentences that answer; then delete "todo", "review" and the fields after them'
)


def draft_case(feedback: Feedback) -> dict[str, Any]:
    """One rated answer as a draft eval case (eval/README.md's format), for a person to finish.

    A thumbs-down becomes a case the answer failed: answerable (the reviewer decides if it is not),
    evidence from the cited passages, `expected` empty and a "todo" saying to fill it, and the
    comment in "review". A thumbs-up becomes a regression case: an answered question like the
    thumbs-down ones, a refusal as an unanswerable case that loads as it is. Follow-ups carry their
    history. What docqa answered, with which passages and settings, follows for reference.
    """
    answer = feedback.answer
    abstained = bool(answer.get("abstained"))
    cited = [p for p in feedback.passages if p.get("cited")]
    answerable = not (feedback.rating == "up" and abstained)
    evidence = list(dict.fromkeys(p["text"] for p in cited)) if answerable else []
    case: dict[str, Any] = {
        "id": f"fb-{feedback.conversation_id[:12]}-{feedback.position + 1}",
        "question": feedback.question,
        "answerable": answerable,
        "kind": "follow_up" if feedback.history else ("feedback" if answerable else "unstated"),
        "expected": [],
        "evidence": evidence,
    }
    if feedback.history:
        case["history"] = feedback.history
    sources = {p["source"] for p in cited}
    if answerable and len(sources) == 1:
        case["source"] = sources.pop()
        pages = [p.get("page") for p in cited if p["text"] in evidence]
        if len(pages) == len(evidence) and all(isinstance(n, int) and n >= 1 for n in pages):
            case["page"] = pages
    if answerable:
        case["todo"] = FILL_EXPECTED if evidence else FILL_EXPECTED + '; add "evidence" (no passage was cited)'
    thumb = "thumbs-down" if feedback.rating == "down" else "thumbs-up"
    said = "refused" if abstained else "answered"
    note = f"{thumb} from {feedback.user}: {feedback.comment or '(no comment)'}"
    if feedback.rating == "down":
        if abstained:
            note += "; docqa refused: if the documents answer it, add the evidence and expected facts"
        else:
            note += "; if the documents don't answer it, set answerable to false and empty expected and evidence"
    else:
        note += f"; docqa {said} well: keep it that way (regression case)"
    case["review"] = note
    case["feedback"] = {
        "rating": feedback.rating,
        "comment": feedback.comment,
        "user": feedback.user,
        "conversation_id": feedback.conversation_id,
        "turn": feedback.position + 1,
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(feedback.updated_at)),
    }
    case["answer_given"] = answer.get("answer", "")
    case["abstained"] = abstained
    case["passages"] = [
        {k: p.get(k) for k in ("n", "cited", "source", "page", "heading", "chunk_id", "score", "text")}
        for p in feedback.passages
    ]
    case["settings"] = feedback.settings
    return case


def run_from_feedback_command(settings: Settings, out_path: Path | None) -> tuple[Path | None, int]:
    """Write every rating in the conversation store as a draft eval case; returns (file, how many).

    Nothing is written when there is no feedback yet (the file is then None).
    """
    from docqa.serve.conversations import ConversationStore

    store = ConversationStore.from_settings(settings)
    try:
        feedback = store.feedback()
    finally:
        store.close()
    if not feedback:
        print(f"no feedback yet in {store.path}: rate answers (thumbs up or down) in the web chat first")
        return None, 0
    name = time.strftime("feedback-%Y%m%d-%H%M%S.jsonl")
    out_path = out_path or Path("eval/drafts") / name
    if out_path.is_dir():
        out_path = out_path / name
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cases = [draft_case(f) for f in feedback]
    out_path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    down = sum(f.rating == "down" for f in feedback)
    todo = sum("todo" in c for c in cases)
    print(
        f"wrote {len(cases)} draft eval cases ({down} thumbs-down, {len(cases) - down} thumbs-up) to {out_path};"
        f' {todo} need "expected" filled in (see each case\'s "todo" and "review") before use with --set'
    )
    return out_path, len(cases)
