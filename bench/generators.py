"""The generator backends on the same RAG prompts, in one run: `python bench/generators.py`.

    python bench/generators.py [--profile default] [--questions 10]
        [--backends transformers,openvino-int8,openvino-int4] [--llama-site /tmp/llvenv/lib/python3.11/site-packages]

Each question of eval/questions.jsonl (answerable ones, evenly spaced) is retrieved once; every
backend then gets the same chat messages (docqa's answer prompt), greedy, `max_new_tokens` at most.
Backends are loaded together and take turns on each question, so the machine's load hits all
alike. Reports, per backend, the median time to first token and to the whole answer, the prompt tokens,
and how many answers have exactly the text of the first backend (the reference). Ratios are taken
within this run only. With `--llama-site` (a site-packages holding llama-cpp-python, see
bench/vs_llama_cpp.py for the build), llama.cpp runs the same GGUF on the same messages too.
Prints the CPU's flags and writes bench/generators.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from docqa.cpu import cpu_summary, describe_cpu  # noqa: E402


def load(backend: str, settings):
    """A generator for a backend name: transformers, openvino-int8, openvino-int4, or llama.cpp."""
    from docqa.generate import PROFILE_MODELS, load_generator

    if backend == "transformers":
        return load_generator(settings.model_copy(update={"llm_backend": "transformers"}))
    if backend.startswith("openvino-"):  # openvino-int8, openvino-int4, openvino-int8+lookup, openvino-int8+prefix
        from docqa.generate import ov

        weights, _, variant = backend.removeprefix("openvino-").partition("+")
        s = settings.model_copy(update={"llm_backend": "openvino", "ov_weights": weights})
        if not variant:
            return load_generator(s)
        folder = ov.ov_dir(s.resolved_cache_dir, PROFILE_MODELS[s.profile], weights)
        load_generator(s)  # exports the copy when it isn't cached yet
        lookup = s.prompt_lookup_tokens if variant == "lookup" else 0
        return ov.OpenVINOGenerator(backend, folder, s.threads, lookup, prefix_cache=variant == "prefix")
    if backend == "llama.cpp":
        return LlamaCpp(settings)
    raise SystemExit(f"unknown backend {backend}")


class LlamaCpp:
    """llama-cpp-python on the profile's GGUF, with the same chat messages (its own chat template)."""

    def __init__(self, settings) -> None:
        from llama_cpp import Llama

        from docqa.generate.weights import PACKAGED, PROFILE_MODELS, join_parts, part_paths

        spec = PACKAGED[PROFILE_MODELS[settings.profile]]
        gguf = settings.resolved_cache_dir / "gguf" / f"{spec.name}.gguf"
        if not gguf.is_file():
            join_parts(part_paths(spec), gguf, spec.sha256, spec.name)
        self.llm = Llama(str(gguf), n_ctx=4096, n_threads=settings.threads or 2, n_batch=512, verbose=False)

    def stream(self, messages, max_new_tokens):
        for part in self.llm.create_chat_completion(messages, max_tokens=max_new_tokens, temperature=0, stream=True):
            text = part["choices"][0]["delta"].get("content")
            if text:
                yield text


def time_answers(generator, prompts: list[list[dict]], max_new: int) -> list[dict]:
    rows = []
    for messages in prompts:
        started, first, pieces = time.perf_counter(), None, []
        for piece in generator.stream(messages, max_new):
            first = first or time.perf_counter() - started
            pieces.append(piece)
        rows.append({"ttft_s": first or 0.0, "total_s": time.perf_counter() - started, "text": "".join(pieces)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--backends", default="transformers,openvino-int8,openvino-int4")
    ap.add_argument("--llama-site", type=Path, help="site-packages holding llama_cpp: adds the llama.cpp backend")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "generators.json")
    args = ap.parse_args()
    cpu = cpu_summary()
    print(f"CPU {describe_cpu(cpu)}", flush=True)

    from docqa.answering.pipeline import Pipeline
    from docqa.settings import Settings

    settings = Settings.load(profile=args.profile)
    backends = args.backends.split(",")
    if args.llama_site:
        sys.path.append(str(args.llama_site))
        backends.append("llama.cpp")
    pipeline = Pipeline.from_settings(settings.model_copy(update={"llm_backend": "transformers"}), generator=None)
    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").open()]
    questions = [q["question"] for q in questions if q.get("answerable", True)]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    prompts = []
    for question in questions:
        found = pipeline.retriever.retrieve(question, settings.top_k)
        prompts.append(pipeline.prompts.answer_messages(question, found.passages))

    # Every backend is loaded first, then each question goes through all of them in turn, so a
    # change in the machine's load (other processes) hits every backend alike and the ratios hold.
    generators, load_s = {}, {}
    for backend in backends:
        started = time.perf_counter()
        generators[backend] = load(backend, settings)
        load_s[backend] = time.perf_counter() - started
        time_answers(generators[backend], prompts[:1], 8)  # warm-up: first-call allocations
    rows: dict[str, list[dict]] = {b: [] for b in backends}
    for i, messages in enumerate(prompts):
        for backend in backends:
            rows[backend] += time_answers(generators[backend], [messages], settings.max_new_tokens)
        print(f"question {i + 1}/{len(prompts)}: " + ", ".join(f"{b} {rows[b][-1]['total_s']:.1f} s" for b in backends))
    results: dict[str, dict] = {}
    reference = [r["text"] for r in rows[backends[0]]]
    for backend in backends:
        texts = [r["text"] for r in rows[backend]]
        generator = generators[backend]
        tokens = [generator.count_tokens(m) for m in prompts] if hasattr(generator, "count_tokens") else []
        results[backend] = r = {
            "load_s": round(load_s[backend], 1),
            "ttft_p50_s": round(statistics.median(x["ttft_s"] for x in rows[backend]), 3),
            "answer_p50_s": round(statistics.median(x["total_s"] for x in rows[backend]), 3),
            "prompt_tokens_p50": statistics.median(tokens) if tokens else None,
            "same_text_as_reference": sum(a == b for a, b in zip(texts, reference, strict=True)),
            "answers": texts,
        }
        print(
            f"{backend:16s} load {r['load_s']:6.1f} s  ttft p50 {r['ttft_p50_s']:6.2f} s  answer p50"
            f" {r['answer_p50_s']:6.2f} s  same text {r['same_text_as_reference']}/{len(prompts)}",
            flush=True,
        )
    base = results[backends[0]]["answer_p50_s"]
    for r in results.values():
        r["speedup_vs_reference"] = round(base / r["answer_p50_s"], 2)
    if "llama.cpp" in results:
        for r in results.values():
            r["speedup_vs_llama_cpp"] = round(results["llama.cpp"]["answer_p50_s"] / r["answer_p50_s"], 2)
    out = {"cpu": cpu, "profile": args.profile, "questions": questions, "reference": backends[0], "backends": results}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
