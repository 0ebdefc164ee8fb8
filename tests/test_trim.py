"""Less to prefill (answering/trim.py): shorter passages for the prompt that keep the evidence."""

from copy import deepcopy
from dataclasses import replace

from docqa.answering.trim import CUT, TrimOptions, dynamic_top_k, trim_prompt, trim_sentences, units
from support import passage

PROSE = (
    "Hongya county lies in the west of Sichuan. "
    "Its farms grow tea on terraced hillsides. "
    "The county built a warehouse for the harvest. "
    "The cold store holds 48 tonnes of fresh leaves. "
    "Buyers collect the crop every Tuesday. "
    "Schools in the valley teach pruning to teenagers. "
    "A new road links the valley to the expressway. "
    "Tourism grew after the road opened."
)
OTHER = "Rice paddies cover the plain. Ducks graze between the rows. Farmers sell duck eggs in town."


def sentences_of(text: str) -> list[str]:
    return [text[u.start : u.end] for u in units(text)]


def test_a_passage_keeps_the_answer_sentence_and_its_neighbours_and_its_first_sentence():
    question = "How many tonnes does the cold store hold?"
    top, second = passage(1, OTHER), passage(2, PROSE)
    got = trim_sentences(question, [top, second], TrimOptions(neighbours=1, min_weight=0.5))[1].chunk.text
    assert "The cold store holds 48 tonnes of fresh leaves." in got  # the answer
    assert "The county built a warehouse for the harvest." in got  # the sentence before it
    assert "Buyers collect the crop every Tuesday." in got  # the sentence after it
    assert got.startswith("Hongya county lies in the west of Sichuan.")  # the first sentence, for context
    assert "Its farms grow tea" not in got  # between the first sentence and the answer: cut
    assert "Schools in the valley" not in got and "Tourism grew" not in got  # far from the answer: cut
    assert got.startswith(f"Hongya county lies in the west of Sichuan.{CUT}The county built")  # the cut is marked
    kept = [s for s in sentences_of(PROSE) if s in got]
    assert [got.index(s) for s in kept] == sorted(got.index(s) for s in kept)  # order kept
    assert len(got) < len(PROSE)


def test_without_neighbours_only_the_matching_sentence_and_the_first_stay():
    question = "How many tonnes does the cold store hold?"
    got = trim_sentences(question, [passage(1, OTHER), passage(2, PROSE)], TrimOptions(neighbours=0))[1].chunk.text
    assert "Buyers collect" not in got and "The cold store holds 48 tonnes" in got


def test_a_list_passage_keeps_whole_rows_and_the_rows_a_kept_lead_in_introduces():
    table = (
        "pg_ctl stop has three shutdown modes:\n"
        "- smart: waits for all clients to disconnect. Then it stops.\n"
        "- fast: rolls back open transactions. Clients are disconnected.\n"
        "- immediate: aborts all server processes. Recovery runs at the next start.\n"
        "The default mode is fast.\n"
        "Log files are written to the data directory.\n"
        "Rotation happens daily at midnight.\n"
        "Old logs are removed after a week."
    )
    question, passages = "Which shutdown modes does pg_ctl stop offer?", [passage(1, OTHER), passage(2, table)]
    got = trim_sentences(question, passages, TrimOptions(neighbours=0, list_neighbours=0))
    text = got[1].chunk.text
    for row in table.splitlines()[1:4]:  # each row whole, though rows hold two sentences
        assert row in text
    assert "Log files are written" not in text and "Old logs are removed" not in text
    # A row that matters is kept whole (both its sentences); the other rows go.
    one = trim_sentences("Are open transactions rolled back?", passages, TrimOptions(neighbours=0, keep_first=False))
    assert "- fast: rolls back open transactions. Clients are disconnected." in one[1].chunk.text
    assert "- smart" not in one[1].chunk.text and "- immediate" not in one[1].chunk.text
    assert one[1].chunk.text.startswith("…\n- fast:")  # the cut before it is marked once


