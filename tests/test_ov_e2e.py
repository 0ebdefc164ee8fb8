"""End to end: both in-process generator backends with the real small model, through the real CLI.

The OpenVINO copy is exported on first use by the toolchain `make install` puts beside the project
(about 45 s for the small model), under the network guard like every other e2e test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import DOCS, URBANIZATION_Q, docqa_env, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("index")
    proc = run_cli("index", env=docqa_env(path), timeout=900)
    assert proc.returncode == 0, proc.stderr
    return path


def ask(index_dir: Path, question: str, backend: str) -> tuple[dict, str]:
    proc = run_cli("ask", "--json", question, env=docqa_env(index_dir, DOCS, DOCQA_LLM_BACKEND=backend), timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.parametrize("backend", ["openvino", "transformers"])
def test_backend_answers_with_a_checked_citation(index_dir: Path, backend: str) -> None:
    answer, stderr = ask(index_dir, URBANIZATION_Q, backend)
    assert f"with {backend}" in stderr  # the log names the backend that loaded
    assert not answer["abstained"]
    assert "60.6" in answer["answer"]
    assert any("60.60%" in c["text"] for c in answer["citations"]), answer["citations"]
    assert all(f"[{c['n']}]" in answer["answer"] for c in answer["citations"])


def test_the_export_ran_offline() -> None:
    """The export subprocess ran under the same network guard; nothing in it tried to connect."""
    from docqa.generate import PROFILE_MODELS, ov
    from docqa.settings import Settings

    log = ov.ov_dir(Settings().resolved_cache_dir, PROFILE_MODELS["small"], "int8") / "export.log"
    if not log.is_file():
        pytest.skip("the small model's OpenVINO copy was exported before export.log existed")
    assert "NETGUARD" not in log.read_text()


def test_openvino_still_refuses_what_the_essay_does_not_say(index_dir: Path) -> None:
    answer, _ = ask(index_dir, "What was the population of Shenzhen in 2030?", "openvino")
    assert answer["abstained"] and answer["citations"] == []


def test_auto_picks_openvino_here_and_reuses_the_export(index_dir: Path) -> None:
    """On this x86 CPU with the toolchain installed, "auto" is OpenVINO; the export is not redone."""
    _, stderr = ask(index_dir, URBANIZATION_Q, "auto")
    assert "with openvino (an x86 CPU without a GPU)" in stderr
    assert "exporting" not in stderr  # the first test exported it; this start loaded the cached copy
