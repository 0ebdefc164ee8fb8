"""Helpers shared by the test modules (import them from here: test modules never import each other).

- `free_port()`: a free loopback TCP port.
- `guarded_env(**extra)` / `docqa_env(index_dir, ...)`: an environment whose Python refuses any
  connection outside loopback (tests/netguard/sitecustomize.py on PYTHONPATH, reporting "NETGUARD"
  on stderr).
- `run_cli(*args, env=..., cwd=..., input=..., timeout=...)`: `python -m docqa.cli ARGS` under the
  guard, asserting nothing tried the network (and, unless allowed, that no traceback was printed).
- `running_cli(*args, env=..., log=..., ready=...)`: the same as a long-running server, stopped on exit.
- `serving(pipeline, settings, **overrides)`: the web app on a free port, yielding its URL
  (`serving_app` yields url, settings and the Gradio app); `small_pipeline(root)`: the real small
  models over a copy of the bundled docs.
- `wait_until(predicate, ...)`: poll a condition instead of sleeping a fixed time.
- `passage(n, text)`, `fake_answer(text, passages, cited)`: hand-made answers for the eval metrics.
- `make_pdf(pages)`, `encrypted_pdf(text, user_password)`: small PDFs built in memory.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"  # the bundled essay
NETGUARD = Path(__file__).parent / "netguard"
URBANIZATION_Q = "What was China's urbanization rate in 2019?"  # answered by "60.60%" in the essay

# Variables that would do docqa's own offline work for it; dropped when a test must prove docqa sets them.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GRADIO_", "HF_HUB_DISABLE_TELEMETRY")

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = "condition"
) -> T:
    """Call `predicate` until it returns something truthy, and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {message} (last value {value!r})")
        time.sleep(interval)


# --- the network guard and the CLI --------------------------------------------------------------


