"""One validated settings object.

Sources, later ones winning: built-in defaults, a TOML settings file, `DOCQA_*` environment
variables, then explicit overrides (CLI options, keyword arguments). Unknown keys are an error.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docqa.errors import SettingsError

ENV_PREFIX = "DOCQA_"
ENV_ALIASES = {"docs": "docs_dir", "index": "index_dir"}  # DOCQA_DOCS, DOCQA_INDEX match --docs, --index
DEFAULT_SETTINGS_FILE = "docqa.toml"

# The names every layer uses (settings, CLI choices, the web page, the weights table), defined here once.
Profile = Literal["default", "small"]  # bundled generators: Qwen2.5-Coder 1.5B, 0.5B
Mode = Literal["hybrid", "dense", "bm25"]  # retrieval: dense + BM25 fused, or either alone
PROFILES: tuple[str, ...] = get_args(Profile)
MODES: tuple[str, ...] = get_args(Mode)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # hosts only this machine can reach


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Where things live.
    docs_dir: Path = Path("docs")
    index_dir: Path = Path("index")
    prompts_dir: Path | None = None  # None: the prompts/ folder shipped with docqa
    cache_dir: Path | None = None  # None: the user's cache dir (converted model copies)
    # Conversations and feedback (SQLite); None: a docqa folder in the user's data dir (platformdirs).
    data_dir: Path | None = None
    settings_file: Path | None = None  # the TOML file these settings were read from, if any

    # Models. `profile` picks the bundled generator; `llm_model` / `embed_model` override it with
    # any Hugging Face id, local folder, or .gguf file.
    profile: Profile = "default"
    llm_model: str | None = None
    embed_model: str | None = None
    # Generator precision. auto: bf16 on a GPU or a CPU with AVX512-BF16/AMX (about 3x faster prefill
    # there), else float32 (emulated bf16 runs about half as fast as float32 on an AVX2-only CPU).
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    # Embedding precision. auto: bf16 autocast where the CPU has native bf16 (2x faster indexing),
    # else float32. Vectors stay float32 either way; the index does not need rebuilding to switch.
    embed_dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    # Embedding backend. onnx: the model exported once to ONNX under cache_dir and run by ONNX Runtime on every
    # core (faster on CPU; vectors within cosine 1e-5 of torch's, so an index serves either). torch: the
    # sentence-transformers reference. auto: onnx when onnxruntime imports and embedding isn't bf16, else torch.
    embed_backend: Literal["auto", "torch", "onnx"] = "auto"
    offline: bool = True  # set HF_HUB_OFFLINE so nothing tries the network
    threads: int | None = None  # torch threads; None: torch's default (all cores)
    prompt_lookup_tokens: int = Field(10, ge=0, le=64)  # prompt-lookup drafting for faster decode; 0: off

    # Ingestion.
    chunk_tokens: int = Field(128, ge=16, le=256)  # MiniLM truncates beyond 256 word pieces
    chunk_overlap_tokens: int = Field(32, ge=0, le=128)
    max_file_mb: float = Field(50.0, gt=0)
    pdf_timeout_s: float = Field(180.0, gt=0)
    auto_index: bool = True  # bring the index up to date with docs/ before answering

    # Retrieval.
    retrieval: Mode = "hybrid"
    top_k: int = Field(4, ge=1, le=20)
    # Passages for a broad question ("what does it say about X", "summarize Y"), which draws on more
    # of the documents; `answer_budget_s` still cuts the lowest-ranked ones when time runs short.
    broad_top_k: int = Field(8, ge=1, le=20)
    candidates: int = Field(20, ge=1, le=200)  # per retriever, before fusion
    # BM25's weight against dense in the rank fusion. MiniLM is a small embedder; on factual prose
    # exact terms (numbers, names) carry more signal, and 2.0 measured best (eval/README.md).
    bm25_weight: float = Field(2.0, ge=0)
    dedup_threshold: float = Field(0.8, gt=0, le=1)
    # Search each part of a multi-part or comparison question too, so every part's best passage is
    # among the top_k (answering/question.split_parts, retrieve/parts.cover_parts).
    search_parts: bool = True
    # Fewer prompt tokens (prefill is most of an answer's time on a CPU): drop passages 3+ whose cosine
    # is over 0.05 below the best unless they hold the question's terms, and give the model only the
    # sentences that share the question's terms, with one neighbour each side (answering/trim.py). It cut
    # prompts 7-14 % with no evidence lost on three collections (bench/README.md, "Less to prefill"), but
    # the 0.5B model then declined a question it answers from four passages, so it is off by default.
    prompt_trim: bool = False
    # Best dense cosine below this: abstain without calling the model. `docqa eval --calibrate` on the
    # bundled set put it at 0.175 (answerable questions scored >= 0.22, off-topic ones <= 0.13).
    min_score: float = Field(0.175, ge=-1, le=1)

    # A second attempt when the model says the passages don't answer although retrieval is confident
    # (best cosine >= retry_min_score): the model is asked to quote the answering sentence, and the
    # quote is kept only if it passes the same checks and shares the question's key terms.
    retry_min_score: float | None = Field(0.3, ge=-1, le=1)  # None: never retry

    # Generation.
    max_new_tokens: int = Field(160, ge=1, le=4096)
    max_question_chars: int = Field(2000, ge=10)
    # Seconds an answer may take; with a budget, optional steps (a follow-up rewrite call, the
    # lowest-ranked passages) are skipped when measured speeds say the answer would run over.
    answer_budget_s: float | None = Field(None, gt=0)

    # Backends. "openvino": the generator exported once to OpenVINO (ov_weights) and run by OpenVINO
    # GenAI, faster on CPUs without AMX (bench/README.md, "Generators"). "transformers": the reference.
    # "auto": openvino on an x86 CPU with no GPU when its runtime and export toolchain are installed,
    # else transformers (the log says why). "openai" sends generation to any OpenAI-compatible server
    # (vLLM, TGI, llama.cpp, Ollama, another `docqa serve --openai`); needs the `openai` extra.
    llm_backend: Literal["auto", "transformers", "openvino", "openai"] = "auto"
    # The OpenVINO copy's weights: int8 (per channel) answers as transformers does on the eval; int4
    # (group 128) is smaller and faster but changes answers (eval/README.md).
    ov_weights: Literal["int8", "int4"] = "int8"
    # The export toolchain's folder (requirements-openvino-export.txt); None: <venv>/openvino-export.
    ov_export_dir: Path | None = None
    openai_base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    openai_model: str | None = None  # the model name the server knows
    openai_api_key: str | None = Field(None, repr=False)  # env DOCQA_OPENAI_API_KEY
    # `vector_store = "pgvector"` keeps chunks, vectors and the manifest in PostgreSQL at `pg_url`
    # (e.g. postgresql://user:pass@host:5432/db); needs the `pgvector` extra.
    vector_store: Literal["faiss", "pgvector"] = "faiss"
    pg_url: str | None = Field(None, repr=False)
    pg_table: str = Field("docqa", pattern=r"^[a-z_][a-z0-9_]{0,40}$")  # table-name prefix
    # The lexical ranking fused with pgvector's, both computed in PostgreSQL: "bm25" is Okapi BM25 in
    # SQL over docqa's tokens (ranks as the FAISS store does); "postgres" is PostgreSQL's ts_rank.
    pg_lexical: Literal["bm25", "postgres"] = "bm25"
    # Dense search in PostgreSQL: "hnsw" uses pgvector's HNSW index (approximate, fast at 100k+ chunks;
    # recall@k against exact search is in bench/README.md); "exact" scans every row (ranks like FAISS's flat index).
    pg_dense: Literal["hnsw", "exact"] = "hnsw"

    # Web server.
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    max_upload_mb: float = Field(20.0, gt=0)
    queue_size: int = Field(16, ge=1)
    mcp_server: bool = False  # expose `ask` as an MCP tool (needs the `mcp` extra; not with a login)

    @field_validator("docs_dir", "index_dir", "prompts_dir", "cache_dir", "settings_file", "ov_export_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Settings:
        """Read defaults < TOML file < DOCQA_* environment < overrides (None values ignored).

        The file is `path`, else $DOCQA_SETTINGS, else ./docqa.toml if it exists.
        """
        values: dict[str, Any] = {}
        file = path or os.environ.get(ENV_PREFIX + "SETTINGS")
        if file is None and Path(DEFAULT_SETTINGS_FILE).is_file():
            file = DEFAULT_SETTINGS_FILE
        if file is not None:
            values.update(read_toml(Path(file)))
            values["settings_file"] = Path(file)
        values.update(env_values(os.environ))
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(
                "invalid settings: " + _summarise(exc),
                "correct or remove the key in the settings file, DOCQA_* variable or option",
            ) from None

    @property
    def login(self) -> tuple[str, str] | None:
        """(username, password) when the servers require a login, None when neither is set.

        Both servers (the web chat and the OpenAI-compatible API) read the login from here.
        """
        if self.username is None and self.password is None:
            return None
        if not self.username or not self.password:
            raise SettingsError(
                "only one of username and password is set", "set both (DOCQA_USERNAME and DOCQA_PASSWORD), or neither"
            )
        return self.username, self.password

    @property
    def is_loopback(self) -> bool:
        """Whether `host` is reachable from this machine only."""
        return self.host in LOOPBACK_HOSTS

    @property
    def open_access_warning(self) -> str | None:
        """What to warn about before serving: a host beyond loopback without a login (None: nothing)."""
        if self.login is None and not self.is_loopback:
            return f"serving on {self.host} without a login; set username and password to require one"
        return None

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("docqa"))


def env_values(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """Map DOCQA_TOP_K=5 onto {"top_k": "5"}; unknown DOCQA_ names are an error.

    >>> env_values({"DOCQA_TOP_K": "5", "DOCQA_DOCS": "papers", "HOME": "/root"})
    {'top_k': '5', 'docs_dir': 'papers'}
    """
    known = set(Settings.model_fields)
    out: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "SETTINGS":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        key = ENV_ALIASES.get(key, key)
        if key not in known:
            raise SettingsError(
                f"unknown environment variable {name}",
                f"unset it; known keys are {', '.join(sorted(known))}",
            )
        out[key] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} not found", "create it or point DOCQA_SETTINGS elsewhere") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML ({exc})", "fix its syntax") from None


def update_toml(path: Path, updates: dict[str, Any]) -> None:
    """Set scalar keys in a flat TOML settings file, keeping the other keys. Written atomically."""
    values = read_toml(path) if path.exists() else {}
    values.update(updates)
    Settings(**{k: v for k, v in values.items()})  # refuse to write something that won't load
    lines = [f"{key} = {_toml_scalar(value)}" for key, value in values.items()]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def apply_runtime_settings(settings: Settings) -> None:
    """Environment the libraries read: no hub calls when offline, no telemetry ever."""
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
