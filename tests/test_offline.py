"""The offline guarantee, end to end: `docqa serve` indexes the documents, loads the small model,
serves the page and answers, with every outbound connection refused and reported.

tests/netguard/sitecustomize.py, on PYTHONPATH, makes any connect() or DNS lookup outside loopback
fail and print "NETGUARD" on stderr, so telemetry, hub checks or analytics anywhere in the server
process fail this test. (The CLI commands get the same check in test_e2e.py.) HF_HUB_OFFLINE and
GRADIO_ANALYTICS_ENABLED are left unset here: docqa must set them itself.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[1]
NETGUARD = Path(__file__).parent / "netguard"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guarded_env(**extra: str) -> dict[str, str]:
    drop = ("DOCQA_", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GRADIO_", "HF_HUB_DISABLE_TELEMETRY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PYTHONPATH=str(NETGUARD), **extra)
    return env


def test_the_guard_is_live_in_this_environment(tmp_path):
    """Without this, a broken PYTHONPATH would make the server test pass without guarding anything."""
    probe = (
        "import socket\ntry:\n    socket.create_connection(('10.255.255.1', 80), timeout=2)\nexcept OSError:\n    pass"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=guarded_env(), capture_output=True, text=True, cwd=tmp_path
    )
    assert "NETGUARD: blocked" in proc.stderr and "10.255.255.1" in proc.stderr


def test_server_indexes_serves_and_answers_without_the_network(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    port = free_port()
    env = guarded_env(
        DOCQA_PORT=str(port),
        DOCQA_PROFILE="small",
        DOCQA_DOCS=str(tmp_path / "docs"),
        DOCQA_INDEX=str(tmp_path / "index"),  # empty: the server builds it at start
        DOCQA_MAX_NEW_TOKENS="48",
    )
    stdout, stderr = (tmp_path / "stdout.txt").open("w+"), (tmp_path / "stderr.txt").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "docqa.cli", "serve"], env=env, cwd=tmp_path, stdout=stdout, stderr=stderr
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the server did not start in 300 s"
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)

        # The page and everything it loads at once.
        page = httpx.get(url).text
        assert "<title>docqa</title>" in page or "docqa" in httpx.get(url + "config").text
        for asset in re.findall(r'(?:src|href)="\./(assets/[^"]+\.(?:js|css))"', page) + ["theme.css", "config"]:
            assert httpx.get(url + asset).status_code == 200, asset

        from gradio_client import Client

        answer = Client(url, verbose=False).predict("What was China's urbanization rate in 2019?", api_name="/ask")
        assert "60.6" in answer["answer"] and answer["citations"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    log = (tmp_path / "stderr.txt").read_text() + (tmp_path / "stdout.txt").read_text()
    assert "NETGUARD" not in log, log
    assert "Traceback" not in log, log
    assert "index updated" in log  # it really indexed under the guard