def test_units_keep_a_table_row_whole_and_split_prose():
    text = "Settings:\n| port | 5432. Set at start. |\n| max_connections | 100 |\nPlain prose. It has two sentences."
    got = sentences_of(text)
    assert "| port | 5432. Set at start. |" in got
    assert "Plain prose." in got and "It has two sentences." in got


def test_the_top_passage_keeps_at_least_n_sentences():
    question = "Which county lies in the west?"  # matches only the first sentence of the top passage
    got = trim_sentences(question, [passage(1, PROSE)], TrimOptions(neighbours=0, top_min_units=4))[0].chunk.text
    assert len([s for s in sentences_of(PROSE) if s in got]) >= 4
    fewer = trim_sentences(question, [passage(1, PROSE)], TrimOptions(neighbours=0, top_min_units=1))[0].chunk.text
    assert len([s for s in sentences_of(PROSE) if s in fewer]) < 4  # the floor is what kept them


def test_a_broad_question_keeps_whole_passages():
    passages = [passage(1, OTHER), passage(2, PROSE)]
    got = trim_sentences("Summarize what the documents say about the cold store.", passages)
    assert [p.chunk.text for p in got] == [OTHER, PROSE]
    trimmed = trim_sentences("Summarize the cold store.", passages, TrimOptions(skip_broad=False, neighbours=0))
    assert trimmed[1].chunk.text != PROSE


def scored(*scores: float) -> list:
    return [replace(passage(j + 1, f"text number {j + 1} about topic {j + 1}."), score=s) for j, s in enumerate(scores)]


def test_dynamic_top_k_drops_a_far_lower_tail_and_renumbers():
    passages = scored(0.62, 0.55, 0.58, 0.31, 0.20)
    got = dynamic_top_k("What is the cold store's capacity?", passages, gap=0.15, lexical_keep=0.0)
    assert [p.score for p in got] == [0.62, 0.55, 0.58]
    assert [p.n for p in got] == [1, 2, 3]


def test_dynamic_top_k_keeps_at_least_two():
    passages = scored(0.9, 0.1, 0.1, 0.1)
    got = dynamic_top_k("What is the cold store's capacity?", passages, gap=0.05, lexical_keep=0.0)
    assert [p.score for p in got] == [0.9, 0.1]
    assert len(dynamic_top_k("What is it?", scored(0.9, 0.1), gap=0.0, min_keep=2)) == 2


def test_dynamic_top_k_keeps_a_low_cosine_passage_that_holds_the_question_terms():
    passages = scored(0.7, 0.65, 0.3)
    passages[2] = replace(passages[2], chunk=replace(passages[2].chunk, text="The cold store capacity is 48 tonnes."))
    question = "What is the cold store capacity?"
    assert len(dynamic_top_k(question, passages, gap=0.1, lexical_keep=0.0)) == 2
    assert len(dynamic_top_k(question, passages, gap=0.1, lexical_keep=0.75)) == 3


def test_multi_part_comparison_and_list_questions_keep_all_passages():
    passages = scored(0.8, 0.7, 0.2, 0.1)
    for question in (
        "What is the default port, and which file sets it?",
        "How do the tea harvest and the rice terraces compare?",
        "Which shutdown modes does pg_ctl offer?",
    ):
        assert len(dynamic_top_k(question, passages, gap=0.05)) == 4, question
        assert len(trim_prompt(question, passages, None, gap=0.05)) == 4, question
    assert len(dynamic_top_k("Which shutdown modes does pg_ctl offer?", passages, 0.05, protect_lists=False)) == 2


def test_inputs_are_not_mutated():
    passages = [passage(1, OTHER), passage(2, PROSE), replace(passage(3, PROSE[:80]), score=0.1)]
    before = deepcopy(passages)
    out = trim_prompt("How many tonnes does the cold store hold?", passages, TrimOptions(neighbours=0), gap=0.1)
    assert passages == before
    assert all(o is not p for o in out for p in passages)
    assert out[1].chunk.text != passages[1].chunk.text  # the copy was trimmed, the caller's passage was not
