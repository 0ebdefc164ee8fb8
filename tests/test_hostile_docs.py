"""A documents folder full of bad files: each is reported by name with its reason, the rest is indexed.

The unit tests run the indexer with the hash embedder; the e2e ones run `docqa index` itself, whose
stderr carries one `not indexed: FILE: REASON` line per refused file and which exits 3 when some
files failed (2 when nothing at all could be indexed).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from docqa.errors import DocsError
from docqa.ingest import indexer
from docqa.ingest.indexer import update_index
from docqa.stores import faiss_store as store
from support import encrypted_pdf, guarded_env, make_pdf, run_cli

GOOD = "Tea in Yunnan\n\nYunnan grows most of China's pu-erh tea. Farmers picked 120 tonnes of leaves in 2020.\n"

# file name -> what its refusal reason must say
REFUSED = {
    "empty.txt": "no text found",
    "blank.md": "no text found",
    "image.txt": "looks like a binary file",
    "corrupt.pdf": "corrupt PDF",
    "locked.pdf": "encrypted with a password",
    "renamed.docx": "not a valid .docx",
    "huge.txt": "over the 50 MB limit (max_file_mb)",
    "tool.exe": "unsupported file type '.exe'",
    "README": "unsupported file type '(none)'",
    "link-out.txt": "outside the documents folder: refused",
    "linked-folder/": "outside the documents folder: refused",
    "dangling.txt": "broken symlink",
}
# file name -> what its warning must say (the file is still indexed)
WARNED = {
    "latin1.txt": "not valid UTF-8; decoded as cp1252",
    "notepad.txt": "not UTF-8; decoded as utf-16-le",
    "good_copy.txt": "same content as",
}
ODD_NAMES = ["-rf.txt", "--help.md", "tea notes é 茶.txt", "-m.pdf"]


PIPE = ("pipe.txt", "not a regular file (a pipe, socket or device)")


def hostile_folder(root: Path) -> Path:
    """A docs folder holding one of every kind of bad file, next to good files with odd names.

    (A named pipe is added by the tests that can survive a regression that reads it: a read waits forever.)
    """
    docs = root / "hostile docs"
    docs.mkdir()
    outside = root / "secret"
    outside.mkdir()
    (outside / "passwords.txt").write_text("root password: hunter2\n")

    (docs / "good.txt").write_text(GOOD, encoding="utf-8")
    (docs / "good_copy.txt").write_text(GOOD, encoding="utf-8")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text("   \n\n\t\n")
    (docs / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (docs / "latin1.txt").write_bytes("Caf\xe9 prices in Kunming rose by a third.".encode("latin-1"))
    (docs / "notepad.txt").write_bytes("Notepad says the Hani terraces are old.".encode("utf-16"))
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    (docs / "locked.pdf").write_bytes(encrypted_pdf("The vault code is 4711.", "s3cret"))
    (docs / "renamed.docx").write_text("a text file with a Word extension")
    with (docs / "huge.txt").open("wb") as fh:  # sparse: 60 MB on paper, nothing on disk
        fh.truncate(60_000_000)
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00")
    (docs / "README").write_text("no extension")
    (docs / "link-out.txt").symlink_to(outside / "passwords.txt")
    (docs / "linked-folder").symlink_to(outside, target_is_directory=True)
    (docs / "dangling.txt").symlink_to(docs / "gone.txt")
    (docs / ".hidden.txt").write_text("hidden files are skipped without a word")
    (docs / "-rf.txt").write_text("The file named -rf says the harvest starts in March.")
    (docs / "--help.md").write_text("# Help\n\nThe file named --help says the harvest ends in October.")
    (docs / "tea notes é 茶.txt").write_text("Pu'er city is in southern Yunnan.", encoding="utf-8")
    (docs / "-m.pdf").write_bytes(make_pdf(["The PDF named -m says the terraces are 1300 years old."]))
    return docs


def test_every_bad_file_is_reported_and_the_rest_indexed(settings, embedder, tmp_path):
    docs = hostile_folder(tmp_path)
    report = update_index(settings.model_copy(update={"docs_dir": docs}), embedder)

    failed = {p.source: p.reason for p in report.failed}
    assert set(failed) == set(REFUSED), failed
    for name, reason in REFUSED.items():
        assert reason in failed[name], (name, failed[name])
    assert "/secret/" in failed["link-out.txt"] and "hunter2" not in str(failed)
    warned = {p.source: p.reason for p in report.warnings}
    for name, reason in WARNED.items():
        assert reason in warned[name], (name, warned)

    indexed = {"good.txt", "good_copy.txt", "latin1.txt", "notepad.txt", *ODD_NAMES}
    assert set(report.added) == indexed
    chunks = store.load_index(settings.index_dir).chunks
    assert {c.source for c in chunks} == indexed
    assert not any("hunter2" in c.text or "hidden files" in c.text for c in chunks)
    assert any("1300 years" in c.text for c in chunks if c.source == "-m.pdf")


def test_a_named_pipe_is_refused_not_read(settings, embedder, docs):
    import threading

    os.mkfifo(docs / PIPE[0])
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(update_index(settings, embedder)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        with open(docs / PIPE[0], "wb"):  # give the blocked reader an end of file, so it can finish
            pass
        worker.join(10)
        pytest.fail("indexing opened the named pipe and waited on it")
    [report] = outcome
    assert [(p.source, p.reason) for p in report.failed] == [(PIPE[0], f"{PIPE[1]}: not indexed")]
    assert report.added == ["yunnan.txt"]


def test_a_reader_bug_on_one_file_does_not_stop_the_folder(settings, embedder, docs, monkeypatch):
    (docs / "trap.md").write_text("# Trap\n\nThis file makes the reader crash.")
    real = indexer.read_document

    def read(path, *args):
        if path.name == "trap.md":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, *args)

    monkeypatch.setattr(indexer, "read_document", read)
    report = update_index(settings, embedder)
    assert [(p.source, p.reason) for p in report.failed] == [
        ("trap.md", "the reader failed (RecursionError: maximum recursion depth exceeded)")
    ]
    assert report.added == ["yunnan.txt"]


def test_folder_with_nothing_indexable_says_why(settings, embedder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "tool.exe").write_bytes(b"MZ")
    with pytest.raises(DocsError) as info:
        update_index(settings.model_copy(update={"docs_dir": bad}), embedder)
    assert "no readable documents" in info.value.cause
    assert "empty.txt: no text found" in info.value.cause and "tool.exe: unsupported" in info.value.cause
    hidden_only = tmp_path / "hidden-only"
    hidden_only.mkdir()
    (hidden_only / ".notes.txt").write_text("skipped")
    with pytest.raises(DocsError, match="is empty"):
        update_index(settings.model_copy(update={"docs_dir": hidden_only}), embedder)
    assert store.current_version(settings.index_dir) is None  # no empty index was written


# --- the real CLI -------------------------------------------------------------------------------


def docqa(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # A short timeout: a run that opens the named pipe would wait forever.
    return run_cli(*args, env=guarded_env(), cwd=cwd, timeout=240)


@pytest.mark.e2e
def test_cli_index_reports_each_bad_file_and_exits_3(tmp_path):
    docs = hostile_folder(tmp_path)
    os.mkfifo(docs / PIPE[0])
    refused = {**REFUSED, PIPE[0]: PIPE[1]}
    # Run from inside the folder with a relative --docs, so option-like names are passed around as-is.
    proc = docqa("index", "--docs", ".", "--index", str(tmp_path / "index"), cwd=docs)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    for name, reason in refused.items():
        assert any(line.startswith(f"not indexed: {name}: ") and reason in line for line in lines), (name, lines)
    for name, reason in WARNED.items():
        assert any(line.startswith(f"warning: {name}: ") and reason in line for line in lines), (name, lines)
    assert f"FAILED {len(refused)}" in proc.stdout and "index written:" in proc.stdout
    sources = {c.source for c in store.load_index(tmp_path / "index").chunks}
    assert set(ODD_NAMES) <= sources

    # Nothing readable at all: one error line, exit 2, and the reasons named.
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "empty.txt").write_bytes(b"")
    (only_bad / "locked.pdf").write_bytes(encrypted_pdf("secret", "pw"))
    proc = docqa("index", "--docs", str(only_bad), "--index", str(tmp_path / "index2"))
    assert proc.returncode == 2
    # The progress bar is not closed before the error is printed, so the message can share its line.
    errors = [line[line.index("error: ") :] for line in proc.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and "no readable documents" in errors[0] and "locked.pdf: " in errors[0], proc.stderr
