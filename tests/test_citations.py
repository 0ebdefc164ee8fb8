from docqa.answering.checks import check_citations, declined, parse_markers, unsupported_numbers
from docqa.types import Chunk, Passage


def passages(*texts: str) -> list[Passage]:
    return [Passage(i + 1, Chunk(f"c{i}", "a.txt", t, 0, len(t)), 0.5) for i, t in enumerate(texts)]


P = passages("Tea harvest begins in March.", "The Hani terraces were listed in 2013.", "Rice is grown on terraces.")


def test_valid_marker_kept():
    text, cites = check_citations("The terraces were listed in 2013 [2].", P)
    assert text == "The terraces were listed in 2013 [2]."
    assert [c.n for c in cites] == [2]
    assert cites[0].sentences == ("The terraces were listed in 2013.",)


def test_marker_to_missing_passage_removed_and_replaced_by_support():
    text, cites = check_citations("The terraces were listed in 2013 [7].", P)
    assert text == "The terraces were listed in 2013 [2]."
    assert [c.n for c in cites] == [2]


def test_wrong_marker_repointed_to_supporting_passage():
    text, cites = check_citations("The harvest begins in March [3].", P)
    assert [c.n for c in cites] == [1]
    assert text.endswith("[1].")


def test_missing_marker_attached_by_overlap_only_when_supported():
    text, cites = check_citations("Tea harvest begins in March. Bananas are yellow.", P)
    assert text == "Tea harvest begins in March [1]. Bananas are yellow."
    assert [c.n for c in cites] == [1]


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
