"""bench/soak.py's judging: what counts as a problem in a soak, and how memory drift is measured.

The 30-minute run itself is a benchmark (figures in bench/README.md); these check its verdicts on
made-up records, so a soak that went wrong can't be reported as clean.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from support import ROOT

_spec = importlib.util.spec_from_file_location("docqa_bench_soak", ROOT / "bench" / "soak.py")
soak = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = soak
_spec.loader.exec_module(soak)


def record(question: str, answer: str = "It leaves every 40 minutes [1].", **extra) -> dict:
    base = {
        "client": 3,
        "question": question,
        "at_s": 12.0,
        "answered_question": question,
        "abstained": False,
        "answer": answer,
        "standalone_question": None,
    }
    return base | extra


def test_a_clean_run_has_no_problems():
    records = [
        record(soak.CHURN_QUESTION),
        record(soak.CHURN_QUESTION, "It leaves every 25 minutes [1]."),
        record(soak.CHURN_QUESTION, "The documents don't answer this question.", abstained=True),
        record("What was the urbanization rate in 1995?", "It was 29% [1]."),
    ]
    churn = [{"churn": "upload", "s": 0.2, "report": "added 1, updated 0, removed 0"}]
    assert soak.problems(records, churn) == []


def test_every_kind_of_failure_is_a_problem():
    q = "What was the urbanization rate in 1995?"
    records = [
        record(q, error="ReadTimeout: timed out"),
        record(q, answered_question="Who is left in the villages?"),  # another client's answer
        record(q, standalone_question="What was the rate in 1995 after the reform?"),  # history leaked in
        record(q, ""),
        record(soak.CHURN_QUESTION, "It leaves every 90 minutes [1]."),  # from neither edition
    ]
    churn = [{"churn": "delete", "error": "DocsError: not in the documents folder"}]
    found = soak.problems(records, churn)
    assert len(found) == 6
    assert "error ReadTimeout" in found[0] and "got the answer to" in found[1]
    assert "history leaked" in found[2] and "empty answer" in found[3]
    assert "neither edition" in found[4] and found[5].startswith("churn delete")


def test_drift_compares_the_minute_after_warm_up_with_the_last():
    flat = [(t, 500.0 if t < 100 else 1000.0) for t in range(0, 900, 5)]  # warm-up growth, then steady
    assert soak.drift(flat, warmup_s=120)["drift_pct"] == 0.0
    leak = [(t, 1000.0 + t) for t in range(0, 900, 5)]  # grows all the time
    d = soak.drift(leak, warmup_s=120)
    assert d["drift_pct"] > 5 and d["peak_mb"] == 1895.0
    assert soak.drift([], warmup_s=60)["drift_pct"] is None


def test_rss_of_this_process_and_of_a_gone_one():
    assert soak.rss_mb(os.getpid()) > 10
    assert soak.rss_mb(2**22 + 12345) is None  # above the kernel's pid range
