"""docqa as an OpenAI-compatible endpoint (`docqa serve --openai`): /v1/models and /v1/chat/completions.

Two models are listed:

- `docqa`: question answering over the documents. The last user message is the question, earlier
  user/assistant turns are the history for `Pipeline.stream`. The reply carries inline [n] markers
  and, as structured data, a top-level `citations` list (the shape `docqa ask --json` prints) and a
  `docqa` object (the checked answer, abstention, retrieved passages, timings). When streaming,
  both ride on the final chunk.
- the underlying language model by its own name (e.g. `qwen2.5-coder-0.5b-instruct-q4_k_m`): the
  messages go to the generator as they are, so this server is also a plain model server that
  another docqa can use with `llm_backend = "openai"`.

Streaming sends the model's draft sentence by sentence, each once complete and past docqa's
per-sentence checks (`Pipeline.stream`): a sentence that fails them, and everything after it, is
never sent. The whole-answer checks run after the draft ends and can complete the answer or turn it
into an abstention; when the checked answer differs from what was sent, it follows as one more
content delta, after a rule ("\\n\\n---\\n") when some text was already sent, and `docqa.answer` in
the final chunk holds the checked answer alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from docqa.answering.pipeline import Pipeline
from docqa.errors import DocqaError
from docqa.generate import count_text_tokens
from docqa.generate.weights import log
from docqa.settings import Settings, apply_runtime_settings
from docqa.types import Answer, StreamEvent

RAG_MODEL = "docqa"
CORRECTION_RULE = "\n\n---\n"


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields docqa reads from an OpenAI chat request; the rest (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = RAG_MODEL
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    stream_options: dict[str, Any] | None = None
    top_k: int | None = Field(None, ge=1, le=20)  # docqa extension (extra_body)


def message_text(message: ChatMessageIn) -> str:
    """The text of a message whose content is a string or a list of parts.

    >>> message_text(ChatMessageIn(role="user", content=[{"type": "text", "text": "Hi"}, {"type": "image_url"}]))
    'Hi'
    """
    if isinstance(message.content, list):
        return "".join(p.get("text", "") for p in message.content if p.get("type") == "text")
    return message.content or ""


def split_conversation(messages: list[ChatMessageIn]) -> tuple[str, list[tuple[str, str]]]:
    """(question, history): the last user message, and the (user, assistant) pairs before it.

    System messages are ignored: docqa's own prompts decide how the model is instructed.

    >>> m = [ChatMessageIn(role="user", content="q1"), ChatMessageIn(role="assistant", content="a1"),
    ...      ChatMessageIn(role="user", content="and q2?")]
    >>> split_conversation(m)
    ('and q2?', [('q1', 'a1')])
    """
    turns = [(m.role, message_text(m)) for m in messages if m.role in ("user", "assistant")]
    last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    if last_user is None:
        raise ValueError("the request has no user message")
    history: list[tuple[str, str]] = []
    pending: str | None = None
    for role, text in turns[:last_user]:
        if role == "user":
            pending = text if pending is None else f"{pending}\n{text}"
        elif pending is not None:
            history.append((pending, text))
            pending = None
    return turns[last_user][1], history


def authorized(header: str | None, login: tuple[str, str] | None) -> bool:
    """Bearer <password> (what OpenAI clients send as the API key) or Basic username:password.

    >>> authorized("Bearer s3cret", ("ann", "s3cret")), authorized("Bearer nope", ("ann", "s3cret"))
    (True, False)
    >>> authorized(None, None)
    True
    """
    if login is None:
        return True
    if not header:
        return False
    username, password = login
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return secrets.compare_digest(value.strip().encode(), password.encode())
    if scheme.lower() == "basic":
        try:
            user, _, given = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user.encode(), username.encode()) & secrets.compare_digest(
            given.encode(), password.encode()
        )
    return False


# --- payloads: each OpenAI object is built here, once -------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What every object of one reply repeats: its id, creation time and model name."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> Reply:
        return cls(f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), model)


def usage_payload(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The `usage` object.

    >>> usage_payload(10, 3)
    {'prompt_tokens': 10, 'completion_tokens': 3, 'total_tokens': 13}
    """
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_payload(reply: Reply, content: str, usage: dict[str, int], **extra: Any) -> dict[str, Any]:
    """A `chat.completion` object: one choice holding `content`; `extra` are top-level fields after usage."""
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
        **extra,
    }


