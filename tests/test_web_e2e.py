"""The web server with the real bundled models (profile "small"), called through gradio_client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from support import URBANIZATION_Q, serving_app, small_pipeline

pytestmark = pytest.mark.e2e

FESTIVAL_DOC = """The Zorblat Festival

The Zorblat festival is held every April in the mountain village of Qingshan.
In 2022 the Zorblat festival drew 4,750 visitors, its largest crowd so far.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The chat served on a free port over a copy of the bundled docs; one per module (models load once)."""
    root = tmp_path_factory.mktemp("web-e2e")
    pipeline = small_pipeline(root)
    with serving_app(pipeline, pipeline.settings) as served:
        yield SimpleNamespace(url=served.url, settings=served.settings, pipeline=pipeline, root=root)


def ask(url: str, question: str, **kwargs) -> dict:
    from gradio_client import Client

    return Client(url, verbose=False).predict(question, api_name="/ask", **kwargs)


def test_ask_api_returns_cited_fact(server):
    result = ask(server.url, URBANIZATION_Q)
    assert not result["abstained"], result["abstain_reason"]
    assert "60.60%" in result["answer"]
    assert any("60.60%" in c["text"] for c in result["citations"])
    assert set(result) == {
        "id",
        "question",
        "answer",
        "abstained",
        "abstain_reason",
        "citations",
        "retrieved",
        "timings",
        "model",
        "standalone_question",
        "notices",
        "usage",
        "draft",
    }
    assert result["model"] == "qwen2.5-coder-0.5b-instruct-q4_k_m"


def test_uploaded_document_is_answered_without_restart(server):
    from docqa.serve import documents as uploads

    incoming = server.root / "incoming"
    incoming.mkdir()
    (incoming / "zorblat festival.txt").write_text(FESTIVAL_DOC, encoding="utf-8")
    saved = uploads.save_uploads(server.settings, [incoming / "zorblat festival.txt"])
    assert [r.error for r in saved] == [None]
    steps: list[str] = []
    report = server.pipeline.reindex(progress=lambda done, total, message: steps.append(message))
    assert report.added == ["zorblat festival.txt"] and not report.failed and steps

    # A "when" question: the small model answers it reliably, while on "how many visitors" it
    # tends to reply with a bare "[1]", which the checks rightly turn into an abstention.
    result = ask(server.url, "When is the Zorblat festival held?")
    assert not result["abstained"], result["abstain_reason"]
    assert "April" in result["answer"]
    assert any(c["source"] == "zorblat festival.txt" for c in result["citations"])


def test_top_k_reaches_the_pipeline(server):
    assert len(ask(server.url, URBANIZATION_Q, top_k=2)["retrieved"]) <= 2