def guarded_env(*, hub_offline: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment without DOCQA_* variables (but the test's DOCQA_DATA_DIR, so saved
    conversations stay out of the user's data dir), with the network guard on PYTHONPATH.

    hub_offline=True sets HF_HUB_OFFLINE=1 (the model files are already cached); False instead drops
    every offline/telemetry variable, for tests that prove docqa sets them itself. `extra` goes last,
    so it may replace anything (PYTHONPATH included).
    """
    drop = ("DOCQA_",) if hub_offline else ("DOCQA_", *OFFLINE_VARS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    if os.environ.get("DOCQA_DATA_DIR"):
        env["DOCQA_DATA_DIR"] = os.environ["DOCQA_DATA_DIR"]
    env["PYTHONPATH"] = str(NETGUARD)
    if hub_offline:
        env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def docqa_env(index_dir: Path, docs_dir: Path = DOCS, profile: str = "small", **extra: str) -> dict[str, str]:
    """`guarded_env` pointing docqa at an index folder and a docs folder (the bundled essay by default)."""
    return guarded_env(DOCQA_INDEX=str(index_dir), DOCQA_DOCS=str(docs_dir), DOCQA_PROFILE=profile, **extra)


def check_stderr(stderr: str, allow_traceback: bool = False) -> None:
    assert "NETGUARD" not in stderr, stderr
    if not allow_traceback:
        assert "Traceback" not in stderr, stderr


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,  # noqa: A002 - subprocess.run's name
    timeout: float = 600,
    allow_traceback: bool = False,
) -> subprocess.CompletedProcess:
    """`python -m docqa.cli ARGS` under the network guard (env defaults to `guarded_env()`).

    Asserts that nothing tried to reach the network and, unless allow_traceback, that no traceback
    was printed; the caller checks the exit status.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "docqa.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=guarded_env() if env is None else env,
        cwd=cwd,
        timeout=timeout,
    )
    check_stderr(proc.stderr, allow_traceback)
    return proc


def docqa(
    args: list[str], index_dir: Path, stdin: str | None = None, profile: str = "small"
) -> subprocess.CompletedProcess:
    """`docqa ARGS` over the bundled essay and `index_dir`, under the network guard."""
    return run_cli(*args, env=docqa_env(index_dir, profile=profile), input=stdin, cwd=ROOT, timeout=900)


@contextmanager
def running_cli(
    *args: str,
    env: dict[str, str],
    log: Path,
    ready: Callable[[], object],
    cwd: Path | str | None = None,
    timeout: float = 600,
) -> Iterator[subprocess.Popen]:
    """Start `python -m docqa.cli ARGS` (a server) with stdout and stderr in `log`, wait until `ready()`
    returns something truthy (`ready` should return False, not raise, while the server is still starting),
    yield the process, then stop it with SIGINT (kill after 60 s).

    The log is not checked here: read it after the block (e.g. with `check_stderr`).
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "docqa.cli", *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def started() -> object:
            assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log.read_text()}"
            return ready()

        wait_until(started, timeout=timeout, interval=0.5, message=f"`docqa {' '.join(args)}` to be ready")
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the web app --------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    settings: Any  # docqa.settings.Settings, with the port it runs on
    demo: Any  # the gradio.Blocks


@contextmanager
def serving_app(pipeline, settings, **overrides: Any) -> Iterator[Served]:
    """Build the web app over `pipeline`, launch it on a free port (unless `port` is given) without
    blocking, yield where it runs, and close it on exit. `overrides` update `settings`."""
    from docqa.serve.web import build_app, launch

    s = settings.model_copy(update={"port": free_port(), **overrides})
    demo = build_app(pipeline)
    try:
        url = launch(demo, s, block=False, quiet=True)
        yield Served(url=url, settings=s, demo=demo)
    finally:
        demo.close()


@contextmanager
def serving(pipeline, settings, **overrides: Any) -> Iterator[str]:
    """`serving_app`, yielding just the URL."""
    with serving_app(pipeline, settings, **overrides) as served:
        yield served.url


def small_pipeline(root: Path, **settings: Any):
    """A pipeline with the real small-profile models over a copy of the bundled docs in root/docs
    (index in root/index); `settings` override the rest."""
    from docqa.answering.pipeline import Pipeline
    from docqa.settings import Settings

    shutil.copytree(DOCS, root / "docs")
    s = Settings(**{"profile": "small", "docs_dir": root / "docs", "index_dir": root / "index", **settings})
    return Pipeline.from_settings(s)


# --- hand-made answers (for the eval metrics) ---------------------------------------------------


def passage(n: int, text: str, source: str = "a.txt", page: int | None = None):
    """Retrieved passage number n, score 0.5, holding `text` from `source`."""
    from docqa.types import Chunk, Passage

    return Passage(n, Chunk(f"c{n}", source, text, 0, len(text), page=page), 0.5)


def fake_answer(text: str, passages: list, cited: list[int], abstained: bool = False, reason: str | None = None):
    """An Answer to "q" with `passages` retrieved and the numbers in `cited` cited, from a model "fake"
    that took 1 s to the first token and 3 s in all, writing 21 tokens."""
    from docqa.types import Answer, Citation

    by_n = {p.n: p for p in passages}
    return Answer(
        question="q",
        answer=text,
        abstained=abstained,
        citations=[Citation(by_n[n]) for n in cited],
        retrieved=passages,
        timings={"first_token_ms": 1000.0, "total_ms": 3000.0},
        model="fake",
        abstain_reason=reason,
        usage={"answer_tokens": 21},
    )


# --- documents ----------------------------------------------------------------------------------


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        content = len(objects)
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    return pdf_file(objects)


def pdf_file(objects: list[str]) -> bytes:
    """A PDF file of `objects` (object 1 the catalog), numbered in order, with its xref table."""
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@contextmanager
def headless_chromium(window: str = "1400,1000") -> Iterator[Any]:
    """Debian's chromium driven through its own chromedriver (selenium never downloads one),
    headless, with background networking off; the driver logs every request the page makes."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--window-size={window}",
    ):
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="docqa-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def encrypted_pdf(text: str, user_password: str, owner_password: str | None = None) -> bytes:
    """A one-page PDF encrypted with AES-256 (an empty user password: opens without one)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password, owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
