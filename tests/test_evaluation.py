"""The eval metrics on tiny cases computed by hand, and the runner end to end on fakes."""

import json

import pytest

from docqa.errors import SettingsError
from docqa.evaluate import metrics as m
from docqa.evaluate import runner as ev
from support import fake_answer as answer
from support import passage as P

Q1 = ev.EvalQuestion("q1", "rate in 2019?", True, [["60.60%", "60.6%"], ["2019"]], ["rate was 60.60% in 2019"])
Q2 = ev.EvalQuestion("q2", "population?", True, [["550 million"]], ["dropped to 550 million"])
U1 = ev.EvalQuestion("u1", "egg?", False)
U2 = ev.EvalQuestion("u2", "GDP?", False)


def test_fact_recall_and_f1_by_hand():
    assert m.fact_recall("It was 60.6% in 2019 [1].", Q1.expected) == 1.0
    assert m.fact_recall("It was 60.6% [1].", Q1.expected) == 0.0
    # answer tokens {rate, 60.60, 2019, high}; gold {60.60, 2019}: P = 2/4, R = 1, F1 = 2/3
    assert m.token_f1("The rate: 60.60% in 2019, high", Q1.expected) == pytest.approx(2 / 3)


def test_retrieval_metrics_by_hand():
    texts = ["tea", "the rate was 60.60% in 2019 overall", "rice"]
    assert m.evidence_rank(texts, Q1.evidence) == 2
    assert m.evidence_hit(texts, Q1.evidence, 1) == 0.0 and m.evidence_hit(texts, Q1.evidence, 2) == 1.0
    assert m.percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48)


def test_aggregate_by_hand():
    good = [P(1, "tea"), P(2, "the rate was 60.60% in 2019 overall")]
    records = [
        # q1: evidence at rank 2, all facts, cites 2 (evidence) and 1 (not): precision 1/2
        ev.score_one(Q1, answer("60.60% in 2019 [2][1].", good, [2, 1]), k=4),
        # q2: evidence not retrieved, abstained falsely
        ev.score_one(Q2, answer("The documents don't answer.", [P(1, "tea")], [], abstained=True), k=4),
        ev.score_one(U1, answer("The documents don't answer.", [], [], abstained=True), k=4),
        ev.score_one(U2, answer("GDP grew 6%.", [P(1, "tea")], [1]), k=4),
    ]
    s = ev.aggregate(records, peak_rss_mb=100.0)
    assert s["evidence_hit@k"] == 0.5 and s["mrr"] == pytest.approx((1 / 2 + 0) / 2)
    assert s["fact_recall"] == 0.5
    assert s["citation_precision"] == 0.5  # 1 of the 2 citations on answerable questions holds evidence
    assert s["citation_recall"] == 0.5  # q1 cites evidence, q2 does not
    assert s["abstention_precision"] == 0.5  # abstained on q2 (wrong) and u1 (right)
    assert s["abstention_recall"] == 0.5  # u1 abstained, u2 answered
    assert s["false_abstention_rate"] == 0.5
    assert s["ttft_p50_ms"] == 1000.0 and s["total_p50_ms"] == 3000.0
    assert s["decode_tok_s"] == pytest.approx(20 / 2.0)  # 20 tokens after the first, over 2 s
    assert records[1]["problems"] == ["evidence not retrieved", "abstained (None)"]
    assert records[3]["problems"] == ["answered a question that should be abstained"]


def test_calibrate_separates():
    t, curve = ev.calibrate([(0.8, True), (0.6, True), (0.35, True), (0.3, False), (0.1, False)])
    assert 0.3 < t <= 0.35
    best = next(c for c in curve if c["threshold"] == t)
    assert best["answerable_kept"] == 1.0 and best["unanswerable_abstained"] == 1.0


def test_fail_under_and_bad_rule():
    assert ev.check_fail_under({"fact_recall": 0.9}, ["fact_recall=0.8"]) == []
    assert ev.check_fail_under({"false_abstention_rate": 0.2}, ["false_abstention_rate=0.1"])
    with pytest.raises(SettingsError, match="--fail-under"):
        ev.check_fail_under({"fact_recall": 0.9}, ["nope=1"])


def test_load_questions_validates(tmp_path):
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "a", "question": "q", "answerable": true, "expected": [["x"]]}\n')
    with pytest.raises(SettingsError, match="evidence"):
        ev.load_questions(f)
    f.write_text(
        '{"id": "a", "question": "q", "answerable": false}\n{"id": "a", "question": "r", "answerable": false}\n'
    )
    with pytest.raises(SettingsError, match="duplicate"):
        ev.load_questions(f)


def test_bundled_eval_set_is_valid_and_grounded():
    from pathlib import Path

    root = Path(__file__).parents[1]
    questions = ev.load_questions(root / "eval" / "questions.jsonl")
    essay = (root / "docs" / "poverty-alleviation-and-rural-revitalization.txt").read_text(encoding="utf-8")
    assert sum(q.answerable for q in questions) >= 40 and sum(not q.answerable for q in questions) >= 10
    for q in questions:
        for span in q.evidence:
            assert span in essay, (q.id, span)


def test_runner_writes_outputs_and_compare(tmp_path, make_pipeline):
    questions = [
        ev.EvalQuestion("q1", "When were the Hani terraces listed?", True, [["2013"]], ["World Heritage site in 2013"]),
        ev.EvalQuestion("u1", "Who won the football world cup?", False),
    ]
    pipeline = make_pipeline("The terraces were listed in 2013 [1].", min_score=0.3)
    records, summary = ev.run_eval(questions, pipeline.ask, k=4)
    assert summary["fact_recall"] == 1.0 and summary["abstention_recall"] == 1.0
    ev.write_report(tmp_path / "run1", records, summary, {"set": "tiny"})
    old = json.loads((tmp_path / "run1" / "results.json").read_text())
    ev.write_report(tmp_path / "run2", records, summary, {"set": "tiny"}, compare={"path": "run1", **old})
    report = (tmp_path / "run2" / "report.md").read_text()
    assert "Compared with run1" in report and "| fact_recall | 1.000 | 1.000 | +0.000 |" in report
    assert (tmp_path / "run2" / "chart.png").read_bytes()[:4] == b"\x89PNG"
