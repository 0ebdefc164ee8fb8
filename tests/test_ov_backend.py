"""The OpenVINO generator's logic, with fakes: which backend "auto" picks, the cached export, streaming."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from docqa import generate
from docqa.errors import ModelError
from docqa.generate import ov
from docqa.settings import Settings

# Stands in for ov_export.py: writes what a real export writes, or fails like one.
FAKE_EXPORT = """
import sys, pathlib
src, dst, weights = sys.argv[1:4]
log = pathlib.Path(src) / "exports.log"
log.write_text(log.read_text() + weights + "\\n" if log.exists() else weights + "\\n")
if (pathlib.Path(src) / "FAIL").exists():
    print("Traceback ...", file=sys.stderr)
    print("RuntimeError: unsupported architecture qwen9", file=sys.stderr)
    sys.exit(1)
d = pathlib.Path(dst); d.mkdir(parents=True)
(d / "openvino_model.xml").write_text("<net/>")
"""


@pytest.fixture
def fake_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model folder to export, a fake export script, and a toolchain folder that looks installed."""
    script = tmp_path / "fake_export.py"
    script.write_text(FAKE_EXPORT)
    monkeypatch.setattr(ov, "EXPORT_SCRIPT", script)
    (tmp_path / "toolchain" / "optimum" / "intel").mkdir(parents=True)  # looks installed
    model = tmp_path / "model"
    model.mkdir()
    (model / "docqa-source.json").write_text(json.dumps({"sha256": "abc"}))
    return model


def exports(model: Path) -> list[str]:
    log = model / "exports.log"
    return log.read_text().split() if log.exists() else []


