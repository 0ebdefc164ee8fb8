from docqa.ingest.chunking import Span, chunk_document, paragraph_spans, sentence_spans, split_long
from docqa.ingest.readers import Document, plain_headings


def words(text: str) -> int:
    return len(text.split())


def test_chunks_respect_window_and_sentence_boundaries():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(30))
    chunks = chunk_document(Document(text), "a.txt", words, max_tokens=30, overlap_tokens=8)
    assert len(chunks) > 5
    for c in chunks:
        assert words(c.text) <= 30
        assert c.text.startswith("Sentence") and c.text.endswith(".")
        assert text[c.start : c.end] == c.text


def test_chunks_overlap_by_trailing_sentences():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(10))
    chunks = chunk_document(Document(text), "a.txt", words, max_tokens=21, overlap_tokens=7)
    # 3 sentences fit; each next chunk starts with the previous chunk's last sentence.
    assert [c.text.count("Sentence") for c in chunks[:2]] == [3, 3]
    assert chunks[1].start < chunks[0].end
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        last = "Sentence number" + previous.text.rsplit("Sentence number", 1)[1]
        assert last.endswith(" has exactly seven words.") and chunk.text.startswith(last + " "), (previous, chunk)
    assert chunks[1].text.startswith("Sentence number 2 has exactly seven words. Sentence number 3")


def test_no_overlap_when_disabled():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(10))
    chunks = chunk_document(Document(text), "a.txt", words, max_tokens=21, overlap_tokens=0)
    assert all(a.end < b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_headings_split_chunks_and_label_them():
    text = "Intro sentence one. Intro two.\n\nSecond Part\n\nBody of part two. More body."
    doc = Document(text, headings=plain_headings(text))
    chunks = chunk_document(doc, "a.txt", words, max_tokens=100, overlap_tokens=10)
    assert [c.heading for c in chunks] == [None, "Second Part"]
    assert chunks[1].text == "Second Part\n\nBody of part two. More body."


def test_ids_are_stable_and_distinct():
    text = "One fact here. Another fact there.\n\nA third paragraph."
    a = chunk_document(Document(text), "a.txt", words, 4, 0)
    b = chunk_document(Document(text), "a.txt", words, 4, 0)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)
    other = chunk_document(Document(text), "b.txt", words, 4, 0)
    assert not {c.id for c in a} & {c.id for c in other}


def test_overlong_sentence_is_cut_at_word_boundaries():
    text = "word " * 50
    pieces = split_long(text, Span(0, len(text.rstrip())), 12, words)
    assert all(words(text[p.start : p.end]) <= 12 for p in pieces)
    assert sum(words(text[p.start : p.end]) for p in pieces) == 50


def test_pages_are_carried():
    doc = Document("Page one text.\n\nPage two text.", pages=[(0, 1), (16, 2)])
    chunks = chunk_document(doc, "a.pdf", words, 3, 0)
    assert [c.page for c in chunks] == [1, 2]


def test_paragraph_and_sentence_spans():
    text = "A b. C d!\n\n  E f?"
    paras = paragraph_spans(text)
    assert [text[p.start : p.end] for p in paras] == ["A b. C d!", "E f?"]
    assert [text[s.start : s.end] for s in sentence_spans(text, paras[0])] == ["A b.", "C d!"]
