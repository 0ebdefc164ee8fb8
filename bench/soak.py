"""docqa under a long load: concurrent clients asking while documents are uploaded, edited and deleted.

    python bench/soak.py                       # 30 minutes, 8 clients, small profile, bundled docs
    python bench/soak.py --minutes 3           # a short rehearsal

The server runs in a child process (so its resident memory is its own): the normal app, a second
app over the same pipeline with a queue of 2 (for the queue-full check), and a churn thread that,
every `--churn-s` seconds, does what the Documents tab does: saves an upload into the docs folder,
edits it, or deletes it, each followed by a re-index. The re-index runs beside the questions, not
between them, so answers are asked while the index changes under them.

The parent starts 8 `gradio_client` sessions; each asks, one after another until time is up, a mix
of questions about the essay, about the churned document (answered while it exists, refused when
it doesn't) and out of scope. Every answer must come back to the client that asked, with no error.
The child's RSS is sampled every few seconds; drift is the change of the median RSS from the minute
after warm-up to the last minute. At the end, 6 clients at once ask the short-queue app: the ones
beyond its queue must be refused at once. Results go to --out (JSON) with the CPU's description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from load import IN_SCOPE, OUT_OF_SCOPE, queue_full, serve_apps, small_pipeline  # noqa: E402

from docqa.evaluate import metrics  # noqa: E402

CHURN_NAME = "soak-notice.md"
# The churned document, in two editions: a question about it is answerable while it exists.
CHURN_TEXT = {
    1: "# Ferry notice\n\nThe Lakeside ferry leaves the north pier every 40 minutes from 6 am.\n",
    2: "# Ferry notice\n\nThe Lakeside ferry leaves the north pier every 25 minutes from 6 am.\n",
}
FACTS = ("40 minutes", "25 minutes")  # an answer about the document must come from one edition
CHURN_QUESTION = "How often does the Lakeside ferry leave the north pier?"


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB, from /proc (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def drift(samples: list[tuple[float, float]], warmup_s: float, window_s: float = 60.0) -> dict[str, Any]:
    """Median RSS in the window after warm-up and in the last window, and the change between them.

    >>> s = [(t, 100.0 if t < 30 else 200.0 + t / 100) for t in range(0, 600, 5)]
    >>> d = drift(s, warmup_s=60)
    >>> d["after_warmup_mb"], d["end_mb"], round(d["drift_pct"], 2)
    (200.88, 205.68, 2.39)
    """
    if not samples:
        return {"after_warmup_mb": None, "end_mb": None, "drift_pct": None, "peak_mb": None}
    end_t = samples[-1][0]
    first = [mb for t, mb in samples if warmup_s <= t < warmup_s + window_s]
    last = [mb for t, mb in samples if t > end_t - window_s]
    start_mb = statistics.median(first) if first else None
    end_mb = statistics.median(last)
    return {
        "after_warmup_mb": round(start_mb, 2) if start_mb else None,
        "end_mb": round(end_mb, 2),
        "drift_pct": round((end_mb - start_mb) / start_mb * 100, 2) if start_mb else None,
        "peak_mb": round(max(mb for _, mb in samples), 2),
    }


def question_cycle(client: int) -> list[str]:
    """Client `client`'s round of questions: essay facts, the churned document, out of scope."""
    return [
        IN_SCOPE[client % len(IN_SCOPE)],
        CHURN_QUESTION,
        OUT_OF_SCOPE[client % len(OUT_OF_SCOPE)],
        IN_SCOPE[(client + 3) % len(IN_SCOPE)],
    ]


# --- the server side (child process) ----------------------------------------------------------


def serve_child(root: Path, churn_s: float, max_new_tokens: int) -> None:
    """Start the apps, print their addresses as one JSON line, then churn documents until killed."""
    from docqa.serve import documents as uploads
    from docqa.serve.web import Pipelines

    pipeline = small_pipeline(root, max_new_tokens)
    url, url_short, _demos = serve_apps(pipeline, queue_size=2)
    print(json.dumps({"url": url, "short_url": url_short}), flush=True)
    pipelines = Pipelines(pipeline)
    settings = pipeline.settings
    staging = root / "uploads"
    staging.mkdir(exist_ok=True)
    step = 0
    while True:
        time.sleep(churn_s)
        step += 1
        action = ("upload", "edit", "delete")[(step - 1) % 3]
        t0 = time.perf_counter()
        try:
            if action == "delete":
                uploads.delete_document(settings, CHURN_NAME)
            else:
                upload = staging / CHURN_NAME
                upload.write_text(CHURN_TEXT[1 if action == "upload" else 2], encoding="utf-8")
                uploads.save_upload(settings, upload)
            report = pipelines.reindex()
            note = f"added {len(report.added)}, updated {len(report.updated)}, removed {len(report.removed)}"
            print(json.dumps({"churn": action, "s": round(time.perf_counter() - t0, 2), "report": note}), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which counts it as a problem
            print(json.dumps({"churn": action, "error": f"{exc.__class__.__name__}: {exc}"}), flush=True)


# --- the client side ---------------------------------------------------------------------------


def ask_until(url: str, clients: int, seconds: float, timeout_s: float = 900) -> list[dict[str, Any]]:
    """`clients` sessions ask their round of questions over and over until `seconds` have passed."""
    from gradio_client import Client

    # gradio_client's HTTP calls time out after 5 s by default; a browser waits, and so do these
    # clients (the queue, not the connection, is what makes them wait on a busy 2-core machine).
    sessions = [Client(url, verbose=False, httpx_kwargs={"timeout": 120}) for _ in range(clients)]
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def work(n: int) -> None:
        cycle = question_cycle(n)
        i = 0
        while time.perf_counter() - start < seconds:
            question = cycle[i % len(cycle)]
            i += 1
            t0 = time.perf_counter()
            record: dict[str, Any] = {"client": n, "question": question, "at_s": round(t0 - start, 1)}
            try:
                answer = sessions[n].submit(question, api_name="/ask").result(timeout=timeout_s)
                record |= {
                    "answered_question": answer["question"],
                    "abstained": answer["abstained"],
                    "answer": answer["answer"],
                    "standalone_question": answer["standalone_question"],
                }
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and reported
                record["error"] = f"{exc.__class__.__name__}: {exc}"
            record["seconds"] = round(time.perf_counter() - t0, 2)
            with lock:
                records.append(record)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout_s)
    return records


