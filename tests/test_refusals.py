"""Every refusal says why, and says it the same way in the CLI, the JSON answer and the web chat."""

import html
import json

import pytest
from click.testing import CliRunner

from docqa.answering.pipeline import ABSTAIN_TEXT, Pipeline
from docqa.cli import cli
from docqa.serve import render

# (question, what the fake model writes, a phrase the reason must hold)
REFUSALS = [
    ("Who won the 2018 FIFA World Cup final?", "France won [1].", "no passage"),  # off-topic: the gate
    ("What did Mao Zedong say about tea?", "He praised it [1].", "Mao Zedong"),  # a name no passage holds
    ("When does the tea harvest begin?", "The documents do not say.", "the model said"),  # the model declined
    ("How much tea did Pu'er farmers pick in 2020?", "They picked 450 tonnes [1].", "450"),  # an invented number
]


@pytest.mark.parametrize(("question", "reply", "why"), REFUSALS)
def test_refusal_reason_reaches_json_web_and_cli(make_pipeline, monkeypatch, question, reply, why):
    pipeline = make_pipeline(reply, retry_min_score=None)
    answer = pipeline.ask(question)
    assert answer.abstained and answer.answer == ABSTAIN_TEXT and why in answer.abstain_reason

    assert json.loads(json.dumps(answer.to_dict()))["abstain_reason"] == answer.abstain_reason
    assert html.escape(answer.abstain_reason) in render.answer_html(answer)

    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings: pipeline))
    result = CliRunner().invoke(cli, ["ask", question])
    assert result.exit_code == 0 and result.stdout.strip() == ABSTAIN_TEXT
    assert f"(abstained: {answer.abstain_reason})" in result.stderr
