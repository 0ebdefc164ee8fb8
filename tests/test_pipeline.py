from docqa.answering.budget import SpeedModel
from docqa.answering.pipeline import ABSTAIN_TEXT
from docqa.answering.prompting import TEMPLATES, Prompts
from docqa.answering.question import clean_question, needs_rewrite
from fakes import by_prompt, passage_text


def test_answer_cites_checked_passage(make_pipeline):
    pipeline = make_pipeline(lambda m: "The terraces were listed as World Heritage in 2013 [1].")
    answer = pipeline.ask("When were the Hani terraces listed as a World Heritage site?")
    assert not answer.abstained
    assert answer.citations and "2013" in answer.citations[0].passage.chunk.text
    assert answer.answer.endswith("[1].")
    assert set(answer.timings) >= {"retrieve_ms", "first_token_ms", "total_ms"}


def test_prompt_holds_numbered_passages_and_question(make_pipeline):
    pipeline = make_pipeline("The documents do not say.")
    pipeline.ask("When does the tea harvest begin?")
    system, user = pipeline.generator.calls[0]
    assert system["role"] == "system" and "[1]" in system["content"]
    assert user["content"].rstrip().endswith("Question: When does the tea harvest begin?")
    assert "March" in passage_text(pipeline.generator.calls[0], 1)


def test_model_refusal_is_abstention(make_pipeline):
    answer = make_pipeline("The documents do not say.").ask("When does the tea harvest begin?")
    assert answer.abstained and answer.answer == ABSTAIN_TEXT and answer.citations == []
    assert "model said" in answer.abstain_reason


def test_low_retrieval_score_abstains_without_calling_model(make_pipeline):
    pipeline = make_pipeline("should not be called", min_score=0.99)
    answer = pipeline.ask("Who won the football world cup?")
    assert answer.abstained and pipeline.generator.calls == []
    assert "min_score" in answer.abstain_reason


def test_invented_number_is_abstention(make_pipeline):
    answer = make_pipeline("Farmers picked 450 tonnes in 2020 [1].").ask("How much tea did Pu'er farmers pick in 2020?")
    assert answer.abstained and "450" in answer.abstain_reason


def test_uncited_unsupported_answer_is_abstention(make_pipeline):
    answer = make_pipeline("Bananas are a popular fruit everywhere.").ask("When does the tea harvest begin?")
    assert answer.abstained and "no passage supports" in answer.abstain_reason


def test_stream_yields_deltas_then_answer(make_pipeline):
    draft = "The harvest begins in March [1]. It ends in October [1]."
    events = list(make_pipeline(draft).stream("When does the tea harvest begin?"))
    # One delta per checked sentence, then the answer.
    assert len(events) == 3 and all(e.answer is None for e in events[:-1])
    assert [e.delta for e in events[:-1]] == ["The harvest begins in March [1].", " It ends in October [1]."]
    assert "".join(e.delta for e in events[:-1]) == events[-1].answer.answer
    final = events[-1].answer
    assert final is not None and events[-1].delta == "" and [c.n for c in final.citations] == [1]


def test_retrieval_only_stops_after_the_gate(make_pipeline):
    def never(messages):
        raise AssertionError("retrieval_only must not call the model")

    pipeline = make_pipeline(never)
    answer = pipeline.ask("When does the tea harvest begin?", retrieval_only=True)
    assert not answer.abstained and answer.answer == "" and answer.retrieved
    assert answer.retrieved[0].chunk.source == "yunnan.txt"
    refused = pipeline.ask("What did Mao Zedong say about tea?", retrieval_only=True)
    assert refused.abstained and "Mao Zedong" in refused.abstain_reason


def test_follow_up_is_rewritten_only_when_needed(make_pipeline):
    rewrite = "When were the Hani terraces listed as World Heritage?"
    pipeline = make_pipeline(by_prompt("They were listed in 2013 [1].", rewrite=rewrite))
    history = [("How large are the Hani terraces?", "16,603 hectares [1].")]
    answer = pipeline.ask("and when were they listed?", history)
    assert answer.standalone_question == "When were the Hani terraces listed as World Heritage?"
    assert not answer.abstained
    calls = len(pipeline.generator.calls)
    answer = pipeline.ask("When does the tea harvest in Yunnan begin?", history)
    assert answer.standalone_question is None and len(pipeline.generator.calls) == calls + 1


