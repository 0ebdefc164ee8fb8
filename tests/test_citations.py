import pytest

from docqa.answering.checks import check_citations, declined, parse_markers, unsupported_names, unsupported_numbers
from docqa.types import Chunk, Passage


def passages(*texts: str) -> list[Passage]:
    return [Passage(i + 1, Chunk(f"c{i}", "a.txt", t, 0, len(t)), 0.5) for i, t in enumerate(texts)]


P = passages("Tea harvest begins in March.", "The Hani terraces were listed in 2013.", "Rice is grown on terraces.")


def test_valid_marker_kept():
    text, cites = check_citations("The terraces were listed in 2013 [2].", P)
    assert text == "The terraces were listed in 2013 [2]."
    assert [c.n for c in cites] == [2]
    assert cites[0].sentences == ("The terraces were listed in 2013.",)


# (draft, the answer after the checks, the passages it cites)
REPAIRS = [
    # a marker naming no passage is replaced by the passage that supports the sentence
    ("The terraces were listed in 2013 [7].", "The terraces were listed in 2013 [2].", [2]),
    # a marker naming the wrong passage is re-pointed
    ("The harvest begins in March [3].", "The harvest begins in March [1].", [1]),
    # a missing marker is attached by overlap, only where a passage supports the sentence
    ("Tea harvest begins in March. Bananas are yellow.", "Tea harvest begins in March [1]. Bananas are yellow.", [1]),
]


@pytest.mark.parametrize(("draft", "checked", "cited"), REPAIRS)
def test_markers_are_repaired_to_the_supporting_passage(draft, checked, cited):
    text, cites = check_citations(draft, P)
    assert text == checked and [c.n for c in cites] == cited


def test_only_cited_passages_listed_in_order_of_use():
    _, cites = check_citations("Listed in 2013 [2]. Harvest in March [1]. Terraces listed 2013 [2].", P)
    assert [c.n for c in cites] == [2, 1]
    assert len(cites[0].sentences) == 2


def test_parse_markers_forms():
    assert parse_markers("a [1] b [2, 3] c [Passage 4] d [5-6]") == [1, 2, 3, 4, 5, 6]
    assert parse_markers("no markers (2019)") == []


def test_declined_and_numbers():
    assert declined("The documents do not say.")
    assert declined("The passages don't mention the GDP.")
    assert declined("I cannot answer that from the passages.")
    assert not declined("It rose to 60.60% [1].")
    assert unsupported_numbers("It was 6.06% in 2019 [1].", ["in 2019 it was 60.60%"]) == {"6.06"}
    assert unsupported_numbers("Listed in 2013 [2].", ["listed in 2013"]) == set()


# Names and numbers with digits and inner punctuation, as real manuals write them. Each pair is
# (how the question or answer writes it, how the passage writes it): none may look "missing".
SPELLINGS = [
    ("What does Libtasn1 parse?", "Libtasn1 is a library that parses ASN.1 structures."),
    ("What does libtasn parse? Libtasn is a library.", "Libtasn1 is a library that parses ASN.1 structures."),
    ("Which ASN.1 types are supported?", "Libtasn1 is a library that parses ASN.1 structures."),
    ("How did COVID-19 affect farmers?", "COVID-19 cut the incomes of farmers."),
    ("Does it run on Python3.11?", "It supports Python 3.11 and later."),
    ("What changed in v2.0?", "Version v2.0 removed the old parser."),
    ("Was the rate 60.60% in 2019?", "In 2019 the urbanization rate was 60.60%."),
]


@pytest.mark.parametrize(("text", "passage"), SPELLINGS)
def test_names_and_numbers_with_digits_are_found_in_the_passage(text, passage):
    assert unsupported_names(text, [passage]) == set()
    assert unsupported_numbers(text, [passage]) == set()


def test_a_different_version_or_product_is_still_missing():
    passage = "Libtasn1 4.19 parses ASN.1 structures on Python 3.11."
    assert unsupported_numbers("What is new in Libtasn1 5.2?", [passage]) == {"5.2"}
    assert unsupported_names("Does GnuTLS parse ASN.1?", [passage]) == {"GnuTLS"}
    assert unsupported_names("Is Python3.12 supported?", [passage]) == {"Python3.12"}


CHANGE = passages(
    "The rural population has dropped from 860 million in 1995 to 550 million in 2019.",
    "Urbanization soared from 29% in 1995 to 60.60% in 2019.",
)


def test_a_question_reversing_a_stated_change_is_refused_before_generation():
    from docqa.answering.checks import gate
    from docqa.retrieve.fusion import Retrieval

    found = Retrieval(CHANGE, 0.7)
    reason = gate("Why did the rural population grow from 550 million in 1995 to 860 million in 2019?", found, 0.2)
    assert reason == "the question has a change from 550 to 860; the passages state it from 860 to 550"
    # The same change the right way round, or only its years, goes on to the model.
    assert gate("Why did the rural population drop from 860 million to 550 million?", found, 0.2) is None
    assert gate("How did urbanization change from 1995 to 2019?", found, 0.2) is None


