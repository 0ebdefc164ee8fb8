"""Bad questions get a sensible reply, never a stack trace: through the Python API, the web /ask
endpoint (with fakes) and `docqa ask` (with the real small model)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from docqa.errors import QuestionError
from docqa.settings import Settings
from docqa.types import Answer
from support import docqa_env, run_cli, serving

REPLY = "The harvest begins in March [1]."
LONG = "When does the tea harvest begin? " + "Please answer as briefly as you can. " * 600  # ~22,000 chars
CONTROL = "\x00When\x1b[0m does the tea\u202e harvest\r\n begin?\x07\u200b\x7f"
EMPTY_AFTER_CLEANING = ["", "   \n\t  ", "\x00\x01\x1b\x7f\u200b\u202e\u2066"]
OTHER_LANGUAGES = ["茶叶什么时候开始采摘？", "Quand commence la récolte du thé ?"]
# What each gets over the fakes: the Chinese question shares no bucket of the hash embedder with the
# documents, so the gate refuses it; the French one's words land in shared buckets, the tea passage is
# retrieved and the scripted reply, which that passage supports, is cited.
OTHER_LANGUAGE_OUTCOMES = [
    (OTHER_LANGUAGES[0], "no passage is close enough to the question"),
    (OTHER_LANGUAGES[1], None),
]


def user_prompt(pipeline) -> str:
    return pipeline.generator.calls[-1][-1]["content"]


def prompt_question(pipeline) -> str:
    return user_prompt(pipeline).rsplit("Question: ", 1)[1]


# --- Python API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("question", EMPTY_AFTER_CLEANING)
def test_empty_question_is_a_named_error(make_pipeline, question):
    pipeline = make_pipeline(REPLY)
    with pytest.raises(QuestionError) as info:
        pipeline.ask(question)
    assert info.value.message == "the question is empty. Fix: type a question about your documents"
    assert pipeline.generator.calls == []  # nothing reached the model


def test_control_characters_never_reach_the_model(make_pipeline):
    pipeline = make_pipeline(REPLY)
    answer = pipeline.ask(CONTROL)
    assert not answer.abstained and answer.question == CONTROL
    asked = prompt_question(pipeline)
    assert asked == "When does the tea harvest begin?"  # the ANSI reset went whole
    assert not any(ch in asked for ch in "\x00\x1b\u202e\r\n\x07\u200b\x7f")


def test_very_long_question_is_truncated_with_a_notice(make_pipeline, settings):
    pipeline = make_pipeline(REPLY)
    answer = pipeline.ask(LONG)
    assert len(LONG) > 20_000
    assert answer.notices == [
        f"The question was {len(LONG)} characters long; only the first {len(prompt_question(pipeline))} were used."
    ]
    assert len(prompt_question(pipeline)) <= settings.max_question_chars
    assert prompt_question(pipeline).startswith("When does the tea harvest begin?")


def test_terminal_colour_codes_are_removed_whole(make_pipeline):
    pipeline = make_pipeline(REPLY)
    answer = pipeline.ask("\x1b[1;31mWhen does the tea harvest begin?\x1b[0m")
    assert not answer.abstained, answer.abstain_reason
    assert prompt_question(pipeline) == "When does the tea harvest begin?"


@pytest.mark.parametrize(("question", "abstain_reason"), OTHER_LANGUAGE_OUTCOMES)
def test_question_in_another_language_gets_an_answer_or_an_abstention(make_pipeline, question, abstain_reason):
    answer = make_pipeline(REPLY).ask(question)
    assert isinstance(answer, Answer) and answer.question == question and answer.answer
    if abstain_reason is None:
        assert not answer.abstained, answer.abstain_reason
        assert answer.answer.startswith("The harvest begins in March [")
        assert [c.passage.chunk.source for c in answer.citations] == ["yunnan.txt"]
        assert "The harvest begins in March" in answer.citations[0].passage.chunk.text
    else:
        assert answer.abstained and answer.citations == []
        assert abstain_reason in answer.abstain_reason


def test_template_syntax_in_a_question_stays_literal(make_pipeline):
    pipeline = make_pipeline(REPLY)
    pipeline.ask("$passages ${question} $$ {{x}} When does the tea harvest begin?")
    prompt = user_prompt(pipeline)
    assert prompt.count("[1] (Tea in Yunnan)") == 1  # the passages were not pasted in a second time
    assert prompt_question(pipeline) == "$passages ${question} $$ {{x}} When does the tea harvest begin?"


# --- web /ask with fakes ------------------------------------------------------------------------


@pytest.fixture
def client(make_pipeline, settings: Settings):
    from gradio_client import Client

    with serving(make_pipeline(REPLY), settings) as url:
        yield Client(url, verbose=False)


def test_web_ask_bad_questions(client, settings: Settings):
    for question in EMPTY_AFTER_CLEANING:
        with pytest.raises(Exception, match="the question is empty. Fix: type a question"):  # noqa: B017
            client.predict(question, api_name="/ask")
    # JSON callers can send any type; each gets a message, not a Python error from deep inside.
    for value, kind in ((42, "int"), (None, "NoneType"), (["a"], "list"), ({"q": 1}, "dict")):
        with pytest.raises(Exception) as info:  # noqa: B017 - the client raises its own AppError
            client.predict(value, api_name="/ask")
        assert f"the question must be text, not {kind}" in str(info.value)
    with pytest.raises(Exception, match="top_k: Input should be a valid integer"):  # noqa: B017
        client.predict("Tea?", "abc", api_name="/ask")

    result = client.predict(LONG, api_name="/ask")
    assert result["question"] == LONG and result["notices"][0].startswith(f"The question was {len(LONG)} characters")
    assert client.predict(CONTROL, api_name="/ask")["answer"] == REPLY
    for question in OTHER_LANGUAGES:
        result = client.predict(question, api_name="/ask")
        assert result["question"] == question and result["answer"]


# --- `docqa ask` with the real small model ------------------------------------------------------


def docqa(args: list[str], index_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, env=docqa_env(index_dir, DOCQA_MAX_NEW_TOKENS="48"), input=stdin)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("questions-index")  # the first `docqa ask` builds it


@pytest.mark.e2e
def test_cli_empty_question_is_one_line(index_dir):
    proc = docqa(["ask", ""], index_dir)
    assert proc.returncode == 2 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the question is empty. Fix: type a question about your documents"]


@pytest.mark.e2e
def test_cli_long_question_that_looks_like_an_option(index_dir):
    question = "--help -rf " + LONG
    proc = docqa(["ask", "--json", "--", question], index_dir)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["question"] == question and answer["answer"]
    assert answer["notices"] and f"{len(question)} characters long" in answer["notices"][0]


@pytest.mark.e2e
def test_cli_batch_of_odd_questions(index_dir):
    lines = [
        {"id": "control", "question": "\x00What was\x1b[0m China's\u202e urbanization rate\r\n in 2019?\x07\u200b"},
        {"id": "zh", "question": "2019年中国的城镇化率是多少？"},
        {"id": "fr", "question": "Quel était le taux d'urbanisation de la Chine en 2019 ?"},
        {"id": "blank", "question": " \t\u200b "},
    ]
    proc = docqa(["ask", "--batch", "-"], index_dir, stdin="\n".join(json.dumps(x) for x in lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = {o["id"]: o for o in map(json.loads, proc.stdout.splitlines())}
    assert list(out) == ["control", "zh", "fr", "blank"]
    assert out["blank"]["error"].startswith("the question is empty")
    for key in ("control", "zh", "fr"):
        print(f"{key}: abstained={out[key]['abstained']} {out[key]['answer'][:80]!r} ({out[key]['abstain_reason']})")

    def cites_the_rate(answer: dict) -> bool:
        return not answer["abstained"] and any("60.60%" in c["text"] for c in answer["citations"])

    # The control characters did not hide the question: answered from the passage with the rate.
    assert cites_the_rate(out["control"]) and "60.6" in out["control"]["answer"], out["control"]
    # French: the essay is English, so no passage holds the name "Chine": refused before the model.
    assert out["fr"]["abstained"] and out["fr"]["citations"] == [], out["fr"]
    assert out["fr"]["abstain_reason"] == "no passage mentions Chine from the question"
    # Chinese: the small model either answers from the essay, citing the rate, or says the passages
    # don't answer (what it does today, at 48 new tokens); any other abstention or answer fails.
    zh = out["zh"]
    if zh["abstained"]:
        assert zh["abstain_reason"] == "the model said the passages don't answer the question", zh
        assert zh["citations"] == [] and zh["answer"] == "The documents don't answer this question."
    else:
        assert cites_the_rate(zh) and "60.6" in zh["answer"], zh
