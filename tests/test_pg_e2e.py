"""The CLI with the real models on the pgvector store, against a real PostgreSQL started by the tests."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_index.vector_stores.postgres")

from pgtest import pg_url  # noqa: E402,F401  (the session-scoped server fixture)
from support import URBANIZATION_Q, docqa  # noqa: E402

pytestmark = pytest.mark.e2e


def test_index_and_ask_on_pgvector(pg_url, tmp_path):  # noqa: F811
    settings = tmp_path / "docqa.toml"
    settings.write_text(f'vector_store = "pgvector"\npg_url = "{pg_url}"\npg_table = "e2e"\n')
    index_dir = tmp_path / "index"
    proc = docqa(["index", "--settings", str(settings)], index_dir)
    assert proc.returncode == 0, proc.stderr
    assert "index written" in proc.stdout and "chunks from 1 files" in proc.stdout
    assert not index_dir.exists()  # nothing went to the FAISS folder
    proc = docqa(["index", "--settings", str(settings)], index_dir)
    assert "index up to date" in proc.stdout and "embedded 0 chunks" in proc.stdout

    proc = docqa(["ask", "--json", "--settings", str(settings), URBANIZATION_Q], index_dir)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert "60.60%" in answer["retrieved"][0]["text"]  # pgvector + PostgreSQL full-text, fused by RRF
    assert "60.6" in answer["answer"] and not answer["abstained"], answer["abstain_reason"]
    assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
