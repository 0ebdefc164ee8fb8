"""`docqa serve --openai` with the real small model, used by the official openai client and by a second
docqa whose LLM backend is the first one's endpoint. The network is blocked except loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_index.llms.openai_like")

from test_e2e import NETGUARD, ROOT, URBANIZATION_Q, run_cli  # noqa: E402
from test_openai_server import free_port  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    index_dir = tmp_path_factory.mktemp("index")
    log = tmp_path_factory.mktemp("log") / "server.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    env.update(
        PYTHONPATH=str(NETGUARD),
        HF_HUB_OFFLINE="1",
        DOCQA_INDEX=str(index_dir),
        DOCQA_DOCS=str(ROOT / "docs"),
        DOCQA_PROFILE="small",
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "docqa.cli", "serve", "--openai", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=5)
    deadline = time.monotonic() + 600
    try:
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        yield url, index_dir
    finally:
        proc.terminate()
        proc.wait(30)
        assert "NETGUARD" not in log.read_text()


def test_openai_client_gets_a_cited_answer(server):
    url, _ = server
    client = openai.OpenAI(base_url=url, api_key="x", timeout=300)
    models = [m.id for m in client.models.list()]
    assert models == ["docqa", "qwen2.5-coder-0.5b-instruct-q4_k_m"]
    reply = client.chat.completions.create(model="docqa", messages=[{"role": "user", "content": URBANIZATION_Q}])
    data = reply.model_dump()
    assert "60.6" in reply.choices[0].message.content
    assert any("60.60%" in c["text"] for c in data["citations"]), data["citations"]
    assert all(f"[{c['n']}]" in reply.choices[0].message.content for c in data["citations"])

    stream = client.chat.completions.create(
        model="docqa", messages=[{"role": "user", "content": URBANIZATION_Q}], stream=True
    )
    chunks = [c.model_dump() for c in stream]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop"]
    assert "60.6" in text and len(chunks) > 5  # streamed in pieces, not one block
    assert any("60.60%" in c["text"] for c in final[0]["citations"])


def test_second_docqa_uses_the_first_as_its_llm(server):
    url, index_dir = server
    env = {
        "DOCQA_LLM_BACKEND": "openai",
        "DOCQA_OPENAI_BASE_URL": url,
        "DOCQA_OPENAI_MODEL": "qwen2.5-coder-0.5b-instruct-q4_k_m",
    }
    # run_cli drops DOCQA_* variables, so the backend settings go in a settings file.
    settings = index_dir.parent / "second.toml"
    settings.write_text("".join(f'{k[6:].lower()} = "{v}"\n' for k, v in env.items()))
    proc = run_cli(["ask", "--json", "--settings", str(settings), URBANIZATION_Q], index_dir)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["model"] == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert "loaded qwen" not in proc.stderr  # no in-process model: generation went over HTTP
    assert "60.6" in answer["answer"] and not answer["abstained"]
    assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
