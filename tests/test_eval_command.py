"""`docqa eval` wiring over the fake pipeline: full, retrieval-only and calibration runs."""

import json

import pytest

from docqa.answering.pipeline import Pipeline
from docqa.evaluate.command import run_eval_command

QUESTIONS = [
    {"id": "a", "question": "When does the tea harvest begin?", "answerable": True, "kind": "fact",
     "expected": [["March"]], "evidence": ["The harvest begins in March"]},
    {"id": "b", "question": "What did Mao Zedong say about tea?", "answerable": False, "kind": "unstated"},
]  # fmt: skip


@pytest.fixture
def eval_set(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return path


@pytest.fixture
def fake_from_settings(monkeypatch, make_pipeline):
    pipeline = make_pipeline("The harvest begins in March [1].")
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings: pipeline))
    return pipeline


def run(settings, eval_set, out, **flags):
    options = {"retrieval_only": False, "calibrate": False, **flags}
    return run_eval_command(settings, eval_set, out, "docqa", None, ["fact_recall=0.9"], None, **options)


def test_full_run_scores_answers_and_abstentions(settings, eval_set, tmp_path, fake_from_settings):
    assert run(settings, eval_set, tmp_path / "out") == []  # fact_recall 1.0 passes the 0.9 bar
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["summary"]["fact_recall"] == 1.0 and results["summary"]["abstention_recall"] == 1.0
    assert results["config"]["mode"] == "full"


def test_retrieval_only_never_calls_the_model(settings, eval_set, tmp_path, monkeypatch, fake_from_settings):
    monkeypatch.setattr(fake_from_settings, "_generator", None)
    monkeypatch.setattr(fake_from_settings, "_load", lambda: pytest.fail("retrieval-only loaded the model"))
    failures = run(settings, eval_set, tmp_path / "out", retrieval_only=True)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["mode"] == "retrieval-only" and results["summary"]["fact_recall"] is None
    assert results["summary"]["evidence_hit@k"] == 1.0 and results["summary"]["abstention_recall"] == 1.0
    assert failures and "fact_recall" in failures[0]  # a metric that was not measured fails its bar


def test_calibrate_writes_min_score(settings, eval_set, tmp_path, fake_from_settings):
    target = tmp_path / "docqa.toml"
    target.touch()
    settings = settings.model_copy(update={"settings_file": target})
    assert run(settings, eval_set, tmp_path / "cal", calibrate=True) == []
    assert "min_score = " in target.read_text() and (tmp_path / "cal" / "calibration.png").exists()