def test_question_cleaning():
    text, notices = clean_question("x" * 50 + " tail", 20)
    assert len(text) <= 20 and notices
    assert clean_question("\x1b[31mred\x1b[0m\x00?", 100)[0] == "red ?"
    assert needs_rewrite("why?", [("q", "a")]) and not needs_rewrite("why?", [])


def test_every_prompt_renders():
    prompts = Prompts()
    for name, placeholders in TEMPLATES.items():
        text = prompts.render(name, **{p: f"<{p}>" for p in placeholders})
        assert "$" not in text
        for p in placeholders:
            assert f"<{p}>" in text


def test_prompt_with_unknown_placeholder_is_refused(tmp_path):
    import shutil

    import pytest

    from docqa.answering.prompting import default_prompts_dir
    from docqa.errors import SettingsError

    shutil.copytree(default_prompts_dir(), tmp_path / "p")
    (tmp_path / "p" / "answer_user.md").write_text("$passages $question $oops")
    with pytest.raises(SettingsError, match="oops"):
        Prompts(tmp_path / "p")


def test_question_number_missing_from_passages_abstains_without_model(make_pipeline):
    pipeline = make_pipeline("should not be called")
    answer = pipeline.ask("How much tea did Pu'er farmers pick in 2015?")
    assert answer.abstained and "2015" in answer.abstain_reason and pipeline.generator.calls == []
    answer = make_pipeline("They picked 120 tonnes [1].").ask("How much tea did Pu'er farmers pick in 2020?")
    assert not answer.abstained


def test_question_name_missing_from_passages_abstains_without_model(make_pipeline):
    pipeline = make_pipeline("should not be called")
    answer = pipeline.ask("Why did Mao Zedong pick the tea in Yunnan?")
    assert answer.abstained and "Mao Zedong" in answer.abstain_reason and pipeline.generator.calls == []


def test_invented_name_in_draft_is_abstention_and_draft_kept(make_pipeline):
    answer = make_pipeline("Deng Xiaoping picked the tea in 2020 [1].").ask("Who picked the tea in Pu'er in 2020?")
    assert answer.abstained and "Deng Xiaoping" in answer.abstain_reason
    assert answer.draft == "Deng Xiaoping picked the tea in 2020 [1]."


def test_time_budget_skips_rewrite_and_trims_passages(make_pipeline):
    pipeline = make_pipeline("The harvest begins in March [1].", answer_budget_s=5.0, top_k=4, min_score=0.0)
    pipeline.speed.observe(prompt_tokens=100, answer_tokens=41, prefill_s=1.0, generate_s=5.0)  # 100 tok/s, 10 tok/s
    history = [("When does the tea harvest begin?", "In March [1].")]
    answer = pipeline.ask("and when does it end?", history)
    assert answer.standalone_question == "When does the tea harvest begin? and when does it end?"
    assert not any("Follow-up question" in m[-1]["content"] for m in pipeline.generator.calls), "rewrite call made"
    assert any("time budget" in n for n in answer.notices)
    assert len(answer.retrieved) <= 4


def test_budget_trims_low_ranked_passages_only_when_over(make_pipeline, docs):
    for i in range(6):
        (docs / f"farm{i}.txt").write_text(f"Farm {i} grows tea and rice. The tea harvest on farm {i} begins in March.")
    pipeline = make_pipeline("The harvest begins in March [1].", top_k=5, min_score=0.0, answer_budget_s=4.0)
    question = "When does the tea harvest begin on the farm?"
    assert len(pipeline.ask(question).retrieved) == 5  # nothing measured yet: no trimming
    pipeline.speed = SpeedModel(prefill_tok_s=50.0, decode_tok_s=10.0, answer_tokens=41)  # ~4 s before passages
    answer = pipeline.ask(question)
    assert 2 <= len(answer.retrieved) < 5 and any("passages to stay in the time budget" in n for n in answer.notices)
    pipeline.settings.answer_budget_s = None
    assert len(pipeline.ask(question).retrieved) == 5


