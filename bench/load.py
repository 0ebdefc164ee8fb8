"""docqa under load: concurrent API clients, and what a full queue answers.

    python bench/load.py                      # small profile, 8 clients x 5 questions, then a queue-full check
    python bench/load.py --mix 2              # 2 of every 5 questions in scope, the rest out of scope (CI's mix)
    python bench/load.py --url http://127.0.0.1:7860/ --no-queue-check   # against a server already running

Each client is its own `gradio_client.Client` (its own session) calling the `/ask` endpoint; a
client asks its questions one after another, all clients at once. Every answer is checked to be
the one its client asked for. Prints throughput (questions per minute) and latency percentiles
and writes them to --out as JSON. The server answers one question at a time (the CPU runs one
model call at a time), so throughput is the model's, and latency grows with the queue.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from docqa.evaluate import metrics  # noqa: E402
from docqa.settings import Settings  # noqa: E402

# Short questions about the bundled essay; the model answers these from the passages.
IN_SCOPE = [
    "What was China's urbanization rate in 2019?",
    "What was the urbanization rate in 1995?",
    "How many people have left the countryside?",
    "What kind of poverty has been eliminated?",
    "What is the purpose of the Communist Party of China?",
    "What did the rural population drop to in 2019?",
    "Who is left in the villages?",
    "In what year did Deng Xiaoping draw up the three-step deployment?",
]
# Questions the documents don't cover; most are refused by the retrieval score alone.
OUT_OF_SCOPE = [
    "How long should I boil an egg?",
    "Who won the 2010 football World Cup?",
    "What is the capital of Australia?",
    "How do I reset my router password?",
    "What is the boiling point of mercury?",
]


def questions_for(client: int, count: int, in_scope_per_5: int = 5) -> list[str]:
    """The questions client number `client` asks: `in_scope_per_5` of every 5 from IN_SCOPE, the rest
    from OUT_OF_SCOPE, starting at a different place for each client.

    >>> questions_for(0, 5, 2) == IN_SCOPE[:2] + OUT_OF_SCOPE[:3]
    True
    >>> questions_for(1, 5)[0] == IN_SCOPE[5]
    True
    """
    out: list[str] = []
    seen_in = seen_out = 0
    for j in range(count):
        if j % 5 < in_scope_per_5:
            out.append(IN_SCOPE[(client * count + seen_in) % len(IN_SCOPE)])
            seen_in += 1
        else:
            out.append(OUT_OF_SCOPE[(client * count + seen_out) % len(OUT_OF_SCOPE)])
            seen_out += 1
    return out


@dataclass
class Asked:
    client: int
    question: str
    seconds: float
    answer: dict[str, Any] | None = None  # the /ask JSON
    error: str | None = None


@dataclass
class LoadResult:
    clients: int
    per_client: int
    in_scope_per_5: int
    wall_s: float
    asked: list[Asked] = field(default_factory=list)

    @property
    def answered(self) -> list[Asked]:
        return [a for a in self.asked if a.answer is not None]

    def problems(self) -> list[str]:
        """Everything that went wrong: errors, answers to another question, leaked conversation state."""
        out = []
        for a in self.asked:
            if a.error is not None:
                out.append(f"client {a.client}: {a.question!r}: error {a.error}")
            elif a.answer["question"] != a.question:
                out.append(f"client {a.client}: asked {a.question!r}, got the answer to {a.answer['question']!r}")
            elif a.answer["standalone_question"] is not None:
                out.append(f"client {a.client}: {a.question!r} was rewritten as a follow-up (history leaked)")
            elif not a.answer["answer"]:
                out.append(f"client {a.client}: {a.question!r}: empty answer")
        return out

    def summary(self) -> dict[str, Any]:
        latencies = [a.seconds for a in self.answered]
        model = [a for a in self.answered if a.answer.get("usage")]  # the ones that reached the model
        return {
            "clients": self.clients,
            "questions_per_client": self.per_client,
            "in_scope_share": self.in_scope_per_5 / 5,
            "questions": len(self.asked),
            "answered": len(self.answered),
            "abstained": sum(a.answer["abstained"] for a in self.answered),
            "model_calls": len(model),
            "problems": len(self.problems()),
            "wall_s": round(self.wall_s, 2),
            "throughput_q_per_min": round(len(self.answered) / self.wall_s * 60, 2) if self.wall_s else None,
            "latency_p50_s": _round(metrics.percentile(latencies, 50)),
            "latency_p95_s": _round(metrics.percentile(latencies, 95)),
            "latency_max_s": _round(max(latencies, default=None)),
            "model_answer_p50_s": _round(
                metrics.percentile([a.answer["timings"]["total_ms"] / 1000 for a in model], 50)
            ),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run_load(
    url: str, clients: int = 8, per_client: int = 5, in_scope_per_5: int = 5, timeout_s: float = 900
) -> LoadResult:
    """`clients` threads, each with its own gradio_client session, ask their questions at the same time."""
    from gradio_client import Client

    result = LoadResult(clients, per_client, in_scope_per_5, 0.0)
    lock = threading.Lock()
    sessions = [Client(url, verbose=False) for _ in range(clients)]  # connect first: time only the asking
    start = threading.Barrier(clients + 1)

    def work(n: int) -> None:
        start.wait()
        for question in questions_for(n, per_client, in_scope_per_5):
            t0 = time.perf_counter()
            asked = Asked(n, question, 0.0)
            try:
                asked.answer = sessions[n].submit(question, api_name="/ask").result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and reported, none is fatal
                asked.error = f"{exc.__class__.__name__}: {exc}"
            asked.seconds = time.perf_counter() - t0
            with lock:
                result.asked.append(asked)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout_s)
    result.wall_s = time.perf_counter() - t0
    return result


def queue_full(url: str, clients: int, question: str = IN_SCOPE[0], timeout_s: float = 600) -> dict[str, Any]:
    """`clients` ask at the same moment; a server with a short queue must refuse some at once.

    Returns how many were answered and refused, and how long the refusals and answers took.
    """
    from gradio_client import Client

    sessions = [Client(url, verbose=False) for _ in range(clients)]
    outcomes: list[tuple[str, float, str]] = []  # (answered|refused|error, seconds, detail)
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def work(n: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            answer = sessions[n].submit(question, api_name="/ask").result(timeout=timeout_s)
            outcome = ("answered", time.perf_counter() - t0, answer["question"])
        except Exception as exc:  # noqa: BLE001 - a refusal arrives as the client's own exception
            kind = "refused" if "queue is full" in str(exc).lower() else "error"
            outcome = (kind, time.perf_counter() - t0, f"{exc.__class__.__name__}: {exc}")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    by_kind = {k: [o for o in outcomes if o[0] == k] for k in ("answered", "refused", "error")}
    return {
        "clients": clients,
        "answered": len(by_kind["answered"]),
        "refused": len(by_kind["refused"]),
        "errors": [o[2] for o in by_kind["error"]],
        "refusal_max_s": _round(max((o[1] for o in by_kind["refused"]), default=None)),
        "answer_max_s": _round(max((o[1] for o in by_kind["answered"]), default=None)),
        "refusal_message": by_kind["refused"][0][2] if by_kind["refused"] else None,
        "answered_questions_match": all(o[2] == question for o in by_kind["answered"]),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(root: Path, max_new_tokens: int = 48, queue_size: int = 2) -> tuple[str, str, list]:
    """One pipeline (small profile) behind two apps: the normal one, and one whose queue holds `queue_size`.

    Returns (url, short_queue_url, demos to close).
    """
    return serve_apps(small_pipeline(root, max_new_tokens), queue_size)


def small_pipeline(root: Path, max_new_tokens: int = 48) -> Any:
    """The small profile's pipeline over a copy of the bundled docs in `root`, model loaded."""
    from docqa.answering.pipeline import Pipeline

    docs = root / "docs"
    if not docs.exists():
        shutil.copytree(ROOT / "docs", docs)
    settings = Settings(
        profile="small", docs_dir=docs, index_dir=root / "index", max_new_tokens=max_new_tokens, port=free_port()
    )
    pipeline = Pipeline.from_settings(settings)
    _ = pipeline.generator  # as `docqa serve` does: loaded before the first question
    return pipeline


