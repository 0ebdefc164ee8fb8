"""Decoding strategies side by side on the same RAG prompts (greedy, default profile).

    python bench/decoding.py [--questions 6] [--no-assisted]

- plain:     transformers generate, one token per forward pass
- lookup:    transformers generate with prompt-lookup drafts (10 tokens)
- assisted:  transformers generate with the 0.5B model drafting for the 1.5B (speculative decoding)
- noreuse:   docqa's own loop with prompt-lookup drafts, full prefill (no KV cache reuse)
- docqa:     docqa's own loop: prompt-lookup drafts + the system prompt's KV cache reused

This one script replaces the earlier one-off comparisons (prompt_lookup.py, prefix_reuse.py,
int8_decode.py); their results stay in bench/README.md.

Prints median time to first token and total per strategy, and how many answers match `plain`
exactly. Writes bench/decoding.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from transformers import TextIteratorStreamer

from docqa.answering.pipeline import Pipeline
from docqa.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def hf_generate(gen, messages, max_new_tokens: int, **extra) -> tuple[float, float, str]:
    inputs = gen._inputs(messages)
    streamer = TextIteratorStreamer(gen.tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens, do_sample=False, **extra)
    started = time.perf_counter()
    thread = threading.Thread(target=lambda: gen.model.generate(**kwargs))
    thread.start()
    first, pieces = None, []
    for piece in streamer:
        if piece and first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    thread.join()
    return first or 0.0, time.perf_counter() - started, "".join(pieces).strip()


def docqa_generate(gen, messages, max_new_tokens: int, reuse_prefix: bool = True) -> tuple[float, float, str]:
    gen.reuse_prefix = reuse_prefix
    started = time.perf_counter()
    first, pieces = None, []
    try:
        for piece in gen.stream(messages, max_new_tokens):
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
    finally:
        gen.reuse_prefix = True
    return first or 0.0, time.perf_counter() - started, "".join(pieces).strip()


def main() -> None:
    from docqa.cpu import cpu_summary, describe_cpu

    print(f"CPU {describe_cpu(cpu_summary())}", flush=True)  # numbers differ by CPU: say which one
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--no-assisted", action="store_true", help="skip the 0.5B draft model")
    args = ap.parse_args()

    pipeline = Pipeline.from_settings(Settings.load(profile="default"))
    gen = pipeline.generator
    strategies = {
        "plain": lambda m: hf_generate(gen, m, pipeline.settings.max_new_tokens),
        "lookup": lambda m: hf_generate(gen, m, pipeline.settings.max_new_tokens, prompt_lookup_num_tokens=10),
        "noreuse": lambda m: docqa_generate(gen, m, pipeline.settings.max_new_tokens, reuse_prefix=False),
        "docqa": lambda m: docqa_generate(gen, m, pipeline.settings.max_new_tokens),
    }
    if not args.no_assisted:
        from docqa.generate import load_generator

        draft = load_generator(Settings.load(profile="small")).model
        strategies["assisted"] = lambda m: hf_generate(gen, m, pipeline.settings.max_new_tokens, assistant_model=draft)

    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").open()]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in strategies}
    for question in questions:
        found = pipeline.retriever.retrieve(question, pipeline.settings.top_k)
        messages = pipeline.prompts.answer_messages(question, found.passages)
        gen.stream(messages, 1).__next__()  # warm the prefix cache like a running server has it
        for name, run in strategies.items():
            runs[name].append(run(messages))
            print(f"{name:>8} ttft {runs[name][-1][0]:.2f}s total {runs[name][-1][1]:.2f}s", flush=True)

    summary = {}
    for name, rows in runs.items():
        summary[name] = {
            "ttft_p50_s": statistics.median(r[0] for r in rows),
            "total_p50_s": statistics.median(r[1] for r in rows),
            "same_text_as_plain": sum(a[2] == b[2] for a, b in zip(rows, runs["plain"], strict=True)),
            "questions": len(rows),
        }
        s = summary[name]
        print(
            f"{name:>8}: ttft p50 {s['ttft_p50_s']:.2f} s, total p50 {s['total_p50_s']:.2f} s, "
            f"same text as plain {s['same_text_as_plain']}/{s['questions']}"
        )
    (ROOT / "bench" / "decoding.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
