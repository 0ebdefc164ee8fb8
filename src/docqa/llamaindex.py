"""docqa inside llama-index applications: its retriever as a retriever, its answers as a query engine.

    from docqa import Pipeline
    from docqa.llamaindex import DocqaQueryEngine, DocqaRetriever

    pipeline = Pipeline.from_settings()
    nodes = DocqaRetriever(pipeline).retrieve("What was the urbanization rate in 2019?")
    response = DocqaQueryEngine(pipeline).query("What was the urbanization rate in 2019?")
    print(response.response, [n.node.metadata["source"] for n in response.source_nodes])

The retriever returns docqa's hybrid ranking (dense + BM25, fused, near-duplicates dropped) as
`NodeWithScore`s scored by dense cosine. The query engine runs `Pipeline.ask`: the same gate,
checked citations and abstention as every other entry point. Its `source_nodes` are the cited
passages (none for an abstention), and `metadata["docqa"]` holds the full JSON answer.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from docqa.answering.pipeline import Pipeline
from docqa.types import Passage


def passage_node(passage: Passage) -> NodeWithScore:
    """A passage as llama-index sees one: a TextNode with docqa's chunk id, its location as metadata."""
    chunk = passage.chunk
    metadata: dict[str, Any] = {"source": chunk.source, "heading": chunk.heading, "page": chunk.page, "n": passage.n}
    node = TextNode(
        id_=chunk.id,
        text=chunk.text,
        metadata=metadata,
        start_char_idx=chunk.start,
        end_char_idx=chunk.end,
        excluded_embed_metadata_keys=list(metadata),
        excluded_llm_metadata_keys=["n"],
    )
    return NodeWithScore(node=node, score=passage.score)


class DocqaRetriever(BaseRetriever):
    """docqa's retrieval over its own index, as a llama-index retriever."""

    def __init__(self, pipeline: Pipeline, top_k: int | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.top_k = top_k or pipeline.settings.top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self.pipeline.retriever.retrieve(query_bundle.query_str, self.top_k, self.pipeline.settings.retrieval)
        return [passage_node(p) for p in found.passages]


class DocqaQueryEngine(CustomQueryEngine):
    """docqa's checked, cited answers as a llama-index query engine."""

    pipeline: Pipeline

    def custom_query(self, query_str: str) -> Response:
        answer = self.pipeline.ask(query_str)
        return Response(
            response=answer.answer,
            source_nodes=[passage_node(c.passage) for c in answer.citations],
            metadata={
                "abstained": answer.abstained,
                "abstain_reason": answer.abstain_reason,
                "docqa": answer.to_dict(),
            },
        )
