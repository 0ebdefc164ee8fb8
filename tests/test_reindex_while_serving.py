"""Answers while the index changes (issue 15, point 3).

Questions keep being answered while the docs folder is re-indexed (a file added, one deleted, one
edited): every answer completes, from one index version. A reader opening the index never sees a
version a writer is pruning. A damaged index is rebuilt, and the report says why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from docqa.answering.pipeline import Pipeline, log_index_report
from docqa.errors import IndexStateError
from docqa.ingest.indexer import update_index
from docqa.stores import faiss_store as fs
from docqa.stores import open_retriever
from docqa.types import Answer, Chunk
from fakes import HashEmbedder, passage_text

HARBOR = """The old harbor

The harbor of Kestrel Bay is 14 metres deep at low tide. Ferries leave for the islands every hour.
The lighthouse on the breakwater was built in 1871.
"""
GLACIER = """The Morteratsch glacier

The glacier is 6 kilometres long and retreats about 30 metres a year. A trail follows its old moraine.
"""
QUESTIONS = [
    "When does the tea harvest begin?",
    "How many hectares do the Hani terraces cover?",
    "How deep is the harbor of Kestrel Bay?",
    "How long is the Morteratsch glacier?",
    "When was the lighthouse built?",
]
ASKED = 50


def _errors() -> tuple[list[str], Callable[[Callable[[], None]], Callable[[], None]]]:
    """A list of failures, and a decorator that records a thread's exception there instead of losing it."""
    errors: list[str] = []

    def catching(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException:  # noqa: BLE001 - reported by the test, with its traceback
                errors.append(traceback.format_exc())

        return run

    return errors, catching


def _ids(chunks: list[Chunk]) -> frozenset[str]:
    return frozenset(c.id for c in chunks)  # a chunk id hashes its source, place and text


def test_fifty_questions_while_the_folder_is_reindexed_three_times(make_pipeline, settings, embedder, docs):
    (docs / "harbor.txt").write_text(HARBOR, encoding="utf-8")

    def reply(messages: list[dict]) -> str:  # quotes passage [1], a little slowly, as a model would
        time.sleep(0.03)
        return passage_text(messages, 1).split("\n")[-1].split(". ")[0].rstrip(".") + " [1]."

    pipeline = make_pipeline(reply)
    versions = [_ids(pipeline.retriever.chunks)]  # the chunk ids of every index version served
    steps: list[Callable[[], None]] = [
        lambda: (docs / "glacier.txt").write_text(GLACIER, encoding="utf-8"),  # upload
        lambda: (docs / "harbor.txt").unlink(),  # delete
        lambda: (docs / "yunnan.txt").write_text(  # edit
            (docs / "yunnan.txt").read_text(encoding="utf-8").replace("March", "April"), encoding="utf-8"
        ),
    ]
    started = [threading.Event() for _ in steps]
    answers: list[Answer] = []
    opened: list[frozenset[str]] = []  # what another reader (a second server, `docqa ask`) loaded meanwhile
    reports = []
    lock = threading.Lock()
    next_question = 0
    done = threading.Event()
    errors, catching = _errors()

    @catching
    def asker() -> None:
        nonlocal next_question
        while True:
            with lock:
                i, next_question = next_question, next_question + 1
            if i >= ASKED:
                return
            step = min(i * len(steps) // ASKED, len(steps))  # later questions wait for later re-indexes
            if step and not started[step - 1].wait(30):
                raise AssertionError(f"re-index {step} never started")
            answer = pipeline.ask(QUESTIONS[i % len(QUESTIONS)])
            with lock:
                answers.append(answer)

    @catching
    def reindexer() -> None:
        for k, change in enumerate(steps):
            wait_for = k * ASKED // len(steps) + 4
            deadline = time.monotonic() + 30
            while len(answers) < wait_for:
                assert time.monotonic() < deadline, f"only {len(answers)} answers before re-index {k + 1}"
                time.sleep(0.01)
            started[k].set()
            change()
            reports.append(pipeline.reindex())
            versions.append(_ids(pipeline.retriever.chunks))

    @catching
    def other_reader() -> None:
        while not done.is_set():
            opened.append(_ids(open_retriever(settings, embedder).chunks))

    threads = [threading.Thread(target=asker) for _ in range(4)] + [threading.Thread(target=reindexer)]
    watcher = threading.Thread(target=other_reader)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    watcher.join(30)
    assert not errors, "\n".join(errors)
    assert len(answers) == ASKED and all(a.answer for a in answers)
    assert sum(not a.abstained for a in answers) >= ASKED // 2  # answered, not only refused
    assert [bool(r.added) for r in reports] == [True, False, False]
    assert [r.removed for r in reports] == [[], ["harbor.txt"], []] and reports[2].updated == ["yunnan.txt"]
    assert len(set(versions)) == 4  # each step made a new version
    served = []
    for answer in answers:
        ids = _ids([p.chunk for p in answer.retrieved])
        assert ids, f"no passages for {answer.question!r}"
        homes = [n for n, version in enumerate(versions) if ids <= version]
        assert homes, f"{answer.question!r} was answered from passages of more than one index version"
        served.append(homes)
    assert {homes[0] for homes in served} >= {0}, "no answer from the first version"
    assert len({n for homes in served for n in homes}) >= 2, "no answer from a re-indexed version"
    assert opened and all(ids in versions for ids in opened), "another reader loaded a mix of versions"
    final = pipeline.ask("When does the tea harvest begin?")
    assert any("April" in p.chunk.text for p in final.retrieved)


def test_a_swap_landing_mid_question_does_not_mix_versions_in_one_answer(make_pipeline, docs):
    """A multi-part question searches once for the whole and once per part. A re-index that
    finishes between those searches must not give one answer passages of two index versions."""
    pipeline = make_pipeline("The harvest begins in March [1].")
    old = pipeline.retriever
    (docs / "yunnan.txt").write_text(
        "Tea in Yunnan\n\nPickers wait for the spring rains; the tea harvest now begins in April.\n\n"
        "Rice terraces\n\nThe Hani terraces cover 16,603 hectares. They were listed in 2013.\n",
        encoding="utf-8",
    )
    pipeline.reindex()
    new = pipeline.retriever

    class SwappedMidQuestion:  # the first search of the turn sees the old index; the swap lands then
        index, chunks = old.index, old.chunks

        def retrieve(self, *args: object, **kwargs: object) -> object:
            pipeline.retriever = new
            return old.retrieve(*args, **kwargs)

    pipeline.retriever = SwappedMidQuestion()
    answer = pipeline.ask("When does the tea harvest begin, and how many hectares do the terraces cover?")
    ids = _ids([p.chunk for p in answer.retrieved])
    assert ids <= _ids(old.chunks) or ids <= _ids(new.chunks)


def _write(index_dir: Path, tag: int, n: int = 4) -> Path:
    """A small version whose chunks all carry `tag`, so a load mixing two versions shows."""
    chunks = [Chunk(f"w{tag}-{i}", "a.txt", f"write {tag} chunk {i}", 0, 1) for i in range(n)]
    vectors = np.random.default_rng(tag).random((n, 8), dtype=np.float32)
    return fs.write_index(index_dir, chunks, vectors, {"dim": 8, "chunk_count": n})


def _tags(loaded: fs.StoredIndex) -> set[str]:
    return {c.id.split("-")[0] for c in loaded.chunks}


def test_prune_never_pulls_a_version_from_under_a_reader(tmp_path):
    """A writer writing and pruning versions back to back, three readers opening the index all the
    while: no load fails or mixes versions. (Before readers locked versions, this failed within
    a second or two: "checksum mismatch", or FileNotFoundError, on a version just pruned.)"""
    index_dir = tmp_path / "index"
    _write(index_dir, 0)
    writes, stop = 60, threading.Event()
    loads: list[int] = []
    errors, catching = _errors()

    @catching
    def writer() -> None:
        try:
            for tag in range(1, writes + 1):
                with fs.writer_lock(index_dir):
                    _write(index_dir, tag)
        finally:
            stop.set()

    @catching
    def reader() -> None:
        while not stop.is_set():
            loaded = fs.load_index(index_dir)
            assert len(_tags(loaded)) == 1 and loaded.manifest["chunk_count"] == len(loaded.chunks)
            assert fs.read_manifest(index_dir) is not None
            loads.append(1)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, f"{len(errors)} failed loads of {len(loads) + len(errors)}; first:\n{errors[0]}"
    assert loads
    with fs.FaissStore(index_dir).writer_lock():  # prunes what readers held when the last write pruned
        left = sorted(p.name for p in index_dir.iterdir() if p.name.startswith(("v-", ".trash-")))
    assert left == [fs.current_version(index_dir).name]


def test_a_version_pruned_between_resolving_current_and_reading_it_is_not_corrupt(tmp_path, monkeypatch):
    index_dir = tmp_path / "index"
    first = _write(index_dir, 1)
    real = fs.current_version
    raced: list[Path] = []

    def racing(where: Path) -> Path | None:
        version = real(where)
        if not raced:  # the reader has resolved CURRENT; a writer replaces and prunes that version now
            raced.append(version)
            with fs.writer_lock(where):
                _write(where, 2)
        return version

    monkeypatch.setattr(fs, "current_version", racing)
    loaded = fs.load_index(index_dir)
    assert raced == [first] and not first.exists()
    assert _tags(loaded) == {"w2"} and loaded.path == real(index_dir)


def test_a_version_being_read_is_pruned_by_the_next_writer_not_this_one(tmp_path):
    index_dir = tmp_path / "index"
    first = _write(index_dir, 1)
    fd = os.open(first / fs.READERS, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader is loading it
        with fs.writer_lock(index_dir):
            _write(index_dir, 2)
        assert (first / "chunks.jsonl").is_file()  # left whole for the reader
    finally:
        os.close(fd)
    with fs.FaissStore(index_dir).writer_lock():  # the next writer cleans it up before it starts
        pass
    assert not first.exists() and _tags(fs.load_index(index_dir)) == {"w2"}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# damage done to the live version -> what the stated reason names
DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "corrupt faiss.index": (
        lambda v: (v / "faiss.index").write_bytes(b"not a faiss index" * 8),
        "faiss.index is corrupt",
    ),
    "truncated chunks.jsonl": (lambda v: _truncate(v / "chunks.jsonl"), "chunks.jsonl is corrupt (checksum mismatch"),
    "CURRENT holds garbage": (lambda v: (v.parent / "CURRENT").write_bytes(b"\x00\xff\xfe"), "CURRENT is corrupt"),
    "CURRENT is empty": (lambda v: (v.parent / "CURRENT").write_text(""), "CURRENT is corrupt (it is empty)"),
    "CURRENT deleted": (lambda v: (v.parent / "CURRENT").unlink(), "CURRENT is missing"),
    "version folder deleted": (lambda v: shutil.rmtree(v), "named by CURRENT is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_is_rebuilt_and_the_reason_is_stated(make_pipeline, settings, damage, capsys):
    pipeline = make_pipeline("The harvest begins in March [1].")
    harm, reason = DAMAGE[damage]
    harm(fs.current_version(settings.index_dir) or next(settings.index_dir.glob("v-*")))
    capsys.readouterr()

    report = pipeline.reindex()  # the web app's re-index, and `docqa index`, go through update_index
    assert report.rebuilt_because and reason in report.rebuilt_because and report.wrote
    assert report.added == ["yunnan.txt"]
    assert report.summary().startswith(f"rebuilt because {report.rebuilt_because}; ")
    log_index_report(report)
    assert f"rebuilt because {report.rebuilt_because}" in capsys.readouterr().err
    assert not pipeline.ask("When does the harvest begin?").abstained


def test_a_server_started_on_a_damaged_index_repairs_it_and_says_why(settings, embedder, capsys):
    update_index(settings, embedder)
    _truncate(fs.current_version(settings.index_dir) / "faiss.index")
    with pytest.raises(IndexStateError, match="faiss.index is corrupt"):
        fs.load_index(settings.index_dir)
    capsys.readouterr()
    pipeline = Pipeline.from_settings(settings, embedder=HashEmbedder(), generator=None)
    err = capsys.readouterr().err
    assert "rebuilt because the existing index could not be read" in err and "faiss.index is corrupt" in err
    assert pipeline.last_index_report and pipeline.last_index_report.rebuilt_because
    assert fs.load_index(settings.index_dir).chunks
