"""A Generator backed by any OpenAI-compatible chat server (vLLM, TGI, llama.cpp, Ollama, another docqa).

Needs the `openai` extra (llama-index-llms-openai-like). The model runs elsewhere; docqa sends the
same chat messages it would give the in-process model and streams the reply back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from docqa.errors import ModelError, SettingsError
from docqa.generate import Message
from docqa.settings import Settings

EXTRA_HINT = "pip install 'docqa[openai]' (llama-index-llms-openai-like)"


def estimate_tokens(text: str) -> int:
    """A server-independent token estimate: about four characters per token for English text.

    >>> estimate_tokens("What was China's urbanization rate in 2019?")
    10
    """
    return max(1, len(text) // 4) if text else 0


def from_settings(settings: Settings) -> OpenAICompatibleGenerator:
    """The generator that `llm_backend = "openai"` names; says which setting is missing."""
    missing = [k for k in ("openai_base_url", "openai_model") if not getattr(settings, k)]
    if missing:
        raise SettingsError(
            f"llm_backend = 'openai' needs {' and '.join(missing)}",
            "set them in docqa.toml or as DOCQA_" + " / DOCQA_".join(k.upper() for k in missing),
        )
    assert settings.openai_base_url is not None and settings.openai_model is not None
    return OpenAICompatibleGenerator(settings.openai_base_url, settings.openai_model, settings.openai_api_key)


class OpenAICompatibleGenerator:
    """Chat completions from `base_url` (e.g. http://127.0.0.1:8000/v1) with model `model`.

    Decoding is greedy (temperature 0), like the in-process generator. `count_tokens` is an
    estimate (characters / 4): the server's tokenizer is not available here.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        context_window: int = 32768,
    ) -> None:
        try:
            from llama_index.llms.openai_like import OpenAILike
        except ImportError:
            raise ModelError(
                "the OpenAI-compatible LLM backend is not installed",
                f"{EXTRA_HINT}, or set llm_backend = 'transformers'",
            ) from None
        self.name = model
        self.base_url = base_url.rstrip("/")
        self._llm = OpenAILike(
            model=model,
            api_base=self.base_url,
            # Local servers ignore the key, but the client refuses to start without one.
            api_key=api_key or "not-needed",
            is_chat_model=True,
            context_window=context_window,
            temperature=0.0,
            timeout=timeout_s,
            max_retries=1,
        )

    def _chat_messages(self, messages: list[Message]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role=m["role"], content=m["content"]) for m in messages]

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        import openai

        try:
            for response in self._llm.stream_chat(self._chat_messages(messages), max_tokens=max_new_tokens):
                if response.delta:
                    yield response.delta
        except openai.OpenAIError as exc:  # the client's errors, named here once with cause and fix
            raise self._error(exc) from None

    def count_tokens(self, messages: list[Message]) -> int:
        """Estimated prompt tokens (characters / 4 plus a few per message for the chat template)."""
        return sum(estimate_tokens(m["content"]) + 4 for m in messages)

    def _error(self, exc: Exception) -> Exception:
        import openai

        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                f"could not reach the LLM server at {self.base_url} ({exc.__class__.__name__})",
                "start the server, or check openai_base_url (it usually ends in /v1)",
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelError(
                f"the LLM server at {self.base_url} refused the API key ({exc.status_code})",
                "set openai_api_key or DOCQA_OPENAI_API_KEY to a key it accepts",
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelError(
                f"the LLM server at {self.base_url} has no model '{self.name}' (404)",
                "set openai_model to one listed by GET /v1/models",
            )
        if isinstance(exc, openai.APIStatusError):
            return ModelError(
                f"the LLM server at {self.base_url} answered {exc.status_code}: {str(exc)[:200]}",
                "check the server's log",
            )
        return exc
