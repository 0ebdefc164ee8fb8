"""Answer shapes: yes/no questions are told to answer yes or no first; list answers name every item."""

from pathlib import Path

import pytest

from docqa.answering.shapes import LIST_HINT, YES_NO_HINT, complete_list, items, shape
from fakes import ScriptedGenerator
from support import passage


@pytest.mark.parametrize(
    ("question", "yes_no", "is_list", "count"),
    [
        ("Does ALTER SYSTEM write to postgresql.conf?", True, False, None),
        ("And is booktabs compatible with colortbl?", True, False, None),
        ("Can I use Libtasn1 from C++?", True, False, None),
        ("Is the page size 8 kB or 16 kB?", False, False, None),  # a choice between two answers
        ("Through which two channels should rural talent be built up?", False, True, 2),
        ("In what three ways do the strategies differ?", False, True, 3),
        ("Name the five measures the essay proposes.", False, True, 5),
        ("List the color models xcolor supports.", False, True, None),
        ("What are the rules for booktabs rules?", False, True, None),
        ("What does the chapter on backups cover?", False, True, None),
        ("Which kinds of units are named?", False, True, None),
        ("What is the fourth measure for connecting the two strategies?", False, False, None),  # "the two": a referent
        ("What kind of poverty was eliminated?", False, False, None),  # one kind
        ("Who maintains the library?", False, False, None),
    ],
)
def test_shape(question, yes_no, is_list, count):
    got = shape(question)
    assert (got.yes_no, got.is_list, got.count) == (yes_no, is_list, count)


def test_items_finds_enumerations_not_prose():
    assert items("Supported models are rgb, cmy, cmyk, hsb and gray.") == ["rgb", "cmy", "cmyk", "hsb", "gray"]
    assert items("The server, which starts at boot, reads the file once it is ready to serve clients.") == []
    assert items("It reads the file and starts.") == []  # "A and B" alone is too often a phrase


LIST_PASSAGE = "xcolor knows several models. Supported models are rgb, cmy, cmyk, hsb and gray. It loads fast."


def test_complete_list_quotes_the_sentence_that_names_every_item():
    passages = [passage(1, "Colors are mixed by expressions."), passage(2, LIST_PASSAGE)]
    got = complete_list("Which color models are supported?", "The supported models include rgb [2].", passages, [2])
    assert got == ("Supported models are rgb, cmy, cmyk, hsb and gray. [2]", 2)


def test_complete_list_keeps_a_draft_that_names_every_item():
    passages = [passage(1, LIST_PASSAGE)]
    draft = "The supported models are rgb, cmy, cmyk, hsb and gray [1]."
    assert complete_list("Which color models are supported?", draft, passages, [1]) is None


def test_complete_list_leaves_other_questions_and_off_topic_lists_alone():
    passages = [passage(1, LIST_PASSAGE)]
    assert complete_list("Who wrote xcolor?", "Uwe Kern wrote it [1].", passages, [1]) is None
    # A list that doesn't address the question is not an answer to it.
    assert complete_list("Which operating systems are supported?", "Linux [1].", passages, [1]) is None
    # Asked for two items, a five-item list is some other list.
    assert complete_list("Which two files does it read?", "The rc file [1].", passages, [1]) is None


def test_complete_list_takes_the_lines_after_a_colon_as_the_list():
    text = "The server reads these files:\n\npostgresql.conf\n\npg_hba.conf\n\npg_ident.conf\n\nThen it starts."
    got = complete_list("Which files does the server read?", "It reads postgresql.conf [1].", [passage(1, text)], [1])
    assert got is not None and "pg_hba.conf" in got[0] and "pg_ident.conf" in got[0] and got[0].endswith("[1]")


LIST_DOC = """Colour models

xcolor knows several colour models. Supported models are rgb, cmy, cmyk, hsb and gray. Each has its own syntax.
"""


def test_pipeline_completes_a_partial_list_and_cites_it(tmp_path: Path, settings, embedder):
    from docqa.answering.pipeline import Pipeline

    (settings.docs_dir / "xcolor.txt").write_text(LIST_DOC, encoding="utf-8")
    generator = ScriptedGenerator("The supported models include rgb [1].")
    pipeline = Pipeline.from_settings(settings, embedder=embedder, generator=generator)
    answer = pipeline.ask("Which colour models are supported by xcolor?")
    assert not answer.abstained
    assert "rgb, cmy, cmyk, hsb and gray" in answer.answer
    assert [c.passage.chunk.source for c in answer.citations] == ["xcolor.txt"]
    assert any("part of the list" in n for n in answer.notices)
    assert LIST_HINT in generator.calls[0][-1]["content"]


