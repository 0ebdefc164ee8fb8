"""End to end: the real bundled models through the real pipeline and CLI, with the network blocked.

The first run on a machine converts the GGUF weights into the user cache (about a minute per
model); later runs load the converted copies in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import ROOT, URBANIZATION_Q, docqa, guarded_env, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("index")
    proc = docqa(["index"], path)
    assert proc.returncode == 0, proc.stderr
    assert "chunks from 1 files" in proc.stdout
    return path


def test_factual_question_cited_small_profile(index_dir):
    proc = docqa(["ask", "--json", URBANIZATION_Q], index_dir)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert not answer["abstained"]
    assert "60.6" in answer["answer"]
    assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
    cited = {c["n"] for c in answer["citations"]}
    assert cited <= {p["n"] for p in answer["retrieved"]}
    assert all(f"[{n}]" in answer["answer"] for n in cited)
    assert answer["citations"][0]["source"] == "poverty-alleviation-and-rural-revitalization.txt"
    assert set(answer["timings"]) >= {"retrieve_ms", "first_token_ms", "total_ms"}


def test_out_of_scope_question_abstained(index_dir):
    proc = docqa(["ask", "--json", "How long should I boil an egg for a runny yolk?"], index_dir)
    answer = json.loads(proc.stdout)
    assert answer["abstained"] and answer["citations"] == []


def test_batch_round_trip_in_order(index_dir):
    lines = [
        {"id": "a", "question": URBANIZATION_Q},
        {"id": "b", "question": "Which football club won the 2010 World Cup?"},
        {"id": "c", "question": "   "},
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"
    proc = docqa(["ask", "--batch", "-"], index_dir, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["a", "b", "c", None]
    assert "60.6" in out[0]["answer"] and out[1]["abstained"]
    assert "empty" in out[2]["error"] and "bad input line 4" in out[3]["error"]
    assert proc.stderr.count("loaded qwen") <= 1  # one model load serves the whole batch


def test_default_profile_loads_and_answers(index_dir):
    """The 1.5B default model: GGUF joined, hash-checked, converted (first run) and answering."""
    proc = docqa(["ask", "--json", URBANIZATION_Q], index_dir, profile="default")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["model"] == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert "60.6" in answer["answer"] and any("60.60%" in c["text"] for c in answer["citations"])


def test_user_errors_are_one_line_without_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["ask", "--docs", str(tmp_path / "missing"), "--index", str(tmp_path / "i1"), "hi"], "does not exist"),
        (["ask", "--docs", str(empty), "--index", str(tmp_path / "i2"), "hi"], "is empty"),
        (["index", "--docs", str(empty), "--index", str(tmp_path / "i3")], "is empty"),
        (["ask", "--docs", str(ROOT / "docs"), "--index", str(tmp_path / "i4"), "hi"], "no index"),
        (["ask", "--settings", str(tmp_path / "nope.toml"), "hi"], "not found"),
    ]
    for args, expected in cases:
        env = guarded_env(DOCQA_AUTO_INDEX="0") if "i4" in " ".join(args) else guarded_env()
        proc = run_cli(*args, env=env, timeout=300)  # also: no traceback
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and expected in errors[0] and "Fix:" in errors[0]


def test_eval_runner_end_to_end_small_profile(index_dir, tmp_path):
    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()]
    subset = [q for q in questions if q["id"] in ("q09", "q10")] + [
        q for q in questions if q["kind"] == "out_of_scope"
    ][:1]
    qset = tmp_path / "set.jsonl"
    qset.write_text("\n".join(json.dumps(q) for q in subset) + "\n")
    out = tmp_path / "run"
    proc = docqa(["eval", "--set", str(qset), "--out", str(out), "--fail-under", "evidence_hit@k=0.5"], index_dir)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results["records"]) == 3 and results["config"]["profile"] == "small"
    assert results["summary"]["abstention_recall"] == 1.0
    assert (out / "report.md").read_text().startswith("# docqa eval")
    assert (out / "chart.png").stat().st_size > 1000
    assert "ttft_p50_ms" in proc.stdout

    proc = docqa(["eval", "--set", str(qset), "--out", str(out), "--fail-under", "fact_recall=1.01"], index_dir)
    assert proc.returncode == 1 and "fail-under: fact_recall" in proc.stderr

    settings_file = tmp_path / "docqa.toml"
    proc = docqa(
        ["eval", "--set", str(qset), "--out", str(tmp_path / "cal"), "--calibrate", "--settings", str(settings_file)],
        index_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert "min_score = " in settings_file.read_text()
    assert (tmp_path / "cal" / "calibration.png").exists()


def test_models_from_local_paths_instead_of_profiles(tmp_path):
    """llm_model / embed_model accept a local folder (as they would a hub id with network)."""
    from docqa.answering.pipeline import Pipeline
    from docqa.generate.weights import PROFILE_MODELS, converted_dir
    from docqa.ingest.embeddings import bundled_embedder_path
    from docqa.settings import Settings

    base = Settings.load()
    model_dir = converted_dir(base.resolved_cache_dir, PROFILE_MODELS["small"])
    if not model_dir.is_dir():
        pytest.skip("the small model has not been converted yet (runs after the other e2e tests)")
    settings = Settings(
        docs_dir=ROOT / "docs",
        index_dir=tmp_path / "index",
        llm_model=str(model_dir),
        embed_model=str(bundled_embedder_path()),
    )
    pipeline = Pipeline.from_settings(settings)
    answer = pipeline.ask(URBANIZATION_Q)
    assert answer.model == str(model_dir)
    assert "60.6" in answer.answer