def test_export_runs_once_and_is_reused(fake_export: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain")
    assert (first / "openvino_model.xml").is_file()
    assert json.loads((first / "docqa-source.json").read_text())["weights"] == "int8"
    assert ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain") == first
    assert exports(fake_export) == ["int8"]  # the second start loaded the cached copy
    # Other weights are another copy; a changed source (new GGUF hash) exports again.
    assert ov.ensure_exported("m", str(fake_export), cache, "int4", tmp_path / "toolchain") != first
    (fake_export / "docqa-source.json").write_text(json.dumps({"sha256": "def"}))
    ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain")
    assert exports(fake_export) == ["int8", "int4", "int8"]
    assert not [p for p in (cache / "models").iterdir() if p.name.endswith(".tmp")]


def test_failed_export_names_the_error_and_leaves_nothing(fake_export: Path, tmp_path: Path) -> None:
    (fake_export / "FAIL").write_text("")
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain")
    assert "unsupported architecture qwen9" in str(err.value)
    assert "llm_backend = 'transformers'" in err.value.fix
    assert list((cache / "models").iterdir()) == []  # no half-written folder a later start could load


def test_damaged_stamp_exports_again(fake_export: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain")
    (folder / "docqa-source.json").write_text("{not json")
    assert ov.ensure_exported("m", str(fake_export), cache, "int8", tmp_path / "toolchain") == folder
    assert exports(fake_export) == ["int8", "int8"]


def test_missing_toolchain_is_a_named_error(fake_export: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        ov.ensure_exported("m", str(fake_export), tmp_path / "cache", "int8", tmp_path / "nowhere")
    assert "export toolchain is not installed" in str(err.value)
    assert "make install" in err.value.fix and "requirements-openvino-export.txt" in err.value.fix


@pytest.fixture
def auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with llm_backend auto on a pretend x86 CPU with no GPU, OpenVINO importable."""
    monkeypatch.setattr(generate, "_has_gpu", lambda: False)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(ov, "runtime_missing", lambda: None)
    toolchain = tmp_path / "toolchain"
    (toolchain / "optimum" / "intel").mkdir(parents=True)
    return Settings(cache_dir=tmp_path / "cache", profile="small", ov_export_dir=toolchain)


def test_auto_picks_openvino_on_an_x86_cpu(auto: Settings) -> None:
    assert generate.choose_backend(auto)[0] == "openvino"


def test_auto_picks_transformers_with_a_gpu(auto: Settings, monkeypatch) -> None:
    monkeypatch.setattr(generate, "_has_gpu", lambda: True)
    assert generate.choose_backend(auto) == ("transformers", "a GPU is present")


def test_auto_picks_transformers_off_x86(auto: Settings, monkeypatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    backend, why = generate.choose_backend(auto)
    assert backend == "transformers" and "aarch64" in why


def test_auto_picks_transformers_without_the_runtime(auto: Settings, monkeypatch) -> None:
    monkeypatch.setattr(ov, "runtime_missing", lambda: "openvino-genai does not import (no module)")
    assert generate.choose_backend(auto) == ("transformers", "openvino-genai does not import (no module)")


def test_auto_without_toolchain_uses_a_cached_export_else_transformers(auto: Settings, tmp_path) -> None:
    auto = auto.model_copy(update={"ov_export_dir": tmp_path / "nowhere"})
    backend, why = generate.choose_backend(auto)
    assert backend == "transformers" and "toolchain is not installed" in why
    name = generate.PROFILE_MODELS["small"]
    folder = ov.ov_dir(auto.resolved_cache_dir, name, "int8")
    folder.mkdir(parents=True)
    (folder / "docqa-source.json").write_text("{}")
    assert generate.choose_backend(auto)[0] == "openvino"
    # int4 is another copy, not cached
    assert generate.choose_backend(auto.model_copy(update={"ov_weights": "int4"}))[0] == "transformers"


def test_explicit_backend_is_kept(auto: Settings, monkeypatch) -> None:
    monkeypatch.setattr(generate, "_has_gpu", lambda: True)
    assert generate.choose_backend(auto.model_copy(update={"llm_backend": "openvino"}))[0] == "openvino"
    assert generate.choose_backend(auto.model_copy(update={"llm_backend": "transformers"}))[0] == "transformers"


def test_model_names_for_hub_ids_are_folder_safe() -> None:
    assert generate._model_name("qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b"
    a, b = generate._model_name("Qwen/Qwen2.5-1.5B-Instruct"), generate._model_name("Qwen/Qwen2.5-1.5B/Instruct")
    assert "/" not in a and a.startswith("Qwen-Qwen2.5-1.5B-Instruct-") and a != b


class FakePipe:
    """Stands in for openvino_genai.LLMPipeline: streams words until told to stop."""

    def __init__(self, words: list[str], fail: Exception | None = None) -> None:
        self.words, self.fail, self.sent, self.prompts = words, fail, 0, []

    def generate(self, prompt, config, streamer):
        import openvino_genai

        self.prompts.append((prompt, config.apply_chat_template, config.max_new_tokens))
        for word in self.words:
            self.sent += 1
            time.sleep(0.002)  # a token takes time; the reader's stop must land mid-answer
            if streamer(word) == openvino_genai.StreamingStatus.STOP:
                return
        if self.fail:
            raise self.fail


class FakeTokenizer:
    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"
        return list(range(len(text.split()))) if tokenize else text


def fake_generator(pipe: FakePipe) -> ov.OpenVINOGenerator:
    pytest.importorskip("openvino_genai")
    g = object.__new__(ov.OpenVINOGenerator)
    g.name, g.prompt_lookup_tokens, g.tokenizer, g.pipe, g._lock = "fake", 0, FakeTokenizer(), pipe, threading.Lock()
    return g


MESSAGES = [{"role": "system", "content": "Cite."}, {"role": "user", "content": "Why is the sky blue?"}]


def test_stream_yields_pieces_with_docqa_template_applied_once() -> None:
    pipe = FakePipe(["Rayleigh ", "scattering ", "[1]."])
    g = fake_generator(pipe)
    assert list(g.stream(MESSAGES, 40)) == ["Rayleigh ", "scattering ", "[1]."]
    prompt, templated_again, max_new = pipe.prompts[0]
    assert prompt == "<system>Cite.<user>Why is the sky blue?<assistant>"
    assert templated_again is False and max_new == 40


def test_stream_stops_generation_when_the_reader_stops() -> None:
    pipe = FakePipe([f"w{i} " for i in range(1000)])
    g = fake_generator(pipe)
    stream = g.stream(MESSAGES, 1000)
    assert next(stream) == "w0 "
    stream.close()  # the checks dropped the answer, or the client went away
    assert pipe.sent < 1000
    assert g._lock.acquire(timeout=1)  # and the generator is free for the next question


def test_stream_error_is_a_model_error() -> None:
    g = fake_generator(FakePipe(["a "], fail=RuntimeError("out of memory")))
    with pytest.raises(ModelError, match="out of memory"):
        list(g.stream(MESSAGES, 10))


def test_export_script_is_standalone() -> None:
    """ov_export.py runs with the toolchain's transformers, so it must not import docqa."""
    source = (Path(ov.__file__).with_name("ov_export.py")).read_text()
    imports = [line.strip() for line in source.splitlines() if line.strip().startswith(("import ", "from "))]
    assert imports and not [line for line in imports if "docqa" in line]
