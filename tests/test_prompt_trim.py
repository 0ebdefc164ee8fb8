"""prompt_trim in the pipeline: the model reads the passages' relevant sentences, the checks the whole passages."""

from __future__ import annotations

from pathlib import Path

# One passage-sized chunk: the answer sentence, its neighbour, and far-off sentences about other things.
LONG_DOC = (
    "Harbour report\n\n"
    "The old harbour opened in 1871 and served fishing boats for a century. "
    "Its lighthouse was rebuilt after a storm. "
    "Ferries to the islands leave every two hours in summer. "
    "The harbour master keeps a record of every arrival. "
    "Cargo tonnage fell to 4,200 tonnes in 2019 as trade moved south. "
    "Gulls nest on the breakwater each spring. "
    "Painters sell their work on the quay at weekends. "
    "A seafood market opens at dawn on Fridays.\n"
)


def write_doc(docs: Path) -> None:
    for old in docs.iterdir():
        old.unlink()
    (docs / "harbour.txt").write_text(LONG_DOC, encoding="utf-8")


def user_prompt(pipeline) -> str:
    return pipeline.generator.calls[-1][-1]["content"]


def test_the_model_reads_only_the_relevant_sentences(make_pipeline, docs: Path) -> None:
    write_doc(docs)
    pipeline = make_pipeline("Cargo tonnage fell to 4,200 tonnes in 2019 [1].", chunk_tokens=200, prompt_trim=True)
    answer = pipeline.ask("How much cargo tonnage did the harbour handle in 2019?")
    prompt = user_prompt(pipeline)
    assert "4,200 tonnes" in prompt
    assert "seafood market" not in prompt and "spring. …" in prompt  # cut, and the cut is marked
    # The draft is checked against the whole passage, and the citation shows the whole passage.
    assert not answer.abstained, answer.reason
    assert "seafood market" in answer.citations[0].passage.chunk.text


def test_prompt_trim_off_gives_the_whole_passage(make_pipeline, docs: Path) -> None:
    write_doc(docs)
    pipeline = make_pipeline("Cargo tonnage fell to 4,200 tonnes in 2019 [1].", chunk_tokens=200, prompt_trim=False)
    pipeline.ask("How much cargo tonnage did the harbour handle in 2019?")
    assert "seafood market" in user_prompt(pipeline)


class FixedRetriever:
    """Returns the same scored passages for every query (what the retriever found, scores included)."""

    def __init__(self, inner, passages) -> None:
        self.inner, self.passages = inner, passages

    def retrieve(self, query, top_k=4, mode="hybrid"):
        from docqa.retrieve.fusion import Retrieval

        return Retrieval(list(self.passages), max(p.score for p in self.passages))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def scored(n: int, text: str, score: float):
    from dataclasses import replace

    from support import passage

    return replace(passage(n, text), score=score)


def test_passages_far_below_the_best_are_dropped_and_renumbered(make_pipeline) -> None:
    found = [
        scored(1, "Cargo tonnage fell to 4,200 tonnes in 2019.", 0.80),
        scored(2, "The harbour master keeps a record of every arrival.", 0.78),
        scored(3, "Gulls nest on the breakwater each spring.", 0.40),  # far below, none of the question's terms
        scored(4, "Harbour cargo tonnage in 2019 was recorded monthly.", 0.41),  # far below, but the question's terms
    ]
    reply = "Cargo tonnage fell to 4,200 tonnes in 2019 [1]. It was recorded monthly [3]."
    pipeline = make_pipeline(reply, prompt_trim=True)
    pipeline.retriever = FixedRetriever(pipeline.retriever, found)
    answer = pipeline.ask("What was the harbour's cargo tonnage in 2019?")
    prompt = user_prompt(pipeline)
    assert "Gulls" not in prompt and "[4]" not in prompt
    assert "[3]\nHarbour cargo tonnage in 2019 was recorded monthly." in prompt  # kept for its terms, now [3]
    assert [p.chunk.text[:5] for p in answer.retrieved] == ["Cargo", "The h", "Harbo"]
    assert {c.n for c in answer.citations} == {1, 3}
    assert "recorded monthly" in next(c for c in answer.citations if c.n == 3).passage.chunk.text

    off = make_pipeline(reply, prompt_trim=False)
    off.retriever = FixedRetriever(off.retriever, found)
    off.ask("What was the harbour's cargo tonnage in 2019?")
    assert "Gulls" in user_prompt(off)
