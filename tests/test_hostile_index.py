"""Index faults: corrupt files, a model that doesn't match the manifest, two writers, and kill -9.

Unit tests use the hash embedder; the e2e tests run the real `docqa index` / `docqa ask` commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from docqa.answering.pipeline import Pipeline
from docqa.errors import IndexStateError
from docqa.ingest.indexer import update_index
from docqa.stores import faiss_store as store
from fakes import HashEmbedder, ScriptedGenerator

NETGUARD = Path(__file__).parent / "netguard"
TEA = "Tea in Yunnan\n\nYunnan grows most of China's pu-erh tea. Farmers picked 120 tonnes of leaves in 2020.\n"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(version: Path) -> None:
        manifest = json.loads((version / "manifest.json").read_text())
        (version / "manifest.json").write_text(json.dumps(change(manifest)))

    return edit


# name -> (damage done to the live version folder, what the load error says)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated faiss.index": (lambda v: _truncate(v / "faiss.index"), "checksum mismatch"),
    "truncated chunks.jsonl": (lambda v: _truncate(v / "chunks.jsonl"), "checksum mismatch"),
    "missing chunks.jsonl": (lambda v: (v / "chunks.jsonl").unlink(), "missing or corrupt"),
    "truncated manifest": (lambda v: _truncate(v / "manifest.json"), "manifest in"),
    "binary manifest": (lambda v: (v / "manifest.json").write_bytes(b"\xff\xfe\x00garbage"), "manifest in"),
    "manifest is a list": (_edit_manifest(lambda m: [m]), "manifest in"),
    "manifest without checksums": (_edit_manifest(lambda m: {k: v for k, v in m.items() if k != "checksums"}), "lacks"),
    "manifest with a wrong dim": (_edit_manifest(lambda m: {**m, "dim": 32}), "of dimension 64 for"),
    "CURRENT holds garbage": (lambda v: (v.parent / "CURRENT").write_bytes(b"\x00\xff\xfe\x01"), "pointer"),
    "CURRENT climbs out": (lambda v: (v.parent / "CURRENT").write_text("../../etc\n"), "pointer"),
    "version folder deleted": (lambda v: __import__("shutil").rmtree(v), "named by CURRENT is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_is_a_clear_error_and_the_next_update_rebuilds(settings, embedder, damage):
    update_index(settings, embedder)
    harm, expected = DAMAGE[damage]
    harm(store.current_version(settings.index_dir))
    with pytest.raises(IndexStateError) as info:
        store.load_index(settings.index_dir)
    assert expected in info.value.cause and info.value.fix == "run `docqa index --rebuild`"
    report = update_index(settings, embedder)  # a damaged index is never updated in place, but rebuilt
    assert report.rebuilt_because and report.wrote and report.added == ["yunnan.txt"]
    assert {c.source for c in store.load_index(settings.index_dir).chunks} == {"yunnan.txt"}


def test_changed_embedding_model_or_dimension_rebuilds_and_says_why(settings, embedder):
    update_index(settings, embedder)

    class Renamed(HashEmbedder):
        name = "another-model"

    report = update_index(settings, Renamed())
    assert report.rebuilt_because == "the embedding model changed ('hash-bow-64' -> 'another-model')"

    class Narrow(Renamed):
        dim = 32

        def embed(self, texts: list[str]) -> np.ndarray:
            return super().embed(texts)[:, :32]

    report = update_index(settings, Narrow())
    assert report.rebuilt_because == "the embedding dimension changed (64 -> 32)"
    assert store.load_index(settings.index_dir).dim == 32


def test_loading_an_index_built_by_another_embedder_is_a_clear_error(settings, embedder):
    update_index(settings, embedder)

    class Wider(HashEmbedder):
        name, dim = "wider", 96

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.pad(super().embed(texts), ((0, 0), (0, 32)))

    with pytest.raises(IndexStateError, match="docqa index --rebuild"):
        Pipeline.from_settings(
            settings.model_copy(update={"auto_index": False}), embedder=Wider(), generator=ScriptedGenerator("x")
        )


def test_leftovers_of_a_killed_writer_are_cleaned_by_the_next_run(settings, embedder):
    update_index(settings, embedder)
    (settings.index_dir / ".tmp-v-20250101000000-abcdef").mkdir()
    (settings.index_dir / ".tmp-v-20250101000000-abcdef" / "faiss.index").write_bytes(b"half")
    (settings.index_dir / ".CURRENT-123456").write_text("v-x")
    report = update_index(settings, embedder)
    assert not report.changed  # nothing to re-embed, and still the garbage goes
    assert not [p.name for p in settings.index_dir.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]


# --- the real CLI -------------------------------------------------------------------------------

# Loaded at start-up by the `docqa index` under test (its folder goes first on PYTHONPATH): keeps the
# network guard, and makes the writer stop once its new version's files are written but before the
# commit, saying so on stderr, until the file named by DOCQA_TEST_GO appears.
HOOK = """
import os, sys, time
exec(open({netguard!r}).read())
from docqa.stores import faiss_store as store
_real_fsync = store._fsync
def _fsync(path):
    if ".tmp-" in str(path) and not getattr(store, "_paused", False):
        store._paused = True
        print("HOOK: writing", flush=True, file=sys.stderr)
        deadline = time.monotonic() + 120
        while not os.path.exists(os.environ["HOOK_GO"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    return _real_fsync(path)
store._fsync = _fsync
"""


@pytest.fixture
def cli(tmp_path: Path):
    """Run `docqa` on a small docs folder with a fresh index; `hooked=True` pauses the write."""
    docs = tmp_path / "cli-docs"
    docs.mkdir()
    (docs / "tea.txt").write_text(TEA, encoding="utf-8")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK.format(netguard=str(NETGUARD / "sitecustomize.py")))
    index = tmp_path / "index"
    go = tmp_path / "go"

    def env(hooked: bool, **extra: str) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
        out.update(PYTHONPATH=str(hook if hooked else NETGUARD), HF_HUB_OFFLINE="1", HOOK_GO=str(go), **extra)
        out.update(DOCQA_DOCS=str(docs), DOCQA_INDEX=str(index), DOCQA_PROFILE="small")
        return out

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "docqa.cli", *args],
            capture_output=True,
            text=True,
            env=env(False, **extra),
            timeout=600,
        )
        assert "NETGUARD" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        return proc

    def start(*args: str, hooked: bool = False) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "docqa.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(hooked),
        )

    def wait_for_pause(proc: subprocess.Popen) -> None:
        for line in iter(proc.stderr.readline, ""):  # the progress bar ends lines with \r; readline copes
            if "HOOK: writing" in line:
                return
        raise AssertionError(f"the hooked writer ended without pausing (exit {proc.wait()})")

    from types import SimpleNamespace

    return SimpleNamespace(docs=docs, index=index, go=go, run=run, start=start, wait_for_pause=wait_for_pause)


def error_lines(stderr: str) -> list[str]:
    # The progress bar is not closed before an error is printed, so the message can share its line.
    return [line[line.index("error: ") :] for line in stderr.splitlines() if "error: " in line]


def hash_index(settings, cli) -> None:
    """An index of the CLI's docs built in-process with the hash embedder (no model to load)."""
    update_index(settings.model_copy(update={"docs_dir": cli.docs, "index_dir": cli.index}), HashEmbedder())


@pytest.mark.e2e
def test_cli_corrupt_index_is_one_line_and_rebuild_recovers(cli, settings):
    hash_index(settings, cli)
    _truncate(store.current_version(cli.index) / "faiss.index")
    proc = cli.run("ask", "When does the harvest begin?", DOCQA_AUTO_INDEX="false")
    assert proc.returncode == 2
    [error] = error_lines(proc.stderr)
    assert "faiss.index is corrupt (checksum mismatch" in error
    assert error.endswith("Fix: run `docqa index --rebuild`")

    proc = cli.run("index", "--rebuild")
    assert proc.returncode == 0, proc.stderr
    assert "rebuilt: --rebuild was asked for" in proc.stderr and "index written:" in proc.stdout
    assert store.load_index(cli.index).manifest["embed_model"] == "all-MiniLM-L6-v2"


def holds_lock(pid: int, index: Path) -> bool:
    """Whether process `pid` has index/.lock open (a waiting writer opens it, then polls flock)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(index / ".lock") for fd in fd_dir.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.e2e
def test_cli_two_writers_the_second_is_refused_or_waits(cli):
    writer = cli.start("index", hooked=True)
    waiter = None
    try:
        cli.wait_for_pause(writer)
        proc = cli.run("index")
        assert proc.returncode == 2
        assert error_lines(proc.stderr) == [
            f"error: the index in {cli.index} is being written by pid {writer.pid}."
            " Fix: wait for it to finish, or pass --wait SECONDS"
        ]
        waiter = cli.start("index", "--wait", "120")
        deadline = time.monotonic() + 120
        while not holds_lock(waiter.pid, cli.index):
            assert waiter.poll() is None and time.monotonic() < deadline, waiter.communicate()
            time.sleep(0.2)
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting for the first writer
        cli.go.touch()
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and "index written:" in out, err
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0 and "index up to date:" in out, err  # it ran after, on the new index
    finally:
        for proc in (writer, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()


@pytest.mark.e2e
def test_cli_kill_9_while_writing_keeps_the_previous_index(cli, settings):
    """The previous index was built by another embedding model: the next run says so and rebuilds."""
    hash_index(settings, cli)
    before = store.current_version(cli.index)
    chunks_before = store.load_index(cli.index).chunks
    writer = cli.start("index", hooked=True)
    try:
        cli.wait_for_pause(writer)
        assert any(p.name.startswith(".tmp-") for p in cli.index.iterdir())  # caught mid-write
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(30) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
    assert store.current_version(cli.index) == before
    assert store.load_index(cli.index).chunks == chunks_before

    proc = cli.run("index")  # the lock died with the writer; this run completes and clears the debris
    assert proc.returncode == 0, proc.stderr
    assert "rebuilt: the embedding model changed ('hash-bow-64' -> 'all-MiniLM-L6-v2')" in proc.stderr
    assert "index written:" in proc.stdout
    assert not [p.name for p in cli.index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]
    index = store.load_index(cli.index)
    assert index.dim == 384 and [c.text for c in index.chunks] == [c.text for c in chunks_before]
