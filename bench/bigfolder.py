"""Memory of `docqa index` on big folders: peak RSS, index size and chunks/s for 1k, 3k and 10k files.

    python bench/bigfolder.py                              # 1k, 3k, 10k files (fast embedder), 100 real
    python bench/bigfolder.py --sizes 1000 --real 0        # one quick size, no real model

The folders are generated under /tmp (about 10 chunks a file, so 100k chunks at 10k files) from a
Zipf-distributed made-up vocabulary with names and numbers, so BM25 postings and the vocabulary grow
like real text. Each step runs in its own child process, whose memory is sampled from
/proc/PID/status (VmRSS every 20 ms, and the kernel's own peak VmHWM at the end):

- `index`: a fresh `update_index` of the folder;
- `rerun`: the same again with nothing changed (loads the old index, hashes every file, writes nothing);
- `open`: loading the index and building the retriever (FAISS + BM25), as `docqa ask` and the web app do.

Embedding 100k chunks with MiniLM on 2 cores takes over an hour, so the sizes run with a deterministic
fast embedder at MiniLM's dimension (384): the pipeline's own memory. The real embedder (ONNX or torch,
as `embed_backend = "auto"` picks) runs at `--real` files to show what the model adds. Its tokenizer
splits the made-up words into about five word pieces each, so a file makes about 50 chunks, not 10:
1,000 files would take hours on 2 shared cores, hence 100 by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
WORK = Path("/tmp/docqa-bigfolder")
GENERATOR = 2  # bump when the generated text changes, so cached folders are made again
WORDS_PER_FILE = 1000  # about 10 chunks of 128 tokens with 32 overlapping (fast embedder: a word is a token)
FILES_PER_FOLDER = 500


class FastEmbedder:
    """A deterministic stand-in at MiniLM's shape: 384-d unit vectors seeded by each text's CRC32.

    Fast enough that a 100k-chunk run measures the indexing pipeline, not the model.
    """

    name = "bench-fast-384"
    dim = 384
    max_tokens = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dim)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# --- the generated folder ------------------------------------------------------------------------


def vocabulary(size: int = 40_000, seed: int = 1) -> tuple[list[str], np.ndarray]:
    """Made-up words of 1-4 syllables with Zipf weights (rank r gets 1/r), as natural text has."""
    rng = np.random.default_rng(seed)
    onsets = "b c d f g h j k l m n p r s t v w z br ch cr dr fl gr pl sh st th tr".split()
    vowels = "a e i o u ai ea ou io".split()
    codas = ["", "", "n", "r", "s", "l", "t", "ng", "st"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        o, v, c = (rng.integers(0, len(kind), size=(size, 4)).tolist() for kind in (onsets, vowels, codas))
        for row, parts in enumerate(rng.integers(1, 5, size=size).tolist()):
            word = "".join(onsets[o[row][j]] + vowels[v[row][j]] + codas[c[row][j]] for j in range(parts))
            if word not in seen and len(words) < size:
                seen.add(word)
                words.append(word)
    weights = 1.0 / np.arange(1, size + 1)
    return words, weights / weights.sum()


def make_folder(folder: Path, files: int, seed: int = 7) -> None:
    """`files` documents of about WORDS_PER_FILE words in subfolders; reused when already made."""
    marker = folder / f".generated-{GENERATOR}-{files}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    words, p = vocabulary()
    cdf = np.cumsum(p)
    names = [f"Station{i}" for i in range(2000)]
    for i in range(files):
        rng = np.random.default_rng([seed, i])
        sub = folder / f"part{i // FILES_PER_FOLDER:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        ids = np.minimum(np.searchsorted(cdf, rng.random(WORDS_PER_FILE)), len(words) - 1)
        tokens = [words[k] for k in ids]
        for at in np.flatnonzero(rng.random(WORDS_PER_FILE) < 0.03):  # figures, as "60.60%"
            tokens[at] += f" {rng.integers(1, 100_000) / 100:.2f}%"
        for at in np.flatnonzero(rng.random(WORDS_PER_FILE) < 0.02):  # names
            tokens[at] += f" {names[rng.integers(len(names))]}"
        out = [f"Report {i} on {tokens[0]} {tokens[1]}\n"]
        ends = np.cumsum(rng.integers(8, 25, size=WORDS_PER_FILE))
        start = 0
        for end in ends[ends < WORDS_PER_FILE].tolist() + [WORDS_PER_FILE]:
            if start // 250 != end // 250 and end < WORDS_PER_FILE:
                out.append(f"\nSection {end // 250 + 1}\n")
            out.append(" ".join(tokens[start:end]).capitalize() + ".")
            start = end
        (sub / f"report-{i:05d}.txt").write_text(" ".join(out), encoding="utf-8")
    marker.touch()


# --- the child process: one step, its own peak reported at the end ----------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (the peak resident set) in bytes, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def child(step: str, docs: Path, index: Path, real: bool) -> dict:
    from docqa.settings import Settings

    settings = Settings(docs_dir=docs, index_dir=index)
    if real:
        from docqa.ingest.embeddings import embedder_from_settings

        embedder = embedder_from_settings(settings)
        embedder.embed(["warm up"])
    else:
        embedder = FastEmbedder()
    import faiss  # noqa: F401 - loaded before the baseline, as any step loads it

    from docqa.retrieve import bm25

    bm25.tokenize("warm up the stemmer")
    before = proc_status()["VmRSS"]
    out: dict = {"rss_before_mb": mb(before)}
    started = time.perf_counter()
    if step == "open":
        from docqa.stores import open_retriever

        retriever = open_retriever(settings, embedder)
        retriever.retrieve("report on station17 figures", 4)
        out["chunks"] = len(retriever.chunks)
    else:
        from docqa.stores import update_index

        report = update_index(settings, embedder, rebuild=step == "index")
        out.update(chunks=report.chunks, embedded=report.embedded, wrote=report.wrote)
        if report.embedded:
            out["chunks_per_s"] = round(report.embedded / report.seconds, 1)
    out["seconds"] = round(time.perf_counter() - started, 1)
    status = proc_status()
    out.update(rss_after_mb=mb(status["VmRSS"]), peak_rss_mb=mb(status["VmHWM"]))
    out["peak_growth_mb"] = round(out["peak_rss_mb"] - out["rss_before_mb"], 1)
    return out


def run_child(step: str, docs: Path, index: Path, real: bool) -> dict:
    """Run one step in a child process, sampling its VmRSS while it runs."""
    cmd = [sys.executable, __file__, "--child", step, "--docs", str(docs), "--index", str(index)]
    if real:
        cmd.append("--real-child")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    samples: list[int] = []

    def sample() -> None:
        while proc.poll() is None:
            try:
                samples.append(proc_status(proc.pid)["VmRSS"])
            except (OSError, KeyError):
                break
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"the {step} step failed (exit {proc.returncode}); see its output above")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["sampled_peak_rss_mb"] = mb(max(samples, default=0))
    return result


def mb(n: float) -> float:
    return round(n / 1e6, 1)


def index_size(index: Path) -> float:
    live = index / (index / "CURRENT").read_text().strip()
    return mb(sum(p.stat().st_size for p in live.iterdir() if p.is_file()))


def measure(files: int, real: bool, steps: tuple[str, ...]) -> dict:
    docs = WORK / f"docs-{files}"
    t0 = time.perf_counter()
    make_folder(docs, files)
    print(f"{files} files in {docs} ({time.perf_counter() - t0:.0f} s to make)", flush=True)
    index = WORK / f"index-{files}-{'real' if real else 'fast'}"
    shutil.rmtree(index, ignore_errors=True)
    row: dict = {"files": files, "embedder": "real" if real else FastEmbedder.name}
    for step in steps:
        row[step] = run_child(step, docs, index, real)
        print(f"  {step}: {json.dumps(row[step])}", flush=True)
    row["chunks"] = row["index"]["chunks"]
    row["index_mb"] = index_size(index)
    row["vectors_mb"] = mb(row["chunks"] * 384 * 4)
    row["text_mb"] = mb(sum(p.stat().st_size for p in docs.rglob("*.txt")))
    shutil.rmtree(index, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,3000,10000", help="file counts, comma-separated")
    parser.add_argument("--real", type=int, default=100, help="files for the real-embedder run (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "bigfolder.json")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. before/after)")
    parser.add_argument("--child", choices=("index", "rerun", "open"), help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--real-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.docs, args.index, args.real_child)))
        return

    from docqa.cpu import cpu_summary, describe_cpu

    cpu = cpu_summary()
    print(describe_cpu(cpu), flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    result = {"cpu": cpu, "label": args.label, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result["rows"] = rows = []
    runs = [(int(n), False, ("index", "rerun", "open")) for n in args.sizes.split(",") if n]
    if args.real:
        runs.append((args.real, True, ("index",)))
    for files, real, steps in runs:
        rows.append(measure(files, real, steps))
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")  # kept if a later run is stopped
    print(f"wrote {args.out}")
    print("| files | chunks | embedder | index peak RSS (growth) | rerun peak | open peak | index MB | chunks/s |")
    for r in rows:
        cells = [
            r["files"],
            r["chunks"],
            r["embedder"],
            f"{r['index']['peak_rss_mb']} MB (+{r['index']['peak_growth_mb']})",
            f"{r['rerun']['peak_rss_mb']} MB" if "rerun" in r else "-",
            f"{r['open']['peak_rss_mb']} MB" if "open" in r else "-",
            r["index_mb"],
            r["index"].get("chunks_per_s", "-"),
        ]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
