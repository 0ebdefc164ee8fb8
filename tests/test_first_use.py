"""First use on an empty documents folder: everything starts, questions get "nothing to search yet"
with how to add documents, and the first upload is answered from without a restart."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from docqa.answering.pipeline import NOTHING_INDEXED_TEXT, NoIndexYet, Pipeline
from docqa.errors import DocsError
from docqa.settings import Settings
from docqa.stores import faiss_store as store
from fakes import HashEmbedder, ScriptedGenerator
from support import serving_app

web = pytest.importorskip("docqa.serve.web")

ZORBLAT = "The Zorblat festival is held in April [1]."
QUESTION = "When is the Zorblat festival held?"


@pytest.fixture
def empty(settings: Settings) -> Settings:
    for path in settings.docs_dir.iterdir():
        path.unlink()
    return settings


@pytest.fixture
def pipeline(empty: Settings, embedder: HashEmbedder) -> Pipeline:
    return Pipeline.from_settings(empty, embedder=embedder, generator=ScriptedGenerator(ZORBLAT))


@pytest.fixture
def upload(tmp_path: Path):
    """A file as the browser's upload arrives: its own name, in a folder of its own."""
    counter = itertools.count()

    def make(name: str, content: bytes) -> str:
        folder = tmp_path / "incoming" / str(next(counter))
        folder.mkdir(parents=True)
        (folder / name).write_bytes(content)
        return str(folder / name)

    return make


def assert_explains_first_use(answer: dict) -> None:
    assert answer["abstained"] and answer["answer"] == NOTHING_INDEXED_TEXT
    assert "Documents tab" in answer["answer"] and "`docqa index`" in answer["answer"]
    assert answer["abstain_reason"].startswith("nothing is indexed yet: the documents folder")
    assert "is empty" in answer["abstain_reason"]
    assert answer["retrieved"] == [] and answer["citations"] == []


def test_empty_folder_starts_and_explains(pipeline: Pipeline, empty: Settings):
    assert isinstance(pipeline.retriever, NoIndexYet)
    assert store.current_version(empty.index_dir) is None  # "no index yet": nothing is written
    assert_explains_first_use(pipeline.ask("What is in my documents?").to_dict())
    assert pipeline.generator.calls == []  # no model call for it
    with pytest.raises(Exception, match="the question is empty"):  # noqa: B017 - still checked first
        pipeline.ask("   ")
    assert pipeline.status()["documents"] == 0 and pipeline.status()["chunks"] == 0


def test_unreadable_only_folder_says_why(empty: Settings, embedder: HashEmbedder):
    (empty.docs_dir / "blank.txt").write_bytes(b"")
    pipeline = Pipeline.from_settings(empty, embedder=embedder, generator=ScriptedGenerator("x"))
    answer = pipeline.ask("Anything?")
    assert answer.abstained and "no readable documents" in answer.abstain_reason
    assert "blank.txt" in answer.abstain_reason


def test_missing_folder_is_still_an_error(settings: Settings, embedder: HashEmbedder, tmp_path: Path):
    with pytest.raises(DocsError, match="does not exist"):
        Pipeline.from_settings(
            settings.model_copy(update={"docs_dir": tmp_path / "nope"}),
            embedder=embedder,
            generator=ScriptedGenerator("x"),
        )


