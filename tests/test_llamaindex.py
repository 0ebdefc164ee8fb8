"""docqa embedded in llama-index: the retriever and the query engine, over the fake pipeline."""

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.query_engine import RetrieverQueryEngine

from docqa.llamaindex import DocqaQueryEngine, DocqaRetriever


def test_retriever_returns_docqas_passages_as_nodes(make_pipeline):
    pipeline = make_pipeline("unused")
    retriever = DocqaRetriever(pipeline, top_k=2)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("How many hectares do the Hani terraces cover?")
    want = pipeline.retriever.retrieve("How many hectares do the Hani terraces cover?", 2)
    assert [n.node.node_id for n in nodes] == [p.chunk.id for p in want.passages]
    assert "16,603 hectares" in nodes[0].node.get_content()
    assert nodes[0].node.metadata["source"] == "yunnan.txt" and nodes[0].score == want.passages[0].score


def test_query_engine_answers_with_cited_source_nodes(make_pipeline):
    engine = DocqaQueryEngine(pipeline=make_pipeline("The harvest begins in March [1]."))
    assert isinstance(engine, BaseQueryEngine)
    response = engine.query("When does the tea harvest begin?")
    assert response.response == "The harvest begins in March [1]."
    assert [n.node.metadata["n"] for n in response.source_nodes] == [1]
    assert "March" in response.source_nodes[0].node.get_content()
    assert response.metadata["abstained"] is False


def test_query_engine_abstains_with_the_reason(make_pipeline):
    engine = DocqaQueryEngine(pipeline=make_pipeline("Farmers picked 450 tonnes in 2020 [1]."))
    response = engine.query("How much tea did Pu'er farmers pick in 2020?")
    assert response.metadata["abstained"] and "450" in response.metadata["abstain_reason"]
    assert response.source_nodes == [] and response.response == "The documents don't answer this question."


def test_retriever_plugs_into_llama_index_query_engines(make_pipeline):
    """A llama-index application can build its own engine on docqa's retriever."""
    from llama_index.core.llms.mock import MockLLM

    engine = RetrieverQueryEngine.from_args(DocqaRetriever(make_pipeline("unused"), top_k=1), llm=MockLLM())
    response = engine.query("When does the tea harvest begin?")
    assert response.source_nodes and "March" in response.source_nodes[0].node.get_content()
