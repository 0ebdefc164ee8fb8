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

Streaming sends the model's draft as it is written. docqa's checks run after the draft ends and can
repair markers or turn the answer into an abstention; when the checked answer differs from the
draft, it follows the draft as one more content delta after a rule ("\\n\\n---\\n"), and
`docqa.answer` in the final chunk holds the checked answer alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from docqa.answering.pipeline import Pipeline, apply_runtime_settings
from docqa.errors import DocqaError, SettingsError
from docqa.generate.weights import log
from docqa.settings import Settings
from docqa.types import Answer

RAG_MODEL = "docqa"
CORRECTION_RULE = "\n\n---\n"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def authorized(header: str | None, username: str | None, password: str | None) -> bool:
    """Bearer <password> (what OpenAI clients send as the API key) or Basic username:password.

    >>> authorized("Bearer s3cret", "ann", "s3cret"), authorized("Bearer nope", "ann", "s3cret")
    (True, False)
    >>> authorized(None, None, None)
    True
    """
    if password is None and username is None:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return secrets.compare_digest(value.strip().encode(), (password or "").encode())
    if scheme.lower() == "basic":
        try:
            user, _, given = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user.encode(), (username or "").encode()) & secrets.compare_digest(
            given.encode(), (password or "").encode()
        )
    return False


def completion_payload(answer: Answer, model: str, completion_id: str, created: int) -> dict[str, Any]:
    """A `chat.completion` object for a checked answer, with citations as structured data."""
    prompt_tokens = int(answer.usage.get("prompt_tokens", 0))
    completion_tokens = int(answer.usage.get("answer_tokens", 0))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "citations": [c.to_dict() for c in answer.citations],
        "docqa": docqa_extra(answer),
    }


def docqa_extra(answer: Answer) -> dict[str, Any]:
    data = answer.to_dict()
    return {k: data[k] for k in ("answer", "abstained", "abstain_reason", "retrieved", "timings", "notices")} | {
        "standalone_question": answer.standalone_question
    }


def chunk_payload(
    completion_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(pipeline: Pipeline, settings: Settings | None = None) -> Any:
    """The FastAPI app serving `pipeline`. Needs fastapi (installed with gradio)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    settings = settings or pipeline.settings
    if bool(settings.username) != bool(settings.password):
        raise SettingsError(
            "only one of username and password is set", "set both (DOCQA_USERNAME and DOCQA_PASSWORD), or neither"
        )
    app = FastAPI(title="docqa (OpenAI-compatible)", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    def error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)

    @app.middleware("http")
    async def check_login(request: Request, call_next):
        if not authorized(request.headers.get("authorization"), settings.username, settings.password):
            response = error(
                401, "missing or wrong API key (the docqa password)", "invalid_request_error", "invalid_api_key"
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="docqa"'
            return response
        return await call_next(request)

    def llm_name() -> str:
        return pipeline.generator.name

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": started, "owned_by": "docqa"} for name in (RAG_MODEL, llm_name())
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest):
        if request.model not in (RAG_MODEL, llm_name()):
            return error(404, f"The model '{request.model}' does not exist", "invalid_request_error", "model_not_found")
        max_new = request.max_completion_tokens or request.max_tokens
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        include_usage = bool((request.stream_options or {}).get("include_usage"))
        if request.model != RAG_MODEL:
            messages = [{"role": m.role, "content": message_text(m)} for m in request.messages]
            return passthrough(
                messages, max_new or settings.max_new_tokens, request, completion_id, created, include_usage
            )
        try:
            question, history = split_conversation(request.messages)
        except ValueError as exc:
            return error(400, str(exc), "invalid_request_error")
        options = {"top_k": request.top_k, "max_new_tokens": max_new}
        if not request.stream:
            try:
                answer = pipeline.ask(question, history, **options)
            except DocqaError as exc:
                return error(400, exc.message, "invalid_request_error")
            return completion_payload(answer, RAG_MODEL, completion_id, created)
        try:
            items = pipeline.stream(question, history, **options)
            first = next(items)  # a bad question fails here, before the 200 is sent
        except DocqaError as exc:
            return error(400, exc.message, "invalid_request_error")

        def events() -> Iterator[str]:
            yield sse(chunk_payload(completion_id, created, RAG_MODEL, {"role": "assistant", "content": ""}))
            draft: list[str] = []
            try:
                yield from _answer_events(_chain(first, items), draft)
            except DocqaError as exc:  # e.g. the upstream model server went away mid-answer
                yield sse({"error": {"message": exc.message, "type": "server_error", "param": None, "code": None}})
            yield sse("[DONE]")

        def _answer_events(stream: Iterator[Any], draft: list[str]) -> Iterator[str]:
            for item in stream:
                if isinstance(item, Answer):
                    if item.answer.strip() != "".join(draft).strip():
                        fix = CORRECTION_RULE + item.answer
                        yield sse(chunk_payload(completion_id, created, RAG_MODEL, {"content": fix}))
                    final = completion_payload(item, RAG_MODEL, completion_id, created)
                    yield sse(
                        chunk_payload(
                            completion_id,
                            created,
                            RAG_MODEL,
                            {},
                            "stop",
                            citations=final["citations"],
                            docqa=final["docqa"],
                        )
                    )
                    if include_usage:
                        yield sse(
                            {
                                **chunk_payload(completion_id, created, RAG_MODEL, {}),
                                "choices": [],
                                "usage": final["usage"],
                            }
                        )
                else:
                    draft.append(item)
                    yield sse(chunk_payload(completion_id, created, RAG_MODEL, {"content": item}))

        return StreamingResponse(events(), media_type="text/event-stream")

    def passthrough(
        messages: list[dict[str, str]],
        max_new: int,
        request: ChatRequest,
        completion_id: str,
        created: int,
        include_usage: bool,
    ):
        generator = pipeline.generator
        name = generator.name
        prompt_tokens = generator.count_tokens(messages)
        if not request.stream:
            text = "".join(generator.stream(messages, max_new))
            completion_tokens = _count_text(generator, text)
            return {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }

        def events() -> Iterator[str]:
            yield sse(chunk_payload(completion_id, created, name, {"role": "assistant", "content": ""}))
            pieces: list[str] = []
            for piece in generator.stream(messages, max_new):
                pieces.append(piece)
                yield sse(chunk_payload(completion_id, created, name, {"content": piece}))
            yield sse(chunk_payload(completion_id, created, name, {}, "stop"))
            if include_usage:
                completion_tokens = _count_text(generator, "".join(pieces))
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                yield sse({**chunk_payload(completion_id, created, name, {}), "choices": [], "usage": usage})
            yield sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _count_text(generator: Any, text: str) -> int:
    tokenizer = getattr(generator, "tokenizer", None)
    return len(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None else len(text.split())


def serve(settings: Settings) -> None:
    """Build the pipeline, load the model, and serve the OpenAI-compatible API until interrupted."""
    import uvicorn

    apply_runtime_settings(settings)
    if not settings.password and settings.host not in LOOPBACK:
        log(f"warning: serving on {settings.host} without a login; set username and password to require one")
    pipeline = Pipeline.from_settings(settings)
    app = create_app(pipeline, settings)
    name = pipeline.generator.name  # load now, so the first request doesn't wait for the model
    log(f"OpenAI-compatible API on http://{settings.host}:{settings.port}/v1 (models: {RAG_MODEL}, {name})")
    # One worker: the model is in this process, and generation is serialised by its lock.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", workers=1)
