"""The naive LlamaIndex starter pipeline, on docqa's models: the floor docqa has to beat.

`VectorStoreIndex.from_documents(...)` then `.as_query_engine()` with LlamaIndex's defaults
(1024-token chunks, top-2 similarity, its default QA prompt). The embedder and LLM are docqa's own,
wrapped as LlamaIndex components, so the comparison is about the pipeline, not the models.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

from docqa.answering.checks import declined
from docqa.generate import Generator, count_text_tokens
from docqa.ingest.embeddings import Embedder
from docqa.settings import Settings
from docqa.types import Answer, Chunk, Passage


def build_naive(settings: Settings, embedder: Embedder, generator: Generator, max_new_tokens: int = 256):
    """A callable question -> Answer running the LlamaIndex starter pipeline."""
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.llms import CustomLLM

    class DocqaEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embedder.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    class DocqaLLM(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=3900, num_output=max_new_tokens, model_name=generator.name)

        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            text = "".join(generator.stream([{"role": "user", "content": prompt}], max_new_tokens))
            return CompletionResponse(text=text)

        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Iterator[CompletionResponse]:
            text = ""
            for delta in generator.stream([{"role": "user", "content": prompt}], max_new_tokens):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

    documents = SimpleDirectoryReader(str(settings.docs_dir), recursive=True).load_data()
    index = VectorStoreIndex.from_documents(documents, embed_model=DocqaEmbedding(model_name=embedder.name))
    engine = index.as_query_engine(llm=DocqaLLM())

    return functools.partial(naive_answer, engine, generator)


def naive_answer(engine: Any, generator: Generator, question: str, history: Any = None) -> Answer:
    """Ask the starter query engine; its sources become the retrieved passages (it cites nothing).

    `history` is accepted and ignored: the starter query engine has no conversation, so a
    follow-up is asked on its own (as a user of that engine would get it).
    """
    started = time.perf_counter()
    response = engine.query(question)
    elapsed = (time.perf_counter() - started) * 1000
    text = str(response).strip()
    passages = []
    for n, node in enumerate(response.source_nodes, start=1):
        content = node.node.get_content()
        chunk = Chunk(node.node.node_id, node.node.metadata.get("file_name", "?"), content, 0, len(content))
        passages.append(Passage(n, chunk, float(node.score or 0.0)))
    return Answer(
        question=question,
        answer=text,
        abstained=declined(text),
        citations=[],  # the starter pipeline does not cite
        retrieved=passages,
        # No streaming in the starter engine: the first token arrives with the whole answer.
        timings={"first_token_ms": elapsed, "total_ms": elapsed},
        model=f"naive-llamaindex/{generator.name}",
        abstain_reason="model declined" if declined(text) else None,
        usage={"answer_tokens": count_text_tokens(generator, text)},
    )