def _passage(n: int, source: str, heading: str | None = None, page: int | None = None):
    from docqa.types import Chunk, Passage

    chunk = Chunk(id=f"c{n}", source=source, text=f"text {n}", start=0, end=6, heading=heading, page=page)
    return Passage(n=n, chunk=chunk, score=1.0)


def test_passage_labels_are_short_and_name_files_only_when_there_are_several():
    from docqa.answering.prompting import format_passages

    long_heading = "Why the two strategies of poverty alleviation and rural revitalization should be connected"
    one_file = format_passages([_passage(1, "dir/essay.txt", long_heading), _passage(2, "dir/essay.txt")])
    assert one_file == "[1] (Why the two strategies of poverty alleviation and …)\ntext 1\n\n[2]\ntext 2"
    two_files = format_passages([_passage(1, "a/report.pdf", "Costs", page=3), _passage(2, "notes.md")])
    assert two_files == "[1] (report, Costs, page 3)\ntext 1\n\n[2] (notes)\ntext 2"


def quoting(first: str, quote: str):
    """A model that answers `first` to the answer prompt and `quote` to the second attempt's; and the
    list of which prompts it was given, in order."""
    script, calls = by_prompt(first, quote=quote), []

    def reply(messages):
        calls.append("quote" if script(messages) == quote and quote != first else "answer")
        return script(messages)

    return reply, calls


def test_a_decline_with_confident_retrieval_gets_a_quoted_second_attempt(make_pipeline):
    reply, calls = quoting("The documents do not say.", "The harvest begins in March and ends in October [1].")
    answer = make_pipeline(reply, retry_min_score=0.0).ask("When does the tea harvest begin?")
    assert calls == ["answer", "quote"]
    assert not answer.abstained and "March" in answer.answer and [c.n for c in answer.citations] == [1]
    assert any("quotes the passage" in n for n in answer.notices)


def test_a_quote_that_does_not_address_the_question_stays_refused(make_pipeline):
    reply, calls = quoting("The documents do not say.", "The Hani terraces cover 16,603 hectares [1].")
    answer = make_pipeline(reply, retry_min_score=0.0).ask("When does the tea harvest begin?")
    assert calls == ["answer", "quote"] and answer.abstained
    assert "does not address the question (second attempt)" in answer.abstain_reason
    assert answer.abstain_reason.startswith("the model said the passages don't answer")


def test_no_second_attempt_below_retry_min_score_or_for_other_failures(make_pipeline):
    reply, calls = quoting("The documents do not say.", "The harvest begins in March [1].")
    assert make_pipeline(reply, retry_min_score=0.99).ask("When does the tea harvest begin?").abstained
    assert calls == ["answer"]  # retrieval not confident enough: one call
    reply, calls = quoting("Farmers picked 450 tonnes in 2020 [1].", "Farmers picked 120 tonnes in 2020 [1].")
    answer = make_pipeline(reply, retry_min_score=0.0).ask("How much tea did Pu'er farmers pick in 2020?")
    assert calls == ["answer"] and "450" in answer.abstain_reason  # an invented number is not retried


def test_each_side_of_a_comparison_is_searched_and_gets_a_slot(make_pipeline, monkeypatch):
    pipeline = make_pipeline("unused", top_k=2)
    real, searched = pipeline.retriever.retrieve, []
    question = "How do the tea harvest and the rice terraces compare?"

    def spy(query, top_k, mode):
        searched.append(query)
        found = real(query, top_k, mode)
        if query == question:  # as if, ranked as one, the tea side filled every slot
            found.passages = [p for p in found.passages if "Rice" not in p.chunk.text]
        return found

    monkeypatch.setattr(pipeline.retriever, "retrieve", spy)
    answer = pipeline.ask(question, retrieval_only=True)
    assert searched == [question, "How do the tea harvest compare?", "How do the rice terraces compare?"]
    assert [p.chunk.heading for p in answer.retrieved] == ["Tea in Yunnan", "Rice terraces"]
    searched.clear()
    pipeline.settings = pipeline.settings.model_copy(update={"search_parts": False})
    assert [p.chunk.heading for p in pipeline.ask(question, retrieval_only=True).retrieved] == ["Tea in Yunnan"]
    assert searched == [question]


