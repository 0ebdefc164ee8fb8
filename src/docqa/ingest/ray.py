"""Embedding through Ray Data (`docqa index --ray [ADDRESS]`; the `ray` extra).

`RayEmbedder` is an Embedder: the one update loop (`ingest/indexer.update_index`, on FAISS or
pgvector) calls `embed(texts)` as usual in place of the local model, and the
texts are embedded by an actor pool on the Ray cluster the address names (a local Ray when None).
Each worker loads the embedding model once; Ray Data streams fixed-size batches through them, so
memory is bounded by the batch size and the number of batches in flight, not by the corpus.

Resuming: every finished batch is written to a checkpoint folder as it arrives, keyed by the
sha256 of (model, text). A run that is killed leaves its finished batches there, and the next run
embeds only the texts not found in it. The checkpoint is cleared once the index is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from docqa.errors import SettingsError
from docqa.ingest.embeddings import Embedder
from docqa.ingest.indexer import IndexReport, Progress
from docqa.settings import Settings

EXTRA_HINT = "pip install 'docqa[ray]' (ray[data])"


def text_key(model: str, text: str) -> str:
    """The checkpoint key of one text under one model.

    >>> text_key("m", "hello")[:12]
    'ceeefc2ffbf7'
    """
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()[:32]


class _EmbedBatch:
    """A Ray Data actor: loads the embedder once, then embeds batches of {"key", "text"} rows."""

    def __init__(self, model: str | None, threads: int, dtype: str = "auto") -> None:
        import torch

        from docqa.ingest.embeddings import SentenceTransformerEmbedder

        torch.set_num_threads(max(1, threads))
        self.embedder = SentenceTransformerEmbedder(model, dtype=dtype)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]])
        return {"key": batch["key"], "vector": list(vectors)}


class RayEmbedder:
    """An Embedder that embeds through Ray Data, with a per-batch checkpoint on disk."""

    def __init__(
        self,
        local: Embedder,
        model: str | None,
        checkpoint_dir: Path,
        address: str | None = None,
        batch_size: int = 256,
        workers: int | None = None,
        dtype: str = "auto",
    ) -> None:
        """`local` is the same embedder loaded here (for name, dim and token counts while chunking)."""
        try:
            import ray
        except ImportError:
            raise SettingsError("--ray needs the ray extra, which is not installed", EXTRA_HINT) from None
        self.local = local
        self.name = local.name
        self.dim = local.dim
        self.max_tokens = local.max_tokens
        self.model = model
        self.dtype = dtype  # the embed_dtype setting; "auto" is decided on each worker's CPU
        self.checkpoint_dir = checkpoint_dir
        self.batch_size = batch_size
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                # A local Ray on loopback; finding a "real" node address would probe the network.
                ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus)
        self.threads_per_worker = max(1, cpus // self.workers)

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def _load_checkpoint(self) -> dict[str, np.ndarray]:
        done: dict[str, np.ndarray] = {}
        if not self.checkpoint_dir.is_dir():
            return done
        for path in sorted(self.checkpoint_dir.glob("*.npz")):
            try:
                with np.load(path) as data:
                    done.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a batch cut off mid-write: embed it again
        return done

    def _save_batch(self, keys: list[str], vectors: np.ndarray) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        tmp = self.checkpoint_dir / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.array(keys), vectors=vectors.astype(np.float32))
        os.replace(tmp, self.checkpoint_dir / f"{name}.npz")  # only whole batches ever count as done

    def embed(self, texts: list[str]) -> np.ndarray:
        import ray.data

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [text_key(self.name, t) for t in texts]
        done = self._load_checkpoint()
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in done}
        if todo:
            ds = ray.data.from_items([{"key": k, "text": t} for k, t in todo.items()])
            ds = ds.map_batches(
                _EmbedBatch,
                fn_constructor_kwargs={"model": self.model, "threads": self.threads_per_worker, "dtype": self.dtype},
                batch_size=self.batch_size,
                concurrency=self.workers,
                num_cpus=self.threads_per_worker,
                batch_format="numpy",
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                batch_keys = [str(k) for k in batch["key"]]
                vectors = np.stack(list(batch["vector"])).astype(np.float32)
                self._save_batch(batch_keys, vectors)
                done.update(zip(batch_keys, vectors, strict=True))
        return np.ascontiguousarray(np.stack([done[k] for k in keys]), dtype=np.float32)

    def clear_checkpoint(self) -> None:
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)


def checkpoint_dir_for(index_dir: Path) -> Path:
    return index_dir / ".ray-checkpoint"


def update_index_with_ray(
    settings: Settings,
    embedder: Embedder,
    address: str | None,
    rebuild: bool = False,
    lock_wait_s: float = 0.0,
    progress: Progress | None = None,
) -> IndexReport:
    """`update_index` with embedding done through Ray; clears the checkpoint once written."""
    from docqa.ingest.indexer import update_index

    ray_embedder = RayEmbedder(
        embedder, settings.embed_model, checkpoint_dir_for(settings.index_dir), address, dtype=settings.embed_dtype
    )
    report = update_index(settings, ray_embedder, rebuild=rebuild, progress=progress, lock_wait_s=lock_wait_s)
    ray_embedder.clear_checkpoint()
    return report
