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
    pipeline = make_pipeline("Cargo tonnage fell to 4,200 tonnes in 2019 [1].", chunk_tokens=200)
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