def serve_apps(pipeline: Any, queue_size: int = 2) -> tuple[str, str, list]:
    """The web app over `pipeline` twice: on its settings' port, and on another with a short queue."""
    from docqa.serve.web import build_app, launch

    settings = pipeline.settings
    demo = build_app(pipeline)
    url = launch(demo, settings, block=False, quiet=True)
    short = settings.model_copy(update={"queue_size": queue_size, "port": free_port()})
    demo_short = build_app(pipeline)
    url_short = launch(demo_short, short, block=False, quiet=True)
    return url, url_short, [demo, demo_short]


def print_report(report: dict[str, Any]) -> None:
    load = report["load"]
    print(
        f"{load['clients']} clients x {load['questions_per_client']} questions"
        f" ({load['in_scope_share']:.0%} in scope, {load['model_calls']} reached the model):"
        f" {load['answered']}/{load['questions']} answered, {load['problems']} problems"
    )
    print(f"  throughput  {load['throughput_q_per_min']} questions/min over {load['wall_s']} s")
    print(f"  latency     p50 {load['latency_p50_s']} s, p95 {load['latency_p95_s']} s, max {load['latency_max_s']} s")
    print(f"  one answer  p50 {load['model_answer_p50_s']} s of model time")
    if "queue_full" in report:
        q = report["queue_full"]
        print(
            f"queue of {report['queue_size']}, {q['clients']} clients at once: {q['answered']} answered"
            f" (last after {q['answer_max_s']} s), {q['refused']} refused within {q['refusal_max_s']} s:"
            f" {q['refusal_message']}"
        )


def main() -> None:
    from docqa.cpu import cpu_summary, describe_cpu

    print(f"CPU {describe_cpu(cpu_summary())}", flush=True)  # numbers differ by CPU: say which one
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running docqa server (default: start one on the bundled docs)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--questions", type=int, default=5, help="questions per client")
    ap.add_argument("--mix", type=int, default=5, choices=range(6), help="in-scope questions of every 5 [5]")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--queue-size", type=int, default=2, help="queue of the second server for the queue check")
    ap.add_argument("--no-queue-check", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "load.json")
    args = ap.parse_args()

    demos: list = []
    url, url_short = args.url, None
    if url is None:
        root = Path(tempfile.mkdtemp(prefix="docqa-load-"))
        url, url_short, demos = start_servers(root, args.max_new_tokens, args.queue_size)
    try:
        result = run_load(url, args.clients, args.questions, args.mix)
        report: dict[str, Any] = {"url": url, "load": result.summary(), "problems": result.problems()}
        if url_short and not args.no_queue_check:
            report["queue_size"] = args.queue_size
            report["queue_full"] = queue_full(url_short, clients=3 * args.queue_size)
        report["asked"] = [asdict(a) | {"answer": (a.answer or {}).get("answer")} for a in result.asked]
    finally:
        for demo in demos:
            demo.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print_report(report)
    for problem in report["problems"]:
        print("PROBLEM:", problem)
    print(f"wrote {args.out}")
    sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
    main()