def problems(records: list[dict[str, Any]], churn: list[dict[str, Any]]) -> list[str]:
    """Errors, answers that went to the wrong client, leaked history, empty answers, failed churn."""
    out = []
    for r in records:
        who = f"client {r['client']} at {r['at_s']} s: {r['question']!r}"
        if "error" in r:
            out.append(f"{who}: error {r['error']}")
        elif r["answered_question"] != r["question"]:
            out.append(f"{who}: got the answer to {r['answered_question']!r}")
        elif r["standalone_question"] is not None:
            out.append(f"{who}: rewritten as a follow-up (another conversation's history leaked)")
        elif not r["answer"]:
            out.append(f"{who}: empty answer")
        elif r["question"] == CHURN_QUESTION and not r["abstained"] and not any(f in r["answer"] for f in FACTS):
            out.append(f"{who}: the answer holds neither edition's fact: {r['answer']!r}")
    out += [f"churn {c['churn']}: {c['error']}" for c in churn if "error" in c]
    return out


def main() -> None:
    from docqa.cpu import cpu_summary, describe_cpu

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--churn-s", type=float, default=60, help="seconds between document changes [60]")
    ap.add_argument("--warmup-s", type=float, default=180, help="RSS drift is measured from here [180]")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "soak.json")
    ap.add_argument("--serve-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.churn_s, args.max_new_tokens)
        return

    cpu = describe_cpu(cpu_summary())
    print(f"CPU {cpu}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="docqa-soak-"))
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", str(root), "--churn-s", str(args.churn_s),
         "--max-new-tokens", str(args.max_new_tokens)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    addresses = json.loads(child.stdout.readline())
    churn: list[dict[str, Any]] = []
    threading.Thread(target=lambda: churn.extend(json.loads(line) for line in child.stdout), daemon=True).start()

    samples: list[tuple[float, float]] = []
    t_start = time.perf_counter()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            mb = rss_mb(child.pid)
            if mb is not None:
                samples.append((time.perf_counter() - t_start, mb))
            stop.wait(5)

    threading.Thread(target=sample, daemon=True).start()
    try:
        records = ask_until(addresses["url"], args.clients, args.minutes * 60)
        wall = time.perf_counter() - t_start
        full = queue_full(addresses["short_url"], clients=6)
    finally:
        stop.set()
        child.kill()
        child.wait()

    answered = [r for r in records if "error" not in r]
    churn_q = [r for r in answered if r["question"] == CHURN_QUESTION]
    found = problems(records, churn)
    report = {
        "cpu": cpu,
        "minutes": args.minutes,
        "clients": args.clients,
        "churn_every_s": args.churn_s,
        "questions": len(records),
        "answered": len(answered),
        "abstained": sum(r["abstained"] for r in answered),
        "churned_document_questions": len(churn_q),
        "churned_document_answered": sum(not r["abstained"] for r in churn_q),
        "document_changes": len([c for c in churn if "error" not in c]),
        "problems": len(found),
        "wall_s": round(wall, 1),
        "latency_p50_s": round(metrics.percentile([r["seconds"] for r in answered], 50) or 0, 2),
        "latency_p95_s": round(metrics.percentile([r["seconds"] for r in answered], 95) or 0, 2),
        "rss": drift(samples, args.warmup_s),
        "queue_full": full,
        "problem_list": found,
        "churn": churn,
        "rss_samples": [(round(t, 1), round(mb, 1)) for t, mb in samples],
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    rss = report["rss"]
    print(
        f"{report['minutes']:g} min, {args.clients} clients: {report['answered']}/{report['questions']} answered"
        f" ({report['abstained']} refused), {report['document_changes']} document changes, {len(found)} problems"
    )
    print(f"  latency p50 {report['latency_p50_s']} s, p95 {report['latency_p95_s']} s")
    print(
        f"  RSS after warm-up {rss['after_warmup_mb']} MB, at the end {rss['end_mb']} MB"
        f" (drift {rss['drift_pct']} %), peak {rss['peak_mb']} MB"
    )
    print(
        f"  queue of 2, 6 at once: {full['answered']} answered, {full['refused']} refused within"
        f" {full['refusal_max_s']} s, errors {full['errors']}"
    )
    for problem in found:
        print("PROBLEM:", problem)
    print(f"wrote {args.out}")
    sys.exit(1 if found or full["errors"] else 0)


if __name__ == "__main__":
    main()
