"""The eval runner's collection keys (history, source, page) and its per-kind table, on hand-computed cases."""

import functools
import json

import pytest

from docqa.errors import SettingsError
from docqa.evaluate import baseline
from docqa.evaluate import runner as ev
from docqa.types import Passage
from support import fake_answer, passage


def P(n: int, text: str, source: str = "a.html", page: int | None = None) -> Passage:
    return passage(n, text, source, page)


answer = fake_answer


def write_set(tmp_path, rows: list[dict]):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


BASE = {"id": "x1", "question": "q?", "answerable": True, "expected": [["a"]], "evidence": ["the a span"]}


# ---- loading ---------------------------------------------------------------------------------


def test_loads_history_source_and_page(tmp_path):
    rows = [
        {**BASE, "id": "f1", "kind": "follow_up", "history": [["Which tool?", "asn1Parser."]], "source": "x.pdf"},
        {**BASE, "id": "p1", "evidence": ["s1", "s2"], "expected": [["a"], ["b"]], "page": [8, 10]},
        {**BASE, "id": "p2", "page": 4, "source": "sub/y.pdf"},
    ]
    f1, p1, p2 = ev.load_questions(write_set(tmp_path, rows))
    assert f1.history == (("Which tool?", "asn1Parser."),) and f1.source == "x.pdf" and f1.page == ()
    assert p1.page == (8, 10) and p1.history == () and p1.source is None
    assert p2.page == (4,) and p2.source == "sub/y.pdf"


@pytest.mark.parametrize(
    "bad",
    [
        {"history": "Which tool?"},  # not a list
        {"history": [["only the question"]]},  # not a pair
        {"history": [["q", ""]]},  # empty answer
        {"history": [["q", 3]]},  # not a string
        {"page": 0},  # pages are 1-based
        {"page": "4"},
        {"page": True},
        {"page": [8, 10]},  # two pages for one evidence span
        {"page": []},
        {"source": ""},
        {"source": 7},
        {"source": "/etc/passwd"},
        {"source": "../x.pdf"},
        {"kind": "follow_up"},  # a follow-up needs its history
    ],
)
def test_bad_collection_keys_name_the_line(tmp_path, bad):
    path = write_set(tmp_path, [{**BASE, "id": "ok"}, {**BASE, **bad}])
    with pytest.raises(SettingsError) as err:
        ev.load_questions(path)
    assert f"{path}:2" in str(err.value)


def test_every_collection_question_set_loads():
    from pathlib import Path

    sets = sorted(Path("eval/collections").glob("*/questions.jsonl")) + sorted(
        Path("eval/collections").glob("*/slice/questions.jsonl")
    )
    assert len(sets) >= 4
    for path in sets:
        qs = ev.load_questions(path)
        assert all(q.history for q in qs if q.kind == "follow_up")
        assert all(q.source for q in qs if q.answerable)


# ---- asking ----------------------------------------------------------------------------------


def test_follow_ups_are_asked_with_their_history_others_without():
    calls = []

    def ask(question, *args, **kwargs):
        calls.append((question, args, kwargs))
        return answer("a [1]", [P(1, "the a span")], [1])

    qs = [
        ev.EvalQuestion("q1", "first?", True, [["a"]], ["the a span"]),
        ev.EvalQuestion("q2", "and then?", True, [["a"]], ["the a span"], "follow_up", history=(("first?", "a."),)),
    ]
    ev.run_eval(qs, ask, k=4)
    assert calls == [("first?", (), {}), ("and then?", ([("first?", "a.")],), {})]


def test_retrieval_only_partial_takes_history():
    seen = {}

    def pipeline_ask(question, history=None, **options):
        seen.update(question=question, history=history, **options)
        return answer("", [P(1, "the a span")], [])

    q = ev.EvalQuestion("q2", "and then?", True, [["a"]], ["the a span"], "follow_up", history=(("first?", "a."),))
    ev.run_eval([q], functools.partial(pipeline_ask, retrieval_only=True), k=4)
    assert seen == {"question": "and then?", "history": [("first?", "a.")], "retrieval_only": True}


def test_naive_baseline_accepts_and_ignores_history():
    class Node:
        node_id, metadata = "n1", {"file_name": "a.txt"}

        def get_content(self):
            return "the a span"

    class Source:
        node, score = Node(), 0.4

    class Response:
        source_nodes = [Source()]

        def __str__(self):
            return "It is a."

    class Engine:
        def query(self, question):
            self.asked = question
            return Response()

    class Gen:
        name = "fake"

    engine = Engine()
    ask = functools.partial(baseline.naive_answer, engine, Gen())
    q = ev.EvalQuestion("q2", "and then?", True, [["a"]], ["the a span"], "follow_up", history=(("first?", "a."),))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(baseline, "count_text_tokens", lambda gen, text: 3)
        records, _ = ev.run_eval([q], ask, k=2)
    assert engine.asked == "and then?" and records[0]["fact_recall"] == 1.0


# ---- scoring by kind ---------------------------------------------------------------------------

