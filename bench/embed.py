"""Embedding backends side by side on the same chunks: torch fp32, ONNX Runtime fp32, ONNX Runtime int8.

    python bench/embed.py                     # ~330 chunks (essay + PostgreSQL docs), 3 repeats
    python bench/embed.py --chunks 120 --repeats 1

The chunks are what `docqa index` embeds (`Chunk.search_text`, 128 word pieces, 32 overlap): the bundled
essay, then the PostgreSQL manual pages of eval/collections/pgdocs/docs (when fetched; those the
collection's questions cite first) up to --chunks. Repeats are interleaved (torch, onnx, int8, torch, ...)
so a machine shared with other jobs slows all three alike; compare the ratios of one run, not the absolute
chunks/s of runs on different days.

Quality, against torch fp32 on the same chunks: the smallest and mean cosine per chunk, and for every
question of eval/questions.jsonl and the pgdocs set whether dense retrieval over these chunks returns the
same top 4 (docqa's top_k) and the same top 20 (its candidates). int8 is usable only with min cosine
>= 0.999 and identical top 4. Writes bench/runs/embed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from docqa.cpu import cpu_summary, describe_cpu
from docqa.ingest.chunking import chunk_document
from docqa.ingest.embeddings import OnnxEmbedder, SentenceTransformerEmbedder, default_threads
from docqa.ingest.readers import UnreadableFile, read_document
from docqa.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ESSAY = ROOT / "docs" / "poverty-alleviation-and-rural-revitalization.txt"
PGDOCS = ROOT / "eval" / "collections" / "pgdocs"
INT8_MIN_COSINE = 0.999


def load_chunks(count_tokens, limit: int) -> tuple[list[str], list[str]]:
    """(chunk texts, source file names), the essay first, then PostgreSQL pages up to `limit` chunks."""
    files = [ESSAY]
    pages = sorted((PGDOCS / "docs").glob("*.html"))
    cited = {q.get("source") for q in read_questions(PGDOCS / "questions.jsonl")}
    files += [p for p in pages if p.name in cited] + [p for p in pages if p.name not in cited]
    texts: list[str] = []
    sources: list[str] = []
    for path in files:
        if len(texts) >= limit:
            break
        try:
            doc = read_document(path)
        except UnreadableFile:
            continue
        for chunk in chunk_document(doc, path.name, count_tokens, max_tokens=128, overlap_tokens=32):
            texts.append(chunk.search_text)
            sources.append(path.name)
    return texts[:limit], sources[:limit]


def read_questions(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def top(queries: np.ndarray, chunks: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ chunks.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def agreement(ref: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]) -> dict:
    """How many questions get the same dense top 4 (as a set, and in order) and the same top 20 set."""
    (rq, rc), (oq, oc) = ref, other
    out: dict[str, int] = {"questions": len(rq)}
    for k in (4, 20):
        a, b = top(rq, rc, k), top(oq, oc, k)
        out[f"same_top{k}_set"] = int(sum(set(x) == set(y) for x, y in zip(a, b, strict=True)))
        out[f"same_top{k}_order"] = int((a == b).all(axis=1).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=330)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX export cache (default: docqa's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "embed.json")
    args = parser.parse_args(argv)

    cpu = cpu_summary()
    print(f"CPU: {describe_cpu(cpu)}; {default_threads()} cores for this process")
    cache_dir = args.cache_dir or Settings().resolved_cache_dir

    loads: dict[str, float] = {}
    started = time.perf_counter()
    torch_fp32 = SentenceTransformerEmbedder(dtype="float32")
    loads["torch fp32"] = time.perf_counter() - started
    backends: dict[str, object] = {"torch fp32": torch_fp32}
    for label, precision in (("onnx fp32", "float32"), ("onnx int8", "int8")):
        started = time.perf_counter()  # includes the one-off export / quantisation when the cache is empty
        backends[label] = OnnxEmbedder(cache_dir=cache_dir, precision=precision)
        loads[label] = time.perf_counter() - started

    texts, sources = load_chunks(torch_fp32.count_tokens, args.chunks)
    tokens = [torch_fp32.count_tokens(t) for t in texts]
    print(f"{len(texts)} chunks from {len(set(sources))} files, {statistics.mean(tokens):.0f} word pieces on average")
    questions = [q["question"] for q in read_questions(ROOT / "eval" / "questions.jsonl")]
    questions += [q["question"] for q in read_questions(PGDOCS / "questions.jsonl")]

    for embedder in backends.values():
        embedder.embed(texts[:8])  # warm up (first-call allocations, thread pools)
    seconds: dict[str, list[float]] = {label: [] for label in backends}
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for rep in range(args.repeats):
        for label, embedder in backends.items():
            started = time.perf_counter()
            chunk_vectors = embedder.embed(texts)
            seconds[label].append(time.perf_counter() - started)
            if rep == 0:
                vectors[label] = (embedder.embed(questions), chunk_vectors)
            print(f"  repeat {rep + 1}: {label:10s} {len(texts) / seconds[label][-1]:7.1f} chunks/s", flush=True)

    ref = vectors["torch fp32"]
    results: dict[str, dict] = {}
    for label in backends:
        cos = (vectors[label][1] * ref[1]).sum(axis=1)
        qcos = (vectors[label][0] * ref[0]).sum(axis=1)
        median_s = statistics.median(seconds[label])
        results[label] = {
            "chunks_per_s": round(len(texts) / median_s, 1),
            "seconds": [round(s, 2) for s in seconds[label]],
            "load_s": round(loads[label], 1),
            "min_cosine": round(float(min(cos.min(), qcos.min())), 7),
            "mean_cosine": round(float(np.concatenate([cos, qcos]).mean()), 7),
            "retrieval": agreement(ref, vectors[label]),
        }
    base = results["torch fp32"]["chunks_per_s"]
    for r in results.values():
        r["vs_torch"] = round(r["chunks_per_s"] / base, 2)
    int8 = results["onnx int8"]
    int8_ok = int8["min_cosine"] >= INT8_MIN_COSINE and int8["retrieval"]["same_top4_set"] == len(questions)
    verdict = "onnx int8" if int8_ok else "onnx fp32"

    print(f"\n{'backend':10s} {'chunks/s':>9s} {'vs torch':>8s} {'min cos':>9s} {'mean cos':>9s}  same top4 / top20")
    for label, r in results.items():
        ret = r["retrieval"]
        print(
            f"{label:10s} {r['chunks_per_s']:9.1f} {r['vs_torch']:7.2f}x {r['min_cosine']:9.7f} {r['mean_cosine']:9.7f}"
            f"  {ret['same_top4_set']}/{ret['questions']} / {ret['same_top20_set']}/{ret['questions']}"
        )
    print(
        f"int8 gate (min cosine >= {INT8_MIN_COSINE}, same top 4 for every question): "
        f"{'passed' if int8_ok else 'failed'}; use {verdict}"
    )

    out = {
        "cpu": cpu,
        "threads": default_threads(),
        "chunks": len(texts),
        "files": len(set(sources)),
        "mean_word_pieces": round(statistics.mean(tokens), 1),
        "questions": len(questions),
        "repeats": args.repeats,
        "backends": results,
        "int8_gate_passed": int8_ok,
        "use": verdict,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as fh:
        json.dump(out, fh, indent=1)
    Path(fh.name).replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
