"""Paired before/after for prompt-lookup decoding: the same RAG prompts, greedy, with and without.

    python bench/prompt_lookup.py [small|default]

Prints time to first token, total time, answer tokens and decode tok/s for each question, both ways.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

from transformers import TextIteratorStreamer

from docqa.answering.pipeline import Pipeline
from docqa.settings import Settings

QUESTIONS = [
    "What was China's urbanization rate in 2019?",
    "What are the left-behind groups in the countryside?",
    "What must the implementation of the two strategies rely on?",
]


def main() -> None:
    profile = sys.argv[1] if len(sys.argv) > 1 else "small"
    pipeline = Pipeline.from_settings(Settings.load(profile=profile))
    gen = pipeline.generator
    decode: dict[str, list[float]] = {"off": [], "on": []}
    for question in QUESTIONS:
        found = pipeline.retriever.retrieve(question, pipeline.settings.top_k)
        messages = pipeline.answer_messages(question, found.passages)
        inputs = gen._inputs(messages)
        for label, extra in (("off", {}), ("on", {"prompt_lookup_num_tokens": 10})):
            streamer = TextIteratorStreamer(gen.tokenizer, skip_prompt=True, skip_special_tokens=True)
            kwargs = dict(**inputs, streamer=streamer, max_new_tokens=100, do_sample=False, **extra)
            started = time.perf_counter()
            thread = threading.Thread(target=lambda kw=kwargs: gen.model.generate(**kw))
            thread.start()
            first, pieces = None, []
            for piece in streamer:
                first = first or time.perf_counter() - started
                pieces.append(piece)
            thread.join()
            total = time.perf_counter() - started
            tokens = len(gen.tokenizer.encode("".join(pieces)))
            rate = (tokens - 1) / (total - first) if first and total > first else 0.0
            decode[label].append(rate)
            print(
                f"{label:>3} ttft {first:.2f}s total {total:.2f}s tokens {tokens} decode {rate:.1f} tok/s",
                repr("".join(pieces)[:80]),
            )
    print({label: round(statistics.median(rates), 1) for label, rates in decode.items()}, "median decode tok/s")


if __name__ == "__main__":
    main()