def chunk_payload(reply: Reply, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A `chat.completion.chunk` object with one choice; `extra` are top-level fields after it."""
    return {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def usage_chunk_payload(reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    """The chunk sent last when the client asked for `stream_options.include_usage`: no choices, the usage."""
    return chunk_payload(reply, {}) | {"choices": [], "usage": usage}


def error_payload(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """An OpenAI error object, as a response body or an SSE event.

    >>> error_payload("no such model", code="model_not_found")["error"]["code"]
    'model_not_found'
    """
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event: a JSON object, or a bare string such as "[DONE]".

    >>> sse("[DONE]")
    'data: [DONE]\\n\\n'
    """
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def answer_usage(answer: Answer) -> dict[str, int]:
    return usage_payload(int(answer.usage.get("prompt_tokens", 0)), int(answer.usage.get("answer_tokens", 0)))


def docqa_extra(answer: Answer) -> dict[str, Any]:
    """The `docqa` object: the checked answer, abstention, retrieved passages, timings, notices."""
    data = answer.to_dict()
    return {k: data[k] for k in ("answer", "abstained", "abstain_reason", "retrieved", "timings", "notices")} | {
        "standalone_question": answer.standalone_question
    }


def answer_completion(reply: Reply, answer: Answer) -> dict[str, Any]:
    """A `chat.completion` for a checked answer, with citations as structured data."""
    return completion_payload(
        reply,
        answer.answer,
        answer_usage(answer),
        citations=[c.to_dict() for c in answer.citations],
        docqa=docqa_extra(answer),
    )


# --- streams --------------------------------------------------------------------------------------


def answer_events(reply: Reply, events: Iterator[StreamEvent], include_usage: bool) -> Iterator[str]:
    """The SSE lines of a streamed answer: the role, the draft's checked sentences, then `final_answer_events`.

    An error after the 200 went out (e.g. the upstream model server went away) is sent as an error event.
    """
    yield sse(chunk_payload(reply, {"role": "assistant", "content": ""}))
    draft: list[str] = []
    try:
        for event in events:
            if event.answer is not None:
                yield from final_answer_events(reply, event.answer, "".join(draft), include_usage)
            else:
                draft.append(event.delta)
                yield sse(chunk_payload(reply, {"content": event.delta}))
    except DocqaError as exc:
        yield sse(error_payload(exc.message, "server_error"))
    yield sse("[DONE]")


def final_answer_events(reply: Reply, answer: Answer, draft: str, include_usage: bool) -> Iterator[str]:
    """The checked answer when it differs from what was sent (after a rule if something was); the stop
    chunk with citations; usage."""
    if answer.answer.strip() != draft.strip():
        rule = CORRECTION_RULE if draft.strip() else ""
        yield sse(chunk_payload(reply, {"content": rule + answer.answer}))
    citations = [c.to_dict() for c in answer.citations]
    yield sse(chunk_payload(reply, {}, "stop", citations=citations, docqa=docqa_extra(answer)))
    if include_usage:
        yield sse(usage_chunk_payload(reply, answer_usage(answer)))


def passthrough_events(
    reply: Reply,
    generator: Any,
    messages: list[dict[str, str]],
    max_new: int,
    prompt_tokens: int,
    include_usage: bool,
) -> Iterator[str]:
    """The SSE lines of a streamed passthrough reply: the model's pieces as they come, then the usage if asked."""
    yield sse(chunk_payload(reply, {"role": "assistant", "content": ""}))
    pieces: list[str] = []
    for piece in generator.stream(messages, max_new):
        pieces.append(piece)
        yield sse(chunk_payload(reply, {"content": piece}))
    yield sse(chunk_payload(reply, {}, "stop"))
    if include_usage:
        completion_tokens = count_text_tokens(generator, "".join(pieces))
        yield sse(usage_chunk_payload(reply, usage_payload(prompt_tokens, completion_tokens)))
    yield sse("[DONE]")


# --- the endpoints' logic -------------------------------------------------------------------------


@dataclass
class APIError(Exception):
    """An error response: the HTTP status, the OpenAI error object's fields, extra headers."""

    status: int
    message: str
    kind: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        return self.message

    def response(self) -> JSONResponse:
        return JSONResponse(error_payload(self.message, self.kind, self.code), self.status, headers=self.headers)


class OpenAIServer:
    """The endpoints over one pipeline, callable without a server (`create_app` wires them to routes).

    Handlers return a JSON-ready dict, or an iterator of SSE lines for a streamed reply, and raise
    APIError for an error response. The login is checked when this is built: half of one is an error.
    """

    def __init__(self, pipeline: Pipeline, settings: Settings | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings or pipeline.settings
        self.login = self.settings.login
        self.started = int(time.time())

    def check_login(self, authorization: str | None) -> None:
        if not authorized(authorization, self.login):
            raise APIError(
                401,
                "missing or wrong API key (the docqa password)",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer realm="docqa"'},
            )

    def model_names(self) -> tuple[str, str]:
        return RAG_MODEL, self.pipeline.generator.name

    def models(self) -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": self.started, "owned_by": "docqa"} for name in self.model_names()
        ]
        return {"object": "list", "data": data}

    def chat_completions(self, request: ChatRequest) -> dict[str, Any] | Iterator[str]:
        if request.model not in self.model_names():
            raise APIError(404, f"The model '{request.model}' does not exist", code="model_not_found")
        max_new = request.max_completion_tokens or request.max_tokens
        include_usage = bool((request.stream_options or {}).get("include_usage"))
        if request.model != RAG_MODEL:
            return self.passthrough(request, max_new or self.settings.max_new_tokens, include_usage)
        return self.answer(request, max_new, include_usage)

    def answer(self, request: ChatRequest, max_new: int | None, include_usage: bool) -> dict[str, Any] | Iterator[str]:
        """The `docqa` model: the last user message answered from the documents, earlier turns as history."""
        try:
            question, history = split_conversation(request.messages)
        except ValueError as exc:
            raise APIError(400, str(exc)) from None
        reply = Reply.new(RAG_MODEL)
        options = {"top_k": request.top_k, "max_new_tokens": max_new}
        try:
            if not request.stream:
                return answer_completion(reply, self.pipeline.ask(question, history, **options))
            events = self.pipeline.stream(question, history, **options)
            first = next(events)  # a bad question fails here, before the 200 is sent
        except DocqaError as exc:
            raise APIError(400, exc.message) from None
        return answer_events(reply, _chain(first, events), include_usage)

    def passthrough(self, request: ChatRequest, max_new: int, include_usage: bool) -> dict[str, Any] | Iterator[str]:
        """The language model itself: the messages go to the generator as they are."""
        generator = self.pipeline.generator
        reply = Reply.new(generator.name)
        messages = [{"role": m.role, "content": message_text(m)} for m in request.messages]
        prompt_tokens = generator.count_tokens(messages)
        if request.stream:
            return passthrough_events(reply, generator, messages, max_new, prompt_tokens, include_usage)
        text = "".join(generator.stream(messages, max_new))
        return completion_payload(reply, text, usage_payload(prompt_tokens, count_text_tokens(generator, text)))


def create_app(pipeline: Pipeline, settings: Settings | None = None) -> FastAPI:
    """The FastAPI app serving `pipeline`: routes and the login check, wired to `OpenAIServer`."""
    server = OpenAIServer(pipeline, settings)
    app = FastAPI(title="docqa (OpenAI-compatible)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def check_login(request: Request, call_next):
        try:
            server.check_login(request.headers.get("authorization"))
        except APIError as exc:
            return exc.response()
        return await call_next(request)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return server.models()

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest):
        try:
            result = server.chat_completions(request)
        except APIError as exc:
            return exc.response()
        return result if isinstance(result, dict) else StreamingResponse(result, media_type="text/event-stream")

    return app


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def serve(settings: Settings) -> None:
    """Build the pipeline, load the model, and serve the OpenAI-compatible API until interrupted."""
    import uvicorn

    apply_runtime_settings(settings)
    if warning := settings.open_access_warning:  # also fails on half a login, before the model loads
        log(f"warning: {warning}")
    pipeline = Pipeline.from_settings(settings)
    app = create_app(pipeline, settings)
    name = pipeline.generator.name  # load now, so the first request doesn't wait for the model
    log(f"OpenAI-compatible API on http://{settings.host}:{settings.port}/v1 (models: {RAG_MODEL}, {name})")
    # One worker: the model is in this process, and generation is serialised by its lock.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", workers=1)
