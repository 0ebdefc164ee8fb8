"""The offline guarantee, end to end: `docqa serve` indexes the documents, loads the small model,
serves the page and answers, with every outbound connection refused and reported.

tests/netguard/sitecustomize.py, on PYTHONPATH, makes any connect() or DNS lookup outside loopback
fail and print "NETGUARD" on stderr, so telemetry, hub checks or analytics anywhere in the server
process fail this test. (The CLI commands get the same check in test_e2e.py.) HF_HUB_OFFLINE and
GRADIO_ANALYTICS_ENABLED are left unset here: docqa must set them itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import httpx
import pytest

from support import ROOT, URBANIZATION_Q, check_stderr, free_port, guarded_env, running_cli

pytestmark = pytest.mark.e2e


def test_the_guard_is_live_in_this_environment(tmp_path):
    """Without this, a broken PYTHONPATH would make the server test pass without guarding anything."""
    probe = (
        "import socket\ntry:\n    socket.create_connection(('10.255.255.1', 80), timeout=2)\nexcept OSError:\n    pass"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=guarded_env(hub_offline=False), capture_output=True, text=True, cwd=tmp_path
    )
    assert "NETGUARD: blocked" in proc.stderr and "10.255.255.1" in proc.stderr


def test_server_indexes_serves_and_answers_without_the_network(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    port = free_port()
    env = guarded_env(
        hub_offline=False,  # docqa must go offline by itself
        DOCQA_PORT=str(port),
        DOCQA_PROFILE="small",
        DOCQA_DOCS=str(tmp_path / "docs"),
        DOCQA_INDEX=str(tmp_path / "index"),  # empty: the server builds it at start
        DOCQA_MAX_NEW_TOKENS="48",
    )
    url = f"http://127.0.0.1:{port}/"

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    log = tmp_path / "server.log"
    with running_cli("serve", env=env, log=log, ready=ready, cwd=tmp_path, timeout=300):
        # The page and everything it loads at once.
        page = httpx.get(url).text
        assert "<title>docqa</title>" in page or "docqa" in httpx.get(url + "config").text
        for asset in re.findall(r'(?:src|href)="\./(assets/[^"]+\.(?:js|css))"', page) + ["theme.css", "config"]:
            assert httpx.get(url + asset).status_code == 200, asset

        from gradio_client import Client

        answer = Client(url, verbose=False).predict(URBANIZATION_Q, api_name="/ask")
        assert "60.6" in answer["answer"]
        assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
    log = log.read_text()
    check_stderr(log)  # nothing reached for the network, no traceback, even on Ctrl-C
    assert "index updated" in log  # it really indexed under the guard
