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


WIDGETRON = """Widgetron Language Reference

Widgetron is a modeling language for describing widgets and their assembly lines.

String literals

A string literal is a sequence of characters enclosed in single quotes or in double quotes.
Both these forms are equivalent.
"""


def test_a_name_the_documents_are_about_is_not_missing_from_a_section_that_omits_it(make_pipeline, settings):
    (settings.docs_dir / "widgetron.txt").write_text(WIDGETRON, encoding="utf-8")
    draft = "Single- and double-quoted string literals are equivalent [1]."
    pipeline = make_pipeline(draft, top_k=1, search_parts=False)
    answer = pipeline.ask("How do single-quoted and double-quoted string literals differ in Widgetron?")
    assert [p.chunk.source for p in answer.retrieved] == ["widgetron.txt"]
    assert "Widgetron" not in answer.retrieved[0].chunk.search_text  # the passage itself doesn't name it
    assert not answer.abstained, answer.abstain_reason
    # A name that no document of the passages holds is still missing.
    other = pipeline.ask("How do single-quoted and double-quoted string literals differ in Gadgetron?")
    assert other.abstained and "Gadgetron" in other.abstain_reason
