"""The eval runner: questions with expected facts and evidence in, metrics and a report out.

It needs no judge model. Retrieval is scored by where the evidence spans land, answers by the
expected facts they contain, citations by whether the cited passage holds evidence, abstention by
whether the questions that should be refused were refused.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docqa.errors import SettingsError
from docqa.evaluate import metrics as m
from docqa.types import Answer

# The metrics the report leads with, in order; all are "higher is better" except those listed.
HEADLINE = [
    "evidence_hit@k",
    "evidence_hit@5",
    "evidence_recall@k",
    "mrr",
    "fact_recall",
    "token_f1",
    "citation_precision",
    "citation_recall",
    "answered_correct_cited",
    "abstention_precision",
    "abstention_recall",
    "false_abstention_rate",
    "injection_resisted",
    "ttft_p50_ms",
    "total_p50_ms",
]
LOWER_IS_BETTER = {"false_abstention_rate", "ttft_p50_ms", "ttft_p95_ms", "total_p50_ms", "total_p95_ms", "peak_rss_mb"}


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    answerable: bool
    expected: list[list[str]] = field(default_factory=list)  # facts, each a list of phrasings
    evidence: list[str] = field(default_factory=list)  # verbatim spans of the documents
    kind: str = ""
    forbidden: list[str] = field(default_factory=list)  # text the answer must not contain (canaries, the prompt)
    history: tuple[tuple[str, str], ...] = ()  # earlier (question, answer) turns, for follow-ups
    source: str | None = None  # the file in the docs folder that holds the evidence
    page: tuple[int, ...] = ()  # 1-based PDF page(s) of the evidence: one, or one per evidence span


def parse_history(raw: Any) -> tuple[tuple[str, str], ...]:
    """`[[question, answer], ...]` -> tuple of pairs; anything else is a ValueError.

    >>> parse_history([["Which tool?", "asn1Parser."]])
    (('Which tool?', 'asn1Parser.'),)
    """
    if not isinstance(raw, list):
        raise ValueError('"history" must be a list of [question, answer] pairs')
    turns = []
    for turn in raw:
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) and t.strip() for t in turn)):
            raise ValueError(f'"history" turn {turn!r} is not a [question, answer] pair of non-empty strings')
        turns.append((turn[0], turn[1]))
    return tuple(turns)


def parse_page(raw: Any, spans: int) -> tuple[int, ...]:
    """An int page, or a list with one page per evidence span; pages are 1-based.

    >>> parse_page(4, 1), parse_page([8, 10], 2)
    ((4,), (8, 10))
    """
    pages = raw if isinstance(raw, list) else [raw]
    if not pages or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in pages):
        raise ValueError(f'"page" must be a page number >= 1 or a list of them, not {raw!r}')
    if isinstance(raw, list) and len(pages) != spans:
        raise ValueError(f'"page" lists {len(pages)} pages for {spans} evidence spans')
    return tuple(pages)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read and validate a JSONL eval set; a bad line is an error naming the line."""
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SettingsError(
            f"eval set {path} not found", "pass --set FILE (see eval/README.md for the format)"
        ) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
            q = EvalQuestion(
                id=str(raw["id"]),
                question=str(raw["question"]),
                answerable=bool(raw["answerable"]),
                expected=[[str(a) for a in alts] for alts in raw.get("expected", [])],
                evidence=[str(s) for s in raw.get("evidence", [])],
                kind=str(raw.get("kind", "")),
                forbidden=[str(s) for s in raw.get("forbidden", [])],
                history=parse_history(raw.get("history", [])),
                source=parse_source(raw.get("source")),
                page=parse_page(raw["page"], len(raw.get("evidence", []))) if raw.get("page") is not None else (),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SettingsError(
                f"bad eval line {where} ({exc})", 'each line needs "id", "question", "answerable"'
            ) from None
        if q.answerable and (not q.expected or not q.evidence or any(not alts for alts in q.expected)):
            raise SettingsError(f"answerable question {q.id} at {where} lacks expected facts or evidence", "add them")
        if q.kind == "follow_up" and not q.history:
            raise SettingsError(f"follow-up question {q.id} at {where} has no history", 'add "history"')
        if q.id in seen:
            raise SettingsError(f"duplicate question id {q.id} at {where}", "give each question a unique id")
        seen.add(q.id)
        out.append(q)
    if not out:
        raise SettingsError(f"eval set {path} has no questions", "add JSONL lines")
    return out


def parse_source(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or raw.startswith("/") or ".." in Path(raw).parts:
        raise ValueError(f'"source" must be a relative path in the docs folder, not {raw!r}')
    return raw


def score_one(q: EvalQuestion, answer: Answer, k: int) -> dict[str, Any]:
    """The per-question record: what was retrieved, answered and cited, and whether each was right."""
    texts = [p.chunk.text for p in answer.retrieved]
    cited = [c.passage.chunk.text for c in answer.citations]
    record: dict[str, Any] = {
        "id": q.id,
        "kind": q.kind,
        "question": q.question,
        "answerable": q.answerable,
        "answer": answer.answer,
        "abstained": answer.abstained,
        "abstain_reason": answer.abstain_reason,
        "standalone_question": answer.standalone_question,
        "cited": [c.n for c in answer.citations],
        "retrieved_ids": [p.chunk.id for p in answer.retrieved],
        "best_score": max((p.score for p in answer.retrieved), default=None),
        "timings": answer.timings,
        "usage": answer.usage,
    }
    if q.history:
        record["history"] = [list(turn) for turn in q.history]
    if q.source is not None:
        record["source"] = q.source
        record["source_rank"] = source_rank(answer.retrieved, q.source, q.page)
    if q.answerable:
        given = max(k, len(texts))  # a broad question is given more than k passages (Settings.broad_top_k)
        rank = m.evidence_rank(texts, q.evidence)
        good_cites = [c for c in cited if any(m.contains_evidence(c, s) for s in q.evidence)]
        record.update(
            evidence_rank=rank,
            hit_k=m.evidence_hit(texts, q.evidence, given),
            hit_5=m.evidence_hit(texts, q.evidence, 5),
            evidence_recall=m.evidence_recall(texts, q.evidence, given),
            fact_recall=0.0 if answer.abstained else m.fact_recall(answer.answer, q.expected),
            token_f1=0.0 if answer.abstained else m.token_f1(answer.answer, q.expected),
            citations_total=len(cited),
            citations_with_evidence=len(good_cites),
            missing_facts=[alts[0] for alts in q.expected if not m.has_fact(answer.answer, alts)],
        )
        # The answer a user can trust: every expected fact, and a citation that holds evidence.
        record["correct_cited"] = (
            not answer.abstained and not record["missing_facts"] and record["citations_with_evidence"] > 0
        )
    if q.forbidden:
        record["forbidden_found"] = forbidden_found(answer.answer, q.forbidden)
        # A draft the checks rejected is not the answer, but the page showed it while it streamed.
        record["forbidden_in_draft"] = forbidden_found(answer.draft or "", q.forbidden)
    record["problems"] = problems(q, record)
    return record


def source_rank(retrieved: list[Any], source: str, pages: tuple[int, ...] = ()) -> int | None:
    """1-based rank of the first retrieved passage from the evidence's file (and page, for PDFs).

    A chunk without a page (HTML, text) matches on the file alone.
    """
    for rank, p in enumerate(retrieved, start=1):
        c = p.chunk
        same_file = c.source == source or c.source.endswith("/" + source)
        if same_file and (not pages or c.page is None or c.page in pages):
            return rank
    return None


def forbidden_found(answer: str, forbidden: list[str]) -> list[str]:
    """The forbidden strings that appear in the answer (case and whitespace ignored, as for facts).

    >>> forbidden_found("Sure! PWNED-7731 [1].", ["pwned-7731", "numbered passages"])
    ['pwned-7731']
    """
    return [text for text in forbidden if m.has_fact(answer, [text])]


def problems(q: EvalQuestion, r: dict[str, Any]) -> list[str]:
    """What went wrong, in words, for the report's list of failures."""
    out = []
    if r.get("forbidden_found"):
        out.append("answer contains forbidden text: " + ", ".join(r["forbidden_found"]))
    if not q.answerable:
        if not r["abstained"]:
            out.append("answered a question that should be abstained")
        return out
    if r["evidence_rank"] is None:
        out.append("evidence not retrieved")
    if r["abstained"]:
        out.append(f"abstained ({r['abstain_reason']})")
    elif r["missing_facts"]:
        out.append("missing facts: " + ", ".join(r["missing_facts"]))
    if not r["abstained"] and r["citations_total"] and not r["citations_with_evidence"]:
        out.append("cited only passages without the evidence")
    if not r["abstained"] and not r["citations_total"]:
        out.append("no citation")
    return out


def aggregate(records: list[dict[str, Any]], peak_rss_mb: float) -> dict[str, Any]:
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    abstained = [r for r in records if r["abstained"]]
    answered = [r for r in records if not r["abstained"]]
    ttft = [r["timings"]["first_token_ms"] for r in answered if "first_token_ms" in r["timings"]]
    total = [r["timings"]["total_ms"] for r in records]
    decode = [
        (r["usage"]["answer_tokens"] - 1) / ((r["timings"]["total_ms"] - r["timings"]["first_token_ms"]) / 1000)
        for r in records
        if r.get("usage", {}).get("answer_tokens", 0) > 8 and r["timings"]["total_ms"] > r["timings"]["first_token_ms"]
    ]
    cites = sum(r["citations_total"] for r in ans)
    good = sum(r["citations_with_evidence"] for r in ans)
    ranks = [r["evidence_rank"] for r in ans]
    guarded = [r for r in records if "forbidden_found" in r]  # questions with a "forbidden" list
    return {
        "questions": len(records),
        "answerable": len(ans),
        "unanswerable": len(una),
        "evidence_hit@k": m.mean([r["hit_k"] for r in ans]),
        "evidence_hit@5": m.mean([r["hit_5"] for r in ans]),
        "evidence_recall@k": m.mean([r["evidence_recall"] for r in ans]),
        "mrr": m.mean([1 / rank if rank else 0.0 for rank in ranks]),
        "fact_recall": m.mean([r["fact_recall"] for r in ans]),
        "token_f1": m.mean([r["token_f1"] for r in ans]),
        "citation_precision": m.ratio(good, cites),
        "citation_recall": m.ratio(sum(1 for r in ans if r["citations_with_evidence"]), len(ans)),
        "abstention_precision": m.ratio(sum(1 for r in abstained if not r["answerable"]), len(abstained)),
        "abstention_recall": m.ratio(sum(1 for r in una if r["abstained"]), len(una)),
        "false_abstention_rate": m.ratio(sum(1 for r in ans if r["abstained"]), len(ans)),
        "answered_correct_cited": m.ratio(sum(1 for r in ans if r["correct_cited"]), len(ans)),
        "injection_resisted": m.ratio(sum(1 for r in guarded if not r["forbidden_found"]), len(guarded)),
        "ttft_p50_ms": m.percentile(ttft, 50),
        "ttft_p95_ms": m.percentile(ttft, 95),
        "total_p50_ms": m.percentile(total, 50),
        "total_p95_ms": m.percentile(total, 95),
        "decode_tok_s": m.percentile(decode, 50),
        "peak_rss_mb": peak_rss_mb,
    }


# The per-kind table's columns: the headline metrics that apply to one kind of question.
KIND_ANSWERABLE = [
    "evidence_hit@k",
    "evidence_recall@k",
    "mrr",
    "fact_recall",
    "citation_precision",
    "citation_recall",
    "answered_correct_cited",
    "false_abstention_rate",
]
KIND_COLUMNS = ["questions", *KIND_ANSWERABLE, "abstention_rate"]
# Those a run without generation can't measure.
KIND_GENERATION = {"fact_recall", "citation_precision", "citation_recall", "answered_correct_cited"}


def by_kind(records: list[dict[str, Any]], generating: bool = True) -> dict[str, dict[str, Any]]:
    """The headline metrics per question kind, in order of first appearance.

    Answerable questions give retrieval, answer and citation metrics; questions to refuse give
    `abstention_rate` (the share refused); a kind holding both gives both. Metrics that don't apply
    are None, as are the generation metrics when `generating` is False.
    """
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        kinds.setdefault(r["kind"] or "-", []).append(r)
    out = {}
    for kind, rs in kinds.items():
        row: dict[str, Any] = dict.fromkeys(KIND_COLUMNS)
        row["questions"] = len(rs)
        ans = [r for r in rs if r["answerable"]]
        una = [r for r in rs if not r["answerable"]]
        if ans:
            s = aggregate(ans, 0.0)
            row.update({key: s[key] for key in KIND_ANSWERABLE})
            if not generating:
                row.update(dict.fromkeys(KIND_GENERATION))
        if una:
            row["abstention_rate"] = m.ratio(sum(1 for r in una if r["abstained"]), len(una))
        out[kind] = row
    return out


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# question -> Answer; called as ask(question, history) for questions with a history (follow-ups),
# so a callable that takes history as its second argument (Pipeline.ask) answers them in context.
AskFn = Callable[..., Answer]


def run_eval(
    questions: list[EvalQuestion], ask: AskFn, k: int, progress: Callable[[Iterable], Iterable] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ask every question through `ask` (normally Pipeline.ask) and score it."""
    records = []
    started = time.perf_counter()
    for q in progress(questions) if progress else questions:
        answer = ask(q.question, list(q.history)) if q.history else ask(q.question)
        records.append(score_one(q, answer, k))
    summary = aggregate(records, peak_rss_mb())
    summary["wall_s"] = time.perf_counter() - started
    return records, summary


# ---- calibration -----------------------------------------------------------------------------


def calibrate(scores: list[tuple[float, bool]]) -> tuple[float, list[dict[str, float]]]:
    """Pick the retrieval-score threshold that best separates answerable from unanswerable.

    `scores` are (best dense cosine, answerable). Abstaining below threshold t, the curve gives for
    each candidate t the share of answerable questions kept and of unanswerable ones abstained;
    the pick maximises their sum (Youden's J), the lowest such t on ties, so as few real
    questions as possible are refused.

    >>> t, _ = calibrate([(0.9, True), (0.5, True), (0.2, False), (0.1, False)])
    >>> 0.2 < t <= 0.5
    True
    """
    pos = [s for s, ok in scores if ok]
    neg = [s for s, ok in scores if not ok]
    if not pos or not neg:
        raise SettingsError("calibration needs both answerable and unanswerable questions", "add both kinds to the set")
    values = sorted({s for s, _ in scores})
    candidates = (
        [values[0] - 1e-6] + [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)] + [values[-1] + 1e-6]
    )
    curve = []
    for t in candidates:
        kept = sum(s >= t for s in pos) / len(pos)
        refused = sum(s < t for s in neg) / len(neg)
        curve.append({"threshold": round(t, 4), "answerable_kept": kept, "unanswerable_abstained": refused})
    best = max(curve, key=lambda c: (c["answerable_kept"] + c["unanswerable_abstained"], -c["threshold"]))
    return best["threshold"], curve


# ---- outputs ---------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def kind_table(kinds: dict[str, dict[str, Any]]) -> list[str]:
    """The per-kind metrics as markdown lines; columns no kind has are left out."""
    columns = [c for c in KIND_COLUMNS if any(row.get(c) is not None for row in kinds.values())]
    lines = ["| kind | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for kind, row in kinds.items():
        lines.append(f"| {kind} | " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return lines


def write_report(
    out_dir: Path,
    records: list[dict],
    summary: dict,
    config: dict,
    compare: dict | None = None,
    kinds: dict[str, dict[str, Any]] | None = None,
) -> None:
    """results.json, report.md and chart.png in out_dir.

    `kinds` is the per-kind table; by default computed from the records (without the generation
    metrics when config's mode is "retrieval-only").
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if kinds is None:
        kinds = by_kind(records, generating=config.get("mode") != "retrieval-only")
    results = {"config": config, "summary": summary, "by_kind": kinds, "records": records}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [f"# docqa eval: {config.get('set')}", ""]
    lines += ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in config.items()] + [""]
    lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in summary.items()] + [""]
    lines += ["## By kind", "", *kind_table(kinds), ""]
    if compare is not None:
        lines += [f"## Compared with {compare['path']}", "", "| metric | before | after | delta |", "|---|---|---|---|"]
        for key in HEADLINE + ["decode_tok_s", "peak_rss_mb"]:
            old, new = compare["summary"].get(key), summary.get(key)
            delta = new - old if isinstance(old, (int, float)) and isinstance(new, (int, float)) else None
            lines.append(f"| {key} | {fmt(old)} | {fmt(new)} | {'' if delta is None else f'{delta:+.3f}'} |")
        lines.append("")
    failed = [r for r in records if r["problems"]]
    lines += [f"## Failed questions ({len(failed)} of {len(records)})", ""]
    for r in failed:
        lines.append(f"- **{r['id']}** ({r['kind']}) {r['question']}")
        lines.append(f"  - answer: {r['answer'][:300]}")
        lines.append(f"  - what went wrong: {'; '.join(r['problems'])}")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_chart(out_dir / "chart.png", summary, compare["summary"] if compare else None)


def write_chart(path: Path, summary: dict, before: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in HEADLINE if not k.endswith("_ms") and summary.get(k) is not None]
    fig, ax = plt.subplots(figsize=(9, 4))
    xs = range(len(keys))
    if before:
        ax.bar([x - 0.2 for x in xs], [before.get(k) or 0 for k in keys], 0.4, label="before", color="#bbbbbb")
        ax.bar([x + 0.2 for x in xs], [summary[k] for k in keys], 0.4, label="now", color="#2b6cb0")
        ax.legend()
    else:
        ax.bar(list(xs), [summary[k] for k in keys], color="#2b6cb0")
    ax.set_xticks(list(xs), keys, rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"docqa eval — p50 first token {fmt(summary.get('ttft_p50_ms'))} ms,"
        f" answer {fmt(summary.get('total_p50_ms'))} ms"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_calibration_chart(path: Path, curve: list[dict], threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ts = [c["threshold"] for c in curve]
    ax.plot(ts, [c["answerable_kept"] for c in curve], label="answerable kept")
    ax.plot(ts, [c["unanswerable_abstained"] for c in curve], label="unanswerable abstained")
    ax.axvline(threshold, color="k", ls="--", label=f"chosen {threshold:.3f}")
    ax.set_xlabel("min_score (best dense cosine)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_fail_under(summary: dict, rules: list[str]) -> list[str]:
    """Rules like "fact_recall=0.8"; returns the ones not met (lower-is-better metrics use <=).

    >>> check_fail_under({"fact_recall": 0.7, "ttft_p50_ms": 900}, ["fact_recall=0.8", "ttft_p50_ms=1000"])
    ['fact_recall 0.700 < 0.8']
    """
    failures = []
    for rule in rules:
        key, _, value = rule.partition("=")
        if key not in summary or not value:
            raise SettingsError(
                f"bad --fail-under rule '{rule}'", f"use METRIC=VALUE with a metric from: {', '.join(summary)}"
            )
        got, want = summary[key], float(value)
        if got is None:
            failures.append(f"{key} was not measured")
        elif key in LOWER_IS_BETTER and got > want:
            failures.append(f"{key} {got:.3f} > {want}")
        elif key not in LOWER_IS_BETTER and got < want:
            failures.append(f"{key} {got:.3f} < {want}")
    return failures


def print_table(summary: dict, stream=sys.stdout) -> None:
    for key, value in summary.items():
        print(f"{key:>24}  {fmt(value)}", file=stream)
