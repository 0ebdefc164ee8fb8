"""The web server against a hostile client, over real HTTP, with deterministic fakes.

Every route answers 401 without the login (but for a short list of public ones, each with its
reason); file routes refuse paths outside Gradio's upload cache; uploads can't climb out of the
documents folder or smuggle in a server file; the server binds to loopback by default; and two
browser-less chat sessions driven through Gradio's own protocol never see each other's history.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from docqa.serve import web
from docqa.settings import Settings
from fakes import by_prompt
from support import serving_app

REPLY = "The harvest begins in March [1]."
SECRET = "hunter2-TOPSECRET"

# Routes that answer without the login, and why that is harmless. A new Gradio route that is not
# behind the login fails test_every_route_needs_the_login until it is reviewed and listed here.
PUBLIC = {
    "/": "the login page itself",
    "/login": "takes the username and password",
    "/login/": "takes the username and password",
    "/openapi.json": "FastAPI's list of Gradio's route names; no data (Gradio's own API info needs the login)",
    "/logout": "clears the caller's own cookie",
    "/favicon.ico": "static icon",
    "/robots.txt": "static",
    "/manifest.json": "app title and icon for installing the page",
    "/theme.css": "static theme",
    "/gradio_api/theme.css": "static theme",
    "/static/{path}": "Gradio's bundled static files",
    "/assets/{path}": "Gradio's bundled frontend",
    "/svelte/{path}": "Gradio's bundled frontend",
    "/pwa_icon": "app icon",
    "/pwa_icon/{size}": "app icon",
    "/gradio_api/user": "the caller's own user name (None without a login)",
    "/gradio_api/user/": "the caller's own user name",
    "/gradio_api/token": "the caller's own cookie token",
    "/gradio_api/token/": "the caller's own cookie token",
    "/gradio_api/app_id": "a random id of this server process",
    "/gradio_api/app_id/": "a random id of this server process",
    "/gradio_api/startup-events": "runs the app's start-up hooks once (docqa has none)",
    "/gradio_api/reset": "a no-op kept for old clients",
    "/gradio_api/reset/": "a no-op kept for old clients",
    "/gradio_api/cancel": "cancels an event only given its random session hash and event id",
    "/gradio_api/heartbeat/{session_hash}": "keeps a session alive; sends no data",
    "/gradio_api/stream/{event_id}": "feeds a streaming input, only given its random event id",
    "/gradio_api/stream/{event_id}/close": "closes a stream, only given its random event id",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8": "media streams (docqa has none)",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}": "media streams (docqa has none)",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file": "media streams (docqa has none)",
    "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}": "custom component code (none)",
    "/gradio_api/vibe-edit": "answers 403: the vibe editor is off",
    "/gradio_api/vibe-edit/": "answers 403: the vibe editor is off",
    "/gradio_api/undo-vibe-edit": "answers 403: the vibe editor is off",
    "/gradio_api/undo-vibe-edit/": "answers 403: the vibe editor is off",
    "/gradio_api/vibe-code": "answers 403: the vibe editor is off",
    "/gradio_api/vibe-code/": "answers 403: the vibe editor is off",
    "/gradio_api/vibe-starter-queries": "answers 403: the vibe editor is off",
    "/gradio_api/vibe-starter-queries/": "answers 403: the vibe editor is off",
    "/monitoring/{key}": "answers 403: monitoring is off (enable_monitoring=False)",
}
# Routes not in the FastAPI schema that must be checked too.
EXTRA_ROUTES = [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/gradio_api/mcp/schema")]
# Streaming routes that hold the connection open: only the status line is read.
STREAMING = {"/gradio_api/heartbeat/{session_hash}"}


@pytest.fixture
def serve(make_pipeline, settings: Settings, tmp_path: Path):
    """Start the app on a free port (tests/support.py's serving_app) over the fake pipeline.

    Yields a function returning (url, settings, demo, pipeline, secret): `secret` is a server file outside docs/.
    """
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(SECRET)
    with contextlib.ExitStack() as stack:

        def start(reply: Any = REPLY, **overrides: Any) -> SimpleNamespace:
            pipeline = make_pipeline(reply, **overrides)
            app = stack.enter_context(serving_app(pipeline, settings, **overrides))
            return SimpleNamespace(url=app.url, settings=app.settings, demo=app.demo, pipeline=pipeline, secret=secret)

        yield start


def routes(demo) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route the app serves, from FastAPI's own schema, plus EXTRA_ROUTES."""
    found = [(m.upper(), path) for path, ops in demo.app.openapi()["paths"].items() for m in ops]
    return sorted(set(found + EXTRA_ROUTES))


def concrete(path: str) -> str:
    """A route pattern with its parameters filled in: /gradio_api/file={x} -> /gradio_api/file=x."""
    return re.sub(r"\{[^}]+\}", "x", path)


# --- login ----------------------------------------------------------------------------------------


def test_every_route_needs_the_login(serve):
    server = serve(username="reader", password="s3cret")
    found = routes(server.demo)
    assert len(found) > 40  # the schema really lists Gradio's routes
    open_routes = []
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=10) as http:
        for method, path in found:
            if path in PUBLIC:
                continue
            if path in STREAMING:
                with http.stream(method, concrete(path)) as response:
                    status = response.status_code
            else:
                status = http.request(method, concrete(path), json={"data": [], "session_hash": "x"}).status_code
            if status not in (401, 404):  # 404: not mounted here (MCP off, run history off, no FastAPI docs)
                open_routes.append(f"{method} {path} -> {status}")
    assert open_routes == []
    stale = set(PUBLIC) - {path for _, path in found}
    assert not stale, f"PUBLIC lists routes Gradio no longer has: {stale}"


