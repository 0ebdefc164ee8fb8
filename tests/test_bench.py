"""The benchmark's --quick mode runs end to end (CI smoke run; the numbers are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.e2e
def test_bench_quick_writes_results(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {row["target"] for row in results["targets"]} >= {"warm_start_s", "ttft_p50_s", "speedup_vs_naive"}
    assert results["docqa"]["answer_s"]["n"] == 3
    assert results["retrieval"]["10000"]["latency_ms"]["median"] > 0
    assert "speedup_vs_naive" in proc.stdout
    assert results["machine"]["cpu"]["model"] and "avx512_bf16" in results["machine"]["cpu"]
    assert "CPU " in proc.stdout and "avx512_bf16" in proc.stdout  # the flags are printed with the numbers