EV = "the default is 8000 bytes"
FACT = ev.EvalQuestion("f1", "size?", True, [["8000"]], [EV], "number", source="notify.html")
FACT2 = ev.EvalQuestion("f2", "size again?", True, [["8000"], ["bytes"]], [EV], "number", source="notify.html")
LIST = ev.EvalQuestion("l1", "which?", True, [["alpha"], ["beta"]], ["alpha and beta both"], "list")
OOS = ev.EvalQuestion("r1", "weather?", False, kind="out_of_scope")
NEAR = ev.EvalQuestion("r2", "pg 17?", False, kind="near_miss")
NEAR2 = ev.EvalQuestion("r3", "pg 16?", False, kind="near_miss")


def scored():
    hit = P(1, "notify: " + EV, "notify.html")
    other = P(2, "unrelated text", "other.html")
    return [
        # f1: evidence at rank 2, all facts, cites [1] (evidence) and [2] (not): correct and cited
        ev.score_one(FACT, answer("8000 bytes [1][2].", [other, hit], [1, 2]), k=4),
        # f2: evidence at rank 1, one fact of two: not correct; cites the evidence
        ev.score_one(FACT2, answer("It is 8000 [1].", [hit, other], [1]), k=4),
        # l1: evidence not retrieved; both facts but cites only a passage without evidence
        ev.score_one(LIST, answer("alpha, beta [2].", [other], [2]), k=4),
        ev.score_one(OOS, answer("No.", [other], [], abstained=True, reason="low score"), k=4),
        ev.score_one(NEAR, answer("No.", [], [], abstained=True, reason="not in the documents"), k=4),
        ev.score_one(NEAR2, answer("pg 16 adds it [2].", [other], [2]), k=4),
    ]


def test_correct_cited_per_question():
    f1, f2, l1, *_ = scored()
    assert (f1["correct_cited"], f2["correct_cited"], l1["correct_cited"]) == (True, False, False)
    assert f1["source_rank"] == 2 and f2["source_rank"] == 1 and "source_rank" not in l1


def test_headline_answered_correct_cited():
    summary = ev.aggregate(scored(), 0.0)
    assert summary["answered_correct_cited"] == pytest.approx(1 / 3)
    assert summary["false_abstention_rate"] == 0.0
    # cites: f1 2 (1 good), f2 1 (1 good), l1 1 (0 good) -> 2/4
    assert summary["citation_precision"] == pytest.approx(0.5)
    assert summary["abstention_recall"] == pytest.approx(2 / 3)


def test_by_kind_by_hand():
    kinds = ev.by_kind(scored())
    assert list(kinds) == ["number", "list", "out_of_scope", "near_miss"]
    number = kinds["number"]
    assert number["questions"] == 2
    assert number["evidence_hit@k"] == 1.0
    assert number["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert number["fact_recall"] == 0.5  # per question 1 if every fact is there, else 0
    assert number["citation_precision"] == pytest.approx(2 / 3)  # 3 citations, 2 with evidence
    assert number["citation_recall"] == 1.0
    assert number["answered_correct_cited"] == 0.5
    assert number["false_abstention_rate"] == 0.0
    assert number["abstention_rate"] is None
    lst = kinds["list"]
    assert (lst["evidence_hit@k"], lst["mrr"], lst["fact_recall"]) == (0.0, 0.0, 1.0)
    assert (lst["citation_precision"], lst["answered_correct_cited"]) == (0.0, 0.0)
    assert kinds["out_of_scope"]["abstention_rate"] == 1.0
    assert kinds["near_miss"]["abstention_rate"] == 0.5 and kinds["near_miss"]["questions"] == 2
    assert kinds["near_miss"]["fact_recall"] is None and kinds["near_miss"]["evidence_hit@k"] is None


def test_by_kind_false_abstention():
    rs = [
        ev.score_one(FACT, answer("No.", [], [], abstained=True, reason="low score"), k=4),
        ev.score_one(FACT2, answer("8000 bytes [1].", [P(1, EV, "notify.html")], [1]), k=4),
    ]
    number = ev.by_kind(rs)["number"]
    assert number["false_abstention_rate"] == 0.5 and number["answered_correct_cited"] == 0.5
    assert number["fact_recall"] == 0.5  # an abstention scores 0


def test_by_kind_retrieval_only_blanks_generation_metrics():
    number = ev.by_kind(scored(), generating=False)["number"]
    assert number["evidence_hit@k"] == 1.0 and number["false_abstention_rate"] == 0.0
    assert all(number[key] is None for key in ev.KIND_GENERATION)


def test_report_has_the_kind_table(tmp_path):
    records = scored()
    summary = ev.aggregate(records, 0.0)
    ev.write_report(tmp_path, records, summary, {"set": "s.jsonl", "mode": "full"})
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["by_kind"]["near_miss"]["abstention_rate"] == 0.5
    assert results["summary"]["answered_correct_cited"] == pytest.approx(1 / 3)
    report = (tmp_path / "report.md").read_text()
    table = report.split("## By kind")[1]
    header = table.strip().splitlines()[0]
    assert "answered_correct_cited" in header and "abstention_rate" in header and "citation_precision" in header
    assert "| near_miss | 2 |" in table
    assert "| number | 2 | 1.000 | 1.000 | 0.750 | 0.500 | 0.667 | 1.000 | 0.500 | 0.000 | – |" in table
