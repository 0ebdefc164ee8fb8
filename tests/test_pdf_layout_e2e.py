"""End to end, the small model over a generated PDF with a ruled table: a question about one cell
is answered with the cell's value, citing the table row on the page the table is on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pdfgen
from support import ROOT, docqa_env, run_cli

pytestmark = pytest.mark.e2e


def test_table_cell_is_answered_with_its_page(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea-sales.pdf").write_bytes(pdfgen.table_pages())
    question = "What were the sales in the South region in 2022?"
    env = docqa_env(tmp_path / "index", docs_dir=docs)
    proc = run_cli("ask", "--json", question, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not answer["abstained"], answer
    assert "475" in answer["answer"], answer["answer"]
    cited = [c for c in answer["citations"] if "475" in c["text"]]
    assert cited, answer["citations"]
    assert all(c["page"] == 2 and c["source"] == "tea-sales.pdf" for c in cited), cited
    assert "Region: South; Year: 2022; Sales: 475" in cited[0]["text"]
