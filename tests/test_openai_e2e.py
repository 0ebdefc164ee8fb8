"""`docqa serve --openai` with the real small model, used by the official openai client and by a second
docqa whose LLM backend is the first one's endpoint. The network is blocked except loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_index.llms.openai_like")

from support import ROOT, URBANIZATION_Q, check_stderr, docqa_env, free_port, run_cli, running_cli  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    index_dir = tmp_path_factory.mktemp("index")
    log = tmp_path_factory.mktemp("log") / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=5)

    def ready() -> bool:
        try:
            client.models.list()
            return True
        except openai.APIConnectionError:
            return False

    args = ("serve", "--openai", "--port", str(port))
    with running_cli(*args, env=docqa_env(index_dir), log=log, ready=ready, cwd=ROOT, timeout=600):
        yield url, index_dir
    check_stderr(log.read_text(), allow_traceback=True)  # the log holds stdout too; only the guard is checked


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
    # The stream carries checked sentences (one here), as content chunks before the final one.
    content = [i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert "60.6" in text and content and content[0] < chunks.index(final[0])
    assert any("60.60%" in c["text"] for c in final[0]["citations"])


def test_second_docqa_uses_the_first_as_its_llm(server):
    url, index_dir = server
    env = {
        "DOCQA_LLM_BACKEND": "openai",
        "DOCQA_OPENAI_BASE_URL": url,
        "DOCQA_OPENAI_MODEL": "qwen2.5-coder-0.5b-instruct-q4_k_m",
    }
    # The backend settings go in a settings file, read with --settings.
    settings = index_dir.parent / "second.toml"
    settings.write_text("".join(f'{k[6:].lower()} = "{v}"\n' for k, v in env.items()))
    proc = run_cli(
        "ask", "--json", "--settings", str(settings), URBANIZATION_Q, env=docqa_env(index_dir), cwd=ROOT, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["model"] == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert "loaded qwen" not in proc.stderr  # no in-process model: generation went over HTTP
    assert "60.6" in answer["answer"] and not answer["abstained"]
    assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
