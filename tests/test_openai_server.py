"""`docqa serve --openai` and the OpenAI-compatible LLM backend, with fake models over real HTTP.

The server runs in a thread on a free loopback port; the official `openai` client and docqa's own
OpenAICompatibleGenerator talk to it. The real-model version is in test_openai_e2e.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_index.llms.openai_like")
pytest.importorskip("uvicorn")

from docqa.errors import ModelError, SettingsError  # noqa: E402
from docqa.serve import openai_api  # noqa: E402
from docqa.serve.openai_api import RAG_MODEL, APIError, ChatRequest, OpenAIServer, create_app  # noqa: E402
from docqa.types import StreamEvent  # noqa: E402
from fakes import passage_text  # noqa: E402
from support import free_port, wait_until  # noqa: E402


def quote_first_passage(messages: list[dict]) -> str:
    if "[1]" not in messages[-1]["content"]:
        return "plain reply"  # a passthrough request: no passages
    return passage_text(messages, 1).split(".")[0] + " [1]."


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1:port in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20, message="the server to start")
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


QUESTION = "How many tonnes of tea did Pu'er pick?"


def request(content: str = QUESTION, **fields) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **fields)


def sse_objects(lines) -> list:
    """The JSON objects (and the final "[DONE]") of SSE lines, each checked to be one `data:` event."""
    out = []
    for line in lines:
        assert line.startswith("data: ") and line.endswith("\n\n"), line
        body = line[len("data: ") : -2]
        out.append(body if body == "[DONE]" else json.loads(body))
    return out


# --- the handlers, called directly ----------------------------------------------------------------


@pytest.fixture
def server(make_pipeline) -> OpenAIServer:
    return OpenAIServer(make_pipeline(quote_first_passage))


def test_handler_models_and_unknown_model(server):
    assert [m["id"] for m in server.models()["data"]] == [RAG_MODEL, "scripted"]
    with pytest.raises(APIError) as info:
        server.chat_completions(request(model="gpt-4"))
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_handler_answer_is_a_chat_completion_with_citations(server):
    data = server.chat_completions(request())
    assert data["object"] == "chat.completion" and data["model"] == RAG_MODEL and data["id"].startswith("chatcmpl-")
    assert "[1]" in data["choices"][0]["message"]["content"] and data["citations"][0]["n"] == 1
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert list(data) == ["id", "object", "created", "model", "choices", "usage", "citations", "docqa"]


def test_handler_stream_sends_role_draft_final_usage_done(server):
    events = sse_objects(server.chat_completions(request(stream=True, stream_options={"include_usage": True})))
    first, *middle, stop, usage, done = events
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""} and done == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == first["id"] for e in [*middle, stop, usage])
    text = "".join(e["choices"][0]["delta"]["content"] for e in middle)
    assert stop["choices"][0]["finish_reason"] == "stop" and stop["docqa"]["answer"].strip() == text.strip()
    assert stop["citations"][0]["n"] == 1
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0


def test_handler_bad_requests_are_400_before_streaming(server):
    for bad, expected in ((request("   ", stream=True), "empty"), (request("   "), "empty")):
        with pytest.raises(APIError, match=expected) as info:
            server.chat_completions(bad)
        assert info.value.status == 400
    with pytest.raises(APIError, match="no user message"):
        server.chat_completions(ChatRequest(messages=[{"role": "system", "content": "hi"}]))


def test_handler_passthrough_builds_the_same_shapes(server):
    data = server.chat_completions(request("say something", model="scripted"))
    assert data["object"] == "chat.completion" and data["model"] == "scripted"
    assert data["choices"][0]["message"]["content"] == "plain reply" and "citations" not in data
    streamed = request("say something", model="scripted", stream=True, stream_options={"include_usage": True})
    events = sse_objects(server.chat_completions(streamed))
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2]) == "plain reply"
    assert events[-2]["usage"] == data["usage"] and events[-1] == "[DONE]"


def test_stream_error_after_the_start_is_an_error_event():
    def broken():
        yield StreamEvent(delta="Pu'er ")
        raise ModelError("the model server went away", "start it again")  # after the 200 went out

    reply = openai_api.Reply("chatcmpl-x", 1, RAG_MODEL)
    events = sse_objects(openai_api.answer_events(reply, broken(), include_usage=True))
    assert events[1]["choices"][0]["delta"] == {"content": "Pu'er "}
    error = ModelError("the model server went away", "start it again").message
    assert events[-2] == openai_api.error_payload(error, "server_error") and "went away" in error
    assert events[-1] == "[DONE]"


def test_handler_login(make_pipeline):
    server = OpenAIServer(make_pipeline("x", username="ann", password="s3cret"))
    server.check_login("Bearer s3cret")
    server.check_login("Basic " + __import__("base64").b64encode(b"ann:s3cret").decode())
    for wrong in (None, "Bearer nope", "Basic !!", "Token s3cret"):
        with pytest.raises(APIError) as info:
            server.check_login(wrong)
        assert info.value.status == 401 and info.value.headers["WWW-Authenticate"] == 'Bearer realm="docqa"'
    OpenAIServer(make_pipeline("x")).check_login(None)  # no login configured: anyone
    with pytest.raises(SettingsError, match="only one"):
        OpenAIServer(make_pipeline("x", password="s3cret"))


# --- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def served(make_pipeline) -> Iterator[str]:
    with ServerThread(create_app(make_pipeline(quote_first_passage))) as url:
        yield url


def test_models_lists_docqa_and_the_llm(served):
    client = openai.OpenAI(base_url=served, api_key="x")
    assert [m.id for m in client.models.list()] == [RAG_MODEL, "scripted"]


def test_non_streaming_answer_carries_structured_citations(served):
    client = openai.OpenAI(base_url=served, api_key="x")
    reply = client.chat.completions.create(
        model=RAG_MODEL, messages=[{"role": "user", "content": "How many tonnes of tea did Pu'er pick?"}]
    )
    data = reply.model_dump()
    assert "[1]" in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert data["citations"][0]["n"] == 1 and "120 tonnes" in data["citations"][0]["text"]
    assert data["citations"][0]["source"] == "yunnan.txt" and data["docqa"]["abstained"] is False
    assert data["usage"]["total_tokens"] > 0


def test_streaming_sends_deltas_then_citations_in_the_last_chunk(served):
    client = openai.OpenAI(base_url=served, api_key="x")
    stream = client.chat.completions.create(
        model=RAG_MODEL,
        messages=[{"role": "user", "content": "How many tonnes of tea did Pu'er pick?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c.model_dump() for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert "[1]" in text and len(chunks) > 3
    assert len(finals) == 1 and finals[0]["citations"][0]["n"] == 1
    assert finals[0]["docqa"]["answer"].strip() == text.strip()
    assert chunks[-1].usage is not None and not chunks[-1].choices


def test_history_comes_from_earlier_turns(make_pipeline):
    pipeline = make_pipeline(quote_first_passage)
    with ServerThread(create_app(pipeline)) as url:
        client = openai.OpenAI(base_url=url, api_key="x")
        reply = client.chat.completions.create(
            model=RAG_MODEL,
            messages=[
                {"role": "system", "content": "ignored"},
                {"role": "user", "content": "How large are the Hani terraces?"},
                {"role": "assistant", "content": "16,603 hectares [1]."},
                {"role": "user", "content": "and when?"},
            ],
        )
    rewrite_call = pipeline.generator.calls[0]
    assert "How large are the Hani terraces?" in rewrite_call[-1]["content"]  # the history reached the rewrite
    assert reply.model_dump()["docqa"]["standalone_question"] is not None


def test_abstention_and_errors(served):
    client = openai.OpenAI(base_url=served, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=RAG_MODEL, messages=[{"role": "user", "content": "What did the 1987 census count?"}]
    )
    assert reply.model_dump()["docqa"]["abstained"] and reply.model_dump()["citations"] == []
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.chat.completions.create(model=RAG_MODEL, messages=[{"role": "user", "content": "   "}])
    with pytest.raises(openai.BadRequestError, match="no user message"):
        client.chat.completions.create(model=RAG_MODEL, messages=[{"role": "system", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


def test_login_required_when_configured(make_pipeline):
    pipeline = make_pipeline("x", username="ann", password="s3cret")
    with ServerThread(create_app(pipeline)) as url:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        assert len(openai.OpenAI(base_url=url, api_key="s3cret").models.list().data) == 2
    with pytest.raises(SettingsError, match="only one"):
        create_app(make_pipeline("x", username="ann"))


def test_generator_backend_streams_from_the_passthrough_model(served):
    from docqa.generate.openai_compat import OpenAICompatibleGenerator

    generator = OpenAICompatibleGenerator(served, "scripted")
    pieces = list(generator.stream([{"role": "user", "content": "say something"}], 20))
    assert "".join(pieces) == "plain reply" and len(pieces) == 2
    assert generator.count_tokens([{"role": "user", "content": "x" * 40}]) == 14  # 40 chars / 4 + 4 per message
    with pytest.raises(ModelError, match="no model 'nope'"):
        list(OpenAICompatibleGenerator(served, "nope").stream([{"role": "user", "content": "hi"}], 5))


def test_generator_backend_names_an_unreachable_server():
    from docqa.generate.openai_compat import OpenAICompatibleGenerator

    generator = OpenAICompatibleGenerator(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_s=5)
    with pytest.raises(ModelError, match="could not reach"):
        list(generator.stream([{"role": "user", "content": "hi"}], 5))


def test_pipeline_selects_the_openai_backend_from_settings(served, settings, embedder):
    from docqa.answering.pipeline import Pipeline
    from docqa.generate import load_generator

    with pytest.raises(SettingsError, match="openai_model"):
        load_generator(settings.model_copy(update={"llm_backend": "openai", "openai_base_url": served}))
    s = settings.model_copy(update={"llm_backend": "openai", "openai_base_url": served, "openai_model": "scripted"})
    pipeline = Pipeline.from_settings(s, embedder=embedder)
    answer = pipeline.ask("How many tonnes of tea did Pu'er pick?")
    assert pipeline.generator.name == "scripted"
    # The prompt crossed HTTP to the fake, which quoted passage [1] back.
    assert not answer.abstained and "120 tonnes" in answer.citations[0].passage.chunk.text


def test_streamed_draft_that_fails_the_checks_is_never_sent_only_the_checked_answer(make_pipeline):
    pipeline = make_pipeline("Pu'er picked 999 tonnes [1].")  # a number no passage holds
    with ServerThread(create_app(pipeline)) as url:
        client = openai.OpenAI(base_url=url, api_key="x")
        chunks = list(
            client.chat.completions.create(
                model=RAG_MODEL,
                messages=[{"role": "user", "content": "How many tonnes of tea did Pu'er pick?"}],
                stream=True,
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1].model_dump()
    # The failed sentence is never sent: the stream is the checked answer (an abstention) alone.
    assert "999" not in text and "---" not in text
    assert final["docqa"]["abstained"] and text == final["docqa"]["answer"] and final["citations"] == []