def test_a_draft_that_says_the_question_back_is_retried_then_refused(make_pipeline):
    question = "When does the tea harvest begin?"
    reply, calls = quoting("The tea harvest begins [1].", "The harvest begins in March and ends in October [1].")
    answer = make_pipeline(reply, retry_min_score=0.0).ask(question)
    assert calls == ["answer", "quote"] and not answer.abstained and "March" in answer.answer
    reply, calls = quoting("The tea harvest begins [1].", "The tea harvest begins [1].")
    answer = make_pipeline(reply, retry_min_score=0.0).ask(question)
    assert calls == ["answer", "answer"] and answer.abstained  # `quoting` names a same-text reply "answer"
    assert answer.abstain_reason.startswith("the draft answer only says the question back")


def test_a_declined_acronym_question_gets_the_long_form_its_passage_spells_out(make_pipeline, docs):
    (docs / "grading.txt").write_text(
        "Tea grading\n\nPu'er reports rank each harvest by the Tea Leaf Grading Scheme (TLGS), from one to five.\n",
        encoding="utf-8",
    )
    answer = make_pipeline("The documents do not say.", retry_min_score=None).ask("What does TLGS stand for?")
    assert not answer.abstained and answer.answer.startswith("TLGS stands for Tea Leaf Grading Scheme [")
    assert "(TLGS)" in answer.citations[0].passage.chunk.text
    wrong = make_pipeline("TLGS stands for the tea list [1].").ask("What does TLGS stand for?")
    assert "Tea Leaf Grading Scheme" in wrong.answer and "tea list" not in wrong.answer  # the draft's guess is replaced
    assert make_pipeline("The documents do not say.").ask("What does TLGX stand for?").abstained


def test_a_yes_no_draft_that_says_the_opposite_of_its_passage_gets_the_passage_verdict(make_pipeline):
    question = "Is the Hani terraces area 16,603 hectares?"
    answer = make_pipeline("No, the Hani terraces do not cover 16,603 hectares [1].").ask(question)
    assert not answer.abstained and answer.answer.startswith('Yes: "The Hani terraces cover 16,603 hectares"')
    assert "16,603" in answer.citations[0].passage.chunk.text
    assert any("opposite" in n for n in answer.notices)
    # The same draft to a question that is not yes/no: refused, with the reason.
    other = make_pipeline("The Hani terraces do not cover 16,603 hectares [1].").ask("How large are the Hani terraces?")
    assert other.abstained and other.abstain_reason.startswith("the draft answer says the opposite of passage [")
    # A draft that agrees with its passage is left alone.
    same = make_pipeline("Yes, the Hani terraces cover 16,603 hectares [1].").ask(question)
    assert same.answer == "Yes, the Hani terraces cover 16,603 hectares [1]."


def test_an_answer_resting_on_a_document_that_never_names_the_subject_is_refused(make_pipeline, docs):
    (docs / "kettle.txt").write_text("Kettle manual\n\nThe kettle manual is released under the MIT license.\n")
    (docs / "xbrew.txt").write_text("xbrew\n\nThe xbrew package brews tea at 90 degrees for three minutes.\n")
    question = "Under which license is the xbrew package released?"
    answer = make_pipeline("The xbrew package is released under the MIT license [1].").ask(question)
    assert answer.abstained
    assert answer.abstain_reason == "the answer rests on kettle.txt, which never mentions xbrew"
    # Asked of the document that names it, the same kind of answer stands.
    fine = make_pipeline("The kettle manual is released under the MIT license [1].").ask(
        "Under which license is the kettle manual released?"
    )
    assert not fine.abstained and fine.citations[0].passage.chunk.source == "kettle.txt"