def test_login_protects_file_upload_queue_and_call_routes(serve):
    from gradio_client import Client

    server = serve(username="reader", password="s3cret")
    url = server.url
    session = {"session_hash": "attacker", "fn_index": 0, "data": ["Tea?", None]}
    assert httpx.get(f"{url}gradio_api/file={server.secret}").status_code == 401
    assert httpx.post(url + "gradio_api/queue/join", json=session).status_code == 401
    assert httpx.get(url + "gradio_api/queue/data", params={"session_hash": "attacker"}).status_code == 401
    assert httpx.post(url + "gradio_api/run/predict", json=session).status_code == 401
    assert httpx.post(url + "gradio_api/call/v2/ask", json={"data": ["Tea?"]}).status_code == 401
    assert httpx.post(url + "login", data={"username": "reader", "password": "wrong"}).status_code == 400
    with pytest.raises(Exception):  # noqa: B017 - a wrong password gets no session
        Client(url, auth=("reader", "wrong"), verbose=False)
    assert "March" in Client(url, auth=("reader", "s3cret"), verbose=False).predict("Tea?", api_name="/ask")["answer"]


def test_run_history_and_mcp_routes_are_not_mounted(serve):
    """CVE-2026-134825 (Gradio 6.27 to 6.31) lives in the run-history routes; docqa turns them off."""
    server = serve()
    for path in ("gradio_api/runs", "gradio_api/run-history/buckets", "gradio_api/run-history/records"):
        response = httpx.get(server.url + path, headers={"Host": "localhost"})
        assert response.status_code == 404, path
    assert httpx.get(server.url + "gradio_api/mcp/schema").status_code == 404  # MCP is off unless asked for


# --- loopback -------------------------------------------------------------------------------------