def test_web_start_screen_invites_the_first_upload_then_answers_from_it(pipeline: Pipeline, empty, upload):
    handlers = web.Handlers(web.Pipelines(pipeline))
    assert "nothing indexed yet" in handlers.status() and "Documents tab" in handlers.status()
    table, menu, status, chatbot = handlers.refresh()
    assert chatbot.placeholder == web.FIRST_USE and "Documents tab" in web.FIRST_USE and chatbot.examples in (None, [])
    assert handlers.pipelines.get("small").retriever is pipeline.retriever  # another profile: no index to open

    *_, (messages, panel, history) = handlers.respond(QUESTION, [], "default", 4, 160)
    assert len(history) == 1 and history[0].abstained
    assert "nothing to search yet" in messages[-1]["content"] and "failed" not in messages[-1]["content"]
    assert "nothing is indexed yet" in panel
    assert_explains_first_use(handlers.ask(QUESTION))

    note, _ = handlers.add_files([upload("zorblat-festival.txt", b"The Zorblat festival is held in April.")])
    report, table, menu, status, chatbot = handlers.reindex(note, "default", progress=lambda *a, **k: None)
    assert "zorblat-festival.txt" in table and "nothing indexed yet" not in status
    assert chatbot.placeholder == web.PLACEHOLDER and chatbot.examples
    *_, (messages, _, history) = handlers.respond(QUESTION, history, "default", 4, 160)
    assert not history[-1].abstained and history[-1].citations[0].passage.chunk.source == "zorblat-festival.txt"
    assert handlers.ask(QUESTION)["answer"] == ZORBLAT
    assert handlers.pipelines.get("small").retriever is handlers.pipelines.base.retriever


def test_deleting_the_last_document_is_nothing_to_search_again(pipeline: Pipeline, empty, upload):
    handlers = web.Handlers(web.Pipelines(pipeline))
    note, _ = handlers.add_files([upload("zorblat-festival.txt", b"The Zorblat festival is held in April.")])
    handlers.reindex(note, "default", progress=lambda *a, **k: None)
    handlers.delete_file("zorblat-festival.txt")
    with pytest.raises(web.gr.Error, match="is empty"):
        handlers.reindex("", "default", progress=lambda *a, **k: None)
    assert_explains_first_use(handlers.ask(QUESTION))


def test_served_page_and_api_on_an_empty_folder(pipeline: Pipeline, empty: Settings):
    from gradio_client import Client

    with serving_app(pipeline, empty) as served:
        assert httpx.get(served.url).status_code == 200
        assert_explains_first_use(Client(served.url, verbose=False).predict(QUESTION, api_name="/ask"))


def test_openai_api_on_an_empty_folder(pipeline: Pipeline, empty: Settings):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from docqa.serve.openai_api import RAG_MODEL, create_app

    client = TestClient(create_app(pipeline, empty))
    reply = client.post(
        "/v1/chat/completions", json={"model": RAG_MODEL, "messages": [{"role": "user", "content": "Hi?"}]}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"] == NOTHING_INDEXED_TEXT
    assert body["docqa"]["abstained"] and "nothing is indexed yet" in body["docqa"]["abstain_reason"]


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli_on_empty(empty: Settings, monkeypatch: pytest.MonkeyPatch):
    """`docqa ARGS` in this process over the empty folder, with the hashed embedder for the real one."""
    from docqa import cli
    from docqa.ingest import embeddings

    monkeypatch.setattr(embeddings, "embedder_from_settings", lambda settings: HashEmbedder())
    common = ["--docs", str(empty.docs_dir), "--index", str(empty.index_dir)]

    def run(*args: str, stdin: str | None = None):
        return CliRunner().invoke(cli.cli, [args[0], *common, *args[1:]], input=stdin)

    return run


def test_cli_ask_on_an_empty_folder_names_cause_and_fix(cli_on_empty):
    for args in (["ask", "Anything?"], ["ask", "--json", "Anything?"]):
        result = cli_on_empty(*args)
        error = result.exception
        assert isinstance(error, DocsError), result.output  # main() prints it as one line, exit 2
        assert error.cause.startswith("nothing is indexed yet: the documents folder") and "is empty" in error.cause
        assert "add documents to it" in error.fix and "`docqa index`" in error.fix


def test_cli_batch_on_an_empty_folder_answers_each_line_with_the_error(cli_on_empty):
    result = cli_on_empty(
        "ask", "--batch", "-", stdin='{"id": "a", "question": "One?"}\n{"id": "b", "question": "Two?"}\n'
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    assert all("nothing is indexed yet" in line["error"] and "Fix:" in line["error"] for line in lines)