def test_pipeline_tells_the_model_to_answer_yes_or_no_first(settings, embedder):
    from docqa.answering.pipeline import Pipeline

    generator = ScriptedGenerator("Yes, the harvest begins in March [1].")
    pipeline = Pipeline.from_settings(settings, embedder=embedder, generator=generator)
    answer = pipeline.ask("Does the tea harvest begin in March?")
    assert answer.answer.startswith("Yes") and not answer.abstained
    user = generator.calls[0][-1]["content"]
    assert user.rstrip().endswith("Does the tea harvest begin in March?\n" + YES_NO_HINT)

    generator.calls.clear()
    pipeline.ask("When does the tea harvest begin?")
    user = generator.calls[0][-1]["content"]
    assert YES_NO_HINT not in user and LIST_HINT not in user  # a plain question's prompt is unchanged


PARTS = [
    "The default port is 5432, set in postgresql.conf.",
    "The data directory is set with the -D option. Logs go to the log directory.",
]


def test_complete_parts_quotes_the_sentence_for_a_part_the_draft_left_out():
    from docqa.answering.shapes import complete_parts

    passages = [passage(i + 1, t) for i, t in enumerate(PARTS)]
    question = "What is the default port, and which option sets the data directory?"
    got = complete_parts(question, "The default port is 5432 [1].", passages)
    assert got == [("The data directory is set with the -D option.", 2)]
    # Both parts answered: nothing to add.
    both = "The default port is 5432 [1]. The -D option sets the data directory [2]."
    assert complete_parts(question, both, passages) == []


def test_complete_parts_needs_two_questions_not_a_pair_of_nouns():
    from docqa.answering.shapes import complete_parts

    passages = [passage(1, "Income is the top priority, though education and housing matter too.")]
    # "education and housing" is a pair inside one question, not a comparison.
    question = "Even with education and housing, what stays the top priority?"
    assert complete_parts(question, "Income [1].", passages) == []


def test_pipeline_answers_each_part_with_its_own_citation(settings, embedder):
    from docqa.answering.pipeline import Pipeline

    pipeline = Pipeline.from_settings(
        settings, embedder=embedder, generator=ScriptedGenerator("The harvest begins in March [1].")
    )
    answer = pipeline.ask("When does the tea harvest begin, and when were the Hani terraces listed?")
    assert "March" in answer.answer and "2013" in answer.answer
    cited = {c.passage.chunk.text[:20] for c in answer.citations}
    assert len(answer.citations) == 2, cited  # one passage per part
    assert any("unanswered" in n for n in answer.notices)


def test_broad_questions_get_more_passages_and_a_summary_hint(settings, embedder):
    from docqa.answering.pipeline import Pipeline
    from docqa.answering.shapes import BROAD_HINT

    generator = ScriptedGenerator("The harvest begins in March [1].")
    s = settings.model_copy(update={"top_k": 1, "broad_top_k": 2})
    pipeline = Pipeline.from_settings(s, embedder=embedder, generator=generator)
    assert len(pipeline.ask("When does the tea harvest begin?").retrieved) == 1
    broad = pipeline.ask("What does the document say about tea and rice terraces?")
    assert len(broad.retrieved) == 2
    assert generator.calls[-1][-1]["content"].rstrip().endswith(BROAD_HINT)
    assert len(pipeline.ask("What does the document say about tea?", top_k=1).retrieved) == 1  # asked for: kept


def test_a_part_answered_with_a_number_from_elsewhere_is_still_completed():
    from docqa.answering.shapes import complete_parts

    passages = [
        passage(1, "The urbanization rate in China has soared from 29% in 1995 to 60.60% in 2019."),
        passage(2, "By 2020, China will eliminate absolute poverty and lift all the poor out of poverty."),
    ]
    question = "What was the urbanization rate in 2019, and by which year was absolute poverty to be eliminated?"
    # The year in the draft is taken from the urbanization sentence, not stated with the poverty goal.
    wrong = "The urbanization rate in 2019 was 60.60%, and absolute poverty was eliminated in 2019 [1]."
    assert complete_parts(question, wrong, passages) == [(passages[1].chunk.text, 2)]
    right = "The rate in 2019 was 60.60% [1]. Absolute poverty was to be eliminated by 2020 [2]."
    assert complete_parts(question, right, passages) == []
