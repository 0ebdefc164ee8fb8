"""docqa vs llama.cpp on the same RAG prompts: the same Q4_K_M GGUF, the same retrieved passages.

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON" \\
        python -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install llama-cpp-python==0.3.36   # ~7 min build
    python bench/vs_llama_cpp.py --site /tmp/llvenv/lib/python3.11/site-packages [--questions 10]

llama-cpp-python is not a docqa dependency (it builds from source for minutes); `--site` appends
the folder it was installed into to sys.path. `-march=native` (GGML_NATIVE) crashed with an illegal
instruction on this VM kind, so the build names the instruction sets instead. Both engines get the
same chat messages (docqa's system prompt, retrieved passages and question), greedy, 160 new
tokens at most, 2 threads. Prints medians of time to first token and total, writes bench/vs_llama_cpp.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from docqa.cpu import cpu_summary, describe_cpu

    print(f"CPU {describe_cpu(cpu_summary())}", flush=True)  # numbers differ by CPU: say which one
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", type=Path, help="site-packages holding llama_cpp")
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.site:
        sys.path.append(str(args.site))
    from llama_cpp import Llama

    from docqa.answering.pipeline import Pipeline
    from docqa.generate.weights import PACKAGED, PROFILE_MODELS, join_parts, part_paths
    from docqa.settings import Settings

    pipeline = Pipeline.from_settings(Settings.load(profile="default"))
    spec = PACKAGED[PROFILE_MODELS["default"]]
    gguf = pipeline.settings.resolved_cache_dir / "gguf" / f"{spec.name}.gguf"
    if not gguf.is_file():
        join_parts(part_paths(spec), gguf, spec.sha256, spec.name)
    llm = Llama(str(gguf), n_ctx=2048, n_threads=args.threads, n_batch=512, verbose=False)

    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").open()]
    questions = [q["question"] for q in questions if q.get("answerable", True)]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    rows: dict[str, list[tuple[float, float]]] = {"docqa": [], "llama.cpp": []}
    max_new = pipeline.settings.max_new_tokens
    for question in questions:
        found = pipeline.retriever.retrieve(question, pipeline.settings.top_k)
        messages = pipeline.prompts.answer_messages(question, found.passages)
        started, first = time.perf_counter(), None
        for _ in pipeline.generator.stream(messages, max_new):
            first = first or time.perf_counter() - started
        rows["docqa"].append((first or 0.0, time.perf_counter() - started))

        llm.reset()  # no KV carried over between questions
        started, first = time.perf_counter(), None
        stream = llm.create_chat_completion(messages=messages, max_tokens=max_new, temperature=0.0, stream=True)
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter() - started
        rows["llama.cpp"].append((first or 0.0, time.perf_counter() - started))
        print(f"docqa {rows['docqa'][-1]}  llama.cpp {rows['llama.cpp'][-1]}", flush=True)

    summary = {
        name: {
            "ttft_p50_s": statistics.median(r[0] for r in rs),
            "total_p50_s": statistics.median(r[1] for r in rs),
            "questions": len(rs),
        }
        for name, rs in rows.items()
    }
    summary["speedup_total"] = summary["llama.cpp"]["total_p50_s"] / summary["docqa"]["total_p50_s"]
    summary["speedup_ttft"] = summary["llama.cpp"]["ttft_p50_s"] / summary["docqa"]["ttft_p50_s"]
    (ROOT / "bench" / "vs_llama_cpp.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