def test_a_draft_reversing_a_stated_change_is_not_an_answer():
    from docqa.answering.checks import judge

    q = ["How did the rural population change?"]
    _, cites, reason = judge("The rural population grew from 550 million to 860 million [1].", CHANGE, q)
    assert cites == [] and "from 860 to 550" in reason
    text, cites, reason = judge("The rural population dropped from 860 million to 550 million [1].", CHANGE, q)
    assert reason is None and [c.n for c in cites] == [1]


def test_a_numbered_list_keeps_each_item_whole_and_cited():
    text = "Tea is picked in March and rice in June, by the farmers of Pu'er."
    ps = [Passage(1, Chunk("c1", "a.txt", text, 0, len(text)), 0.9)]
    checked, cited = check_citations("Two crops are picked:\n1. Tea in March\n2. Rice in June.", ps)
    assert checked.splitlines() == ["Two crops are picked:", "1. Tea in March [1]", "2. Rice in June [1]."]
    assert [c.n for c in cited] == [1]
    inline, _ = check_citations("Two crops are picked: 1. Tea in March. 2. Rice in June.", ps)
    assert inline.splitlines()[1:] == ["1. Tea in March [1].", "2. Rice in June [1]."]


def test_an_answer_that_adds_nothing_to_the_question_is_not_an_answer():
    from docqa.answering.checks import RESTATES, judge

    text = "The two crops differ in their picking seasons: tea in March, rice in June."
    ps = [Passage(1, Chunk("c1", "a.txt", text, 0, len(text)), 0.9)]
    question = ["How do the two crops differ in their picking seasons?"]
    assert judge("The two crops differ in their picking seasons [1].", ps, question)[2] == RESTATES
    checked, _, reason = judge("Tea is picked in March, rice in June [1].", ps, question)
    assert reason is None and checked.endswith("[1].")
    assert judge("Yes, they differ in their picking seasons [1].", ps, question)[2] is None  # a verdict says something


def test_a_lower_case_product_the_passages_never_name_is_refused_before_generation():
    from docqa.answering.checks import gate
    from docqa.retrieve.fusion import Retrieval

    text = "The booktabs package draws rules with \\toprule, \\midrule and \\bottomrule; S columns align numbers."
    found = Retrieval([Passage(1, Chunk("c1", "booktabs.pdf", text, 0, len(text)), 0.6)], 0.6)
    rare = {"booktabs", "siunitx", "tabularray", "practise", "pg_tabler"}.__contains__
    ask = lambda q: gate(q, found, 0.2, rare=rare)  # noqa: E731
    assert ask("How do I align numbers with the siunitx package's S column?") == (
        "no passage mentions siunitx from the question"
    )
    assert ask("Can tabularray's rules replace booktabs rules?") == "no passage mentions tabularray from the question"
    assert ask("How does pg_tabler draw rules?") == "no passage mentions pg_tabler from the question"  # written as code
    # Named in the passages (or one letter off), or a plain word, however rare: on to the model.
    assert ask("Which rules does the booktabs package draw?") is None
    assert ask("Which rules does the booktab package draw?") is None
    assert ask("How should I practise drawing rules?") is None
    # Without the embedder's vocabulary, the check is off.
    assert gate("How do I align numbers with the siunitx package's S column?", found, 0.2) is None


def test_a_command_the_passages_never_show_is_an_invented_answer():
    from docqa.answering.checks import judge

    text = "Stop the server with pg_ctl stop -m fast; the shell is set per user."
    ps = [Passage(1, Chunk("c1", "a.html", text, 0, len(text)), 0.7)]
    q = ["How do I change my login shell?"]
    assert judge("Run `chsh -s /bin/zsh` to change the shell [1].", ps, q)[2] == (
        "the draft answer names things found in no passage (chsh -s /bin/zsh)"
    )
    assert judge("The shell is set per user; stop the server with `pg_ctl stop -m fast` [1].", ps, q)[2] is None


def test_example_numbers_and_units_in_a_question_are_not_near_misses():
    from docqa.answering.checks import gate
    from docqa.retrieve.fusion import Retrieval

    text = "Upgrading between minor releases never needs a dump and restore; shared_buffers starts at 25% of RAM."
    found = Retrieval([Passage(1, Chunk("c1", "a.html", text, 0, len(text)), 0.6)], 0.6)
    assert gate("Do minor releases need a dump and restore, say 15.3 to 15.7?", found, 0.2) is None
    assert gate("With a few GB of RAM, where should shared_buffers start?", found, 0.2) is None
    assert gate("Do minor releases of version 15.7 need a dump and restore?", found, 0.2) == (
        "no passage mentions 15.7 from the question"
    )
