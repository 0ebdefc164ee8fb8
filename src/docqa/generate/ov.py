"""The OpenVINO generator: the same model, exported once to OpenVINO with int8 (or int4) weights.

On a CPU without AMX, OpenVINO's int8 kernels prefill and decode faster than transformers' float32 or
emulated bf16 (bench/README.md, "Generators"), with the same greedy text on docqa's eval. The export
needs optimum-intel, which supports an older transformers than docqa's, so it runs once, in a
subprocess, with the toolchain `make install` puts in `<venv>/openvino-export`
(requirements-openvino-export.txt); the result is cached under `cache_dir/models/` and later starts
load it in seconds. Generation itself needs only the `openvino-genai` runtime.

The chat template is applied here, with the model's own transformers tokenizer, exactly as the
transformers generator applies it, and OpenVINO GenAI is told not to apply it a second time.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docqa.errors import ModelError
from docqa.generate import Message
from docqa.generate.weights import log

# `import openvino` sends a usage event to Google Analytics unless the user has opted out or CI=true;
# docqa never talks to the network, so openvino_telemetry is made unimportable, which every OpenVINO
# package (openvino, nncf, optimum-intel) answers with its own no-op stub. ov_export.py does the same.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]

EXPORT_SCRIPT = Path(__file__).with_name("ov_export.py")
TOOLCHAIN_FIX = (
    "run `make install` (or: pip install --no-deps --target <venv>/openvino-export"
    " -r requirements-openvino-export.txt), or set llm_backend = 'transformers'"
)
EXPORT_TIMEOUT_S = 1800


def toolchain_dir(setting: Path | None = None) -> Path:
    """Where the export toolchain lives: the `ov_export_dir` setting, else `<sys.prefix>/openvino-export`."""
    return setting or Path(sys.prefix) / "openvino-export"


def runtime_missing() -> str | None:
    """None when OpenVINO GenAI imports, else why not."""
    try:
        import openvino_genai  # noqa: F401
    except ImportError as exc:  # a missing package, or a wheel this CPU/OS can't load
        return f"openvino-genai does not import ({exc})"
    return None


def export_missing(toolchain: Path) -> str | None:
    """None when the export toolchain is installed in `toolchain`, else why not."""
    folder = toolchain
    if not (folder / "optimum" / "intel").is_dir():
        return f"the OpenVINO export toolchain is not installed in {folder}"
    return None


def ov_dir(cache_dir: Path, name: str, weights: str) -> Path:
    return cache_dir / "models" / f"{name}-openvino-{weights}"


def _stamp(source: str, weights: str) -> dict[str, str]:
    """What the exported copy was made from: a changed source, weights or runtime re-exports it."""
    from importlib.metadata import version

    src = Path(source)
    made_from = (src / "docqa-source.json").read_text() if (src / "docqa-source.json").is_file() else source
    return {"source": made_from, "weights": weights, "openvino": version("openvino")}


def ensure_exported(
    name: str, source: str, cache_dir: Path, weights: str, toolchain: Path, timeout_s: float = EXPORT_TIMEOUT_S
) -> Path:
    """Folder with the OpenVINO copy of the model at `source` (a folder or hub id), exporting it once.

    The export is written to a temporary folder and renamed into place, so an interrupted or failed
    export leaves nothing that a later start would load.
    """
    target = ov_dir(cache_dir, name, weights)
    stamp = _stamp(source, weights)
    stamp_file = target / "docqa-source.json"
    if stamp_file.is_file() and (target / "openvino_model.xml").is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return target
        except ValueError:
            pass  # a damaged stamp: export again
        log(f"re-exporting {name} for OpenVINO: its source, weights or the runtime changed")
    missing = export_missing(toolchain)
    if missing:
        raise ModelError(missing, TOOLCHAIN_FIX)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(toolchain), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    log(f"first start: exporting {name} to OpenVINO {weights} (a minute or two, once; later starts take seconds)")
    try:
        done = subprocess.run(
            [sys.executable, str(EXPORT_SCRIPT), source, str(tmp), weights],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0 or not (tmp / "openvino_model.xml").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(
                f"the OpenVINO export of {name} failed ({tail[0][:300]})",
                "set llm_backend = 'transformers' to run without OpenVINO, and report the error",
            )
        (tmp / "export.log").write_text(done.stderr)  # what the toolchain printed, kept for a bug report
        (tmp / "docqa-source.json").write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"the OpenVINO export of {name} took over {timeout_s:.0f} s", "set llm_backend = 'transformers'"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"exported {name} to OpenVINO {weights} in {time.perf_counter() - started:.0f} s -> {target}")
    return target


class OpenVINOGenerator:
    """A causal LM exported to OpenVINO, run by OpenVINO GenAI's LLMPipeline on the CPU, greedy."""

    def __init__(
        self,
        name: str,
        path: str | Path,
        threads: int | None = None,
        prompt_lookup_tokens: int = 0,
        prefix_cache: bool = False,
    ) -> None:
        """`prompt_lookup_tokens`: draft that many tokens from the prompt's n-grams (0: off).

        `prefix_cache`: run on OpenVINO's paged-attention scheduler, which keeps the KV blocks of
        earlier prompts and reuses those a new prompt starts with (the system message).
        """
        import openvino_genai
        from transformers import AutoTokenizer

        self.name = name
        self.path = Path(path)
        self.prompt_lookup_tokens = prompt_lookup_tokens
        properties: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        if prompt_lookup_tokens:
            properties["prompt_lookup"] = True
        if prefix_cache:
            scheduler = openvino_genai.SchedulerConfig()
            scheduler.enable_prefix_caching = True
            scheduler.cache_size = 1  # GB of KV blocks: a few hundred prompts of docqa's size
            properties["scheduler_config"] = scheduler
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.pipe = openvino_genai.LLMPipeline(str(path), "CPU", **properties)
        except (OSError, RuntimeError) as exc:
            raise ModelError(
                f"OpenVINO could not load '{path}' ({str(exc).strip().splitlines()[0][:300]})",
                "delete that folder to export it again, or set llm_backend = 'transformers'",
            ) from None
        self._lock = threading.Lock()  # one generation at a time per pipeline

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._prompt_ids(messages))

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)  # a BatchEncoding or a plain list

    def _config(self, max_new_tokens: int) -> Any:
        import openvino_genai

        config = openvino_genai.GenerationConfig()
        config.max_new_tokens = max_new_tokens
        config.apply_chat_template = False  # docqa applied it; a second template changes the answers
        if self.prompt_lookup_tokens:
            config.num_assistant_tokens = self.prompt_lookup_tokens
            config.max_ngram_size = 3
        return config

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield the reply in pieces as OpenVINO decodes it (generation runs in a worker thread)."""
        import openvino_genai

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        pieces: queue.Queue[str | None] = queue.Queue()
        errors: list[BaseException] = []
        stop = threading.Event()  # set when the caller stops reading: the worker ends generation

        def on_piece(text: str) -> Any:
            if text:
                pieces.put(text)
            return openvino_genai.StreamingStatus.STOP if stop.is_set() else openvino_genai.StreamingStatus.RUNNING

        def run() -> None:
            try:
                self.pipe.generate(prompt, self._config(max_new_tokens), on_piece)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
            finally:
                pieces.put(None)

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                while (piece := pieces.get()) is not None:
                    yield piece
            finally:
                stop.set()
                worker.join()
        if errors:
            raise ModelError(f"OpenVINO generation failed ({errors[0]})", "set llm_backend = 'transformers'")