def listening_addresses(port: int) -> list[str]:
    """Local IPv4/IPv6 addresses with a socket listening on `port`, from /proc/net/tcp{,6}."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    out.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    out.append(socket.inet_ntop(socket.AF_INET6, words))
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_server_binds_to_loopback_by_default(serve):
    assert Settings().host == "127.0.0.1"
    server = serve()
    assert server.settings.host == "127.0.0.1"
    assert listening_addresses(server.settings.port) == ["127.0.0.1"]


def test_launch_passes_the_host_and_warns_beyond_loopback_without_login(make_pipeline, settings, capsys):
    """Without binding anything: launch() hands Gradio settings.host, and says when that is exposed."""
    demo = web.build_app(make_pipeline(REPLY))
    seen: list[dict] = []
    demo.launch = lambda **kwargs: seen.append(kwargs) or (None, "http://stub/", None)
    capsys.readouterr()  # the index report from building the pipeline
    web.launch(demo, settings, block=False, quiet=True)
    assert seen[-1]["server_name"] == "127.0.0.1" and capsys.readouterr().err == ""
    web.launch(demo, settings.model_copy(update={"host": "0.0.0.0"}), block=False, quiet=True)
    assert seen[-1]["server_name"] == "0.0.0.0"
    assert "serving on 0.0.0.0 without a login" in capsys.readouterr().err
    guarded = settings.model_copy(update={"host": "0.0.0.0", "username": "u", "password": "p"})
    web.launch(demo, guarded, block=False, quiet=True)
    assert seen[-1]["auth"] == ("u", "p") and "without a login" not in capsys.readouterr().err


# --- files and uploads ------------------------------------------------------------------------------


def test_file_routes_refuse_server_files(serve):
    server = serve()
    docs_file = server.settings.docs_dir / "yunnan.txt"
    index_file = next(server.settings.index_dir.glob("v-*/chunks.jsonl"))
    for path in (
        "/etc/passwd",
        str(server.secret),
        str(docs_file),  # documents are shown through answers, never served as files
        str(index_file),
        "/tmp/gradio/../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
    ):
        for route in ("gradio_api/file=", "gradio_api/file/"):
            response = httpx.get(server.url + route + path)
            assert response.status_code in (403, 404), (route, path, response.status_code)
            assert SECRET not in response.text and "root:" not in response.text


def gradio_event(url: str, demo, session: str, name: str, data: list) -> dict:
    """Call the page's event handler `name` as the browser does: run/predict, or the queue and its SSE stream.

    Returns the final message: {"success": bool, "output": {"data": [...]} or {"error": ...}}.
    """
    index = next(i for i, fn in demo.fns.items() if getattr(fn.fn, "__name__", "") == name)
    body = {"data": data, "fn_index": index, "session_hash": session, "trigger_id": None}
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        if not demo.fns[index].queue:
            response = http.post("/gradio_api/run/predict", json=body)
            return {"success": response.status_code == 200, "output": response.json()}
        event_id = http.post("/gradio_api/queue/join", json=body).json()["event_id"]
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                        return message
    raise AssertionError(f"{name} never completed")


def test_http_upload_cannot_climb_out_or_smuggle_a_server_file(serve):
    server = serve(max_upload_mb=0.01)
    docs = server.settings.docs_dir
    before = sorted(p.name for p in docs.iterdir())

    # Gradio keeps the base name of an uploaded file, inside its own cache.
    response = httpx.post(server.url + "gradio_api/upload", files={"files": ("../../evil.txt", b"Evil tea facts.")})
    assert response.status_code == 200
    [stored] = response.json()
    assert Path(stored).name == "evil.txt" and "/../" not in stored
    # Oversized uploads are refused at the door (max_upload_mb reaches Gradio's max_file_size).
    too_big = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.txt", b"x" * 20_000)})
    assert too_big.status_code == 413

    # A forged "Add" event naming a file that was never uploaded: refused by Gradio, nothing copied.
    forged = {"path": str(server.secret), "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}
    outcome = gradio_event(server.url, server.demo, "attacker", "add_files", [[forged]])
    assert not outcome["success"] and "not uploaded by a user" in outcome["output"]["error"]
    assert sorted(p.name for p in docs.iterdir()) == before

    # The real upload, added through the page's own event: saved under its plain name, inside docs/.
    uploaded = {"path": stored, "orig_name": "../../evil.txt", "meta": {"_type": "gradio.FileData"}}
    outcome = gradio_event(server.url, server.demo, "user", "add_files", [[uploaded]])
    assert outcome["success"], outcome
    assert "evil.txt: saved as evil.txt" in outcome["output"]["data"][0]
    assert (docs / "evil.txt").read_text() == "Evil tea facts."
    assert not (docs.parent / "evil.txt").exists() and not (docs.parent.parent / "evil.txt").exists()


# --- chat sessions --------------------------------------------------------------------------------


def test_two_chat_sessions_never_share_history(serve):
    """The chat is the page's private start/respond events, not an API; a client speaking Gradio's
    protocol can drive it, and each session keeps its own conversation."""

    server = serve(by_prompt("The harvest begins in March [1].", rewrite="When does the tea harvest end?"))
    calls = server.pipeline.generator.calls  # every prompt the model was given, in order

    def ask(session: str, question: str) -> dict:
        started = gradio_event(server.url, server.demo, session, "start", [question, None])
        assert started["success"], started
        done = gradio_event(server.url, server.demo, session, "respond", [None, None, "default", 4, 160])
        assert done["success"], done
        messages, panel, _ = done["output"]["data"]
        return {"messages": [m["content"][0]["text"] for m in messages], "panel": panel}

    first = ask("alice", "When does the tea harvest begin?")
    assert len(first["messages"]) == 2
    # Bob's first question looks like a follow-up; with no history of his own it is searched as asked.
    bob = ask("bob", "and when does it end?")
    assert len(bob["messages"]) == 2 and "and when does it end?" in bob["messages"][0]
    assert "Searched as" not in bob["panel"]
    assert len(calls) == 2 and not any("Follow-up question" in c[-1]["content"] for c in calls)
    # Alice's follow-up is rewritten from her own history, which holds her turn and not Bob's.
    alice = ask("alice", "and when does it end?")
    assert len(alice["messages"]) == 4 and "When does the tea harvest begin?" in alice["messages"][0]
    assert "Searched as: When does the tea harvest end?" in alice["panel"]
    rewrite_prompt = calls[2][-1]["content"]
    assert "Follow-up question" in rewrite_prompt and rewrite_prompt.count("User: ") == 1
    assert "When does the tea harvest begin?" in rewrite_prompt


def test_gradio_is_past_the_known_file_access_advisories():
    """Gradio < 6.20 has file-route advisories (CVE-2026-59806 SSRF/open redirect via /gradio_api/file=,
    CVE-2026-49119 FileExplorer traversal < 6.16, CVE-2026-28414 < 6.7, CVE-2025-23042 < 5.6)."""
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version("gradio")) >= Version("6.20.0")
