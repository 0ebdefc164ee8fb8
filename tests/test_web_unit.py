"""The web layer with deterministic fakes: rendering, uploads, the chat stream, the API and the login."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from docqa.errors import DocsError, SettingsError
from docqa.ingest.indexer import FileProblem, IndexReport
from docqa.serve import documents as uploads
from docqa.serve import render
from docqa.settings import Settings
from docqa.types import Answer, Chunk, Citation, Passage
from fakes import by_prompt
from support import serving_app

EVIL = (
    "Tea grows in Yunnan. <script>alert(1)</script> The harvest begins in March.\n"
    '<img src=http://example.com/x.png onerror="alert(2)"> ![x](http://example.com/y.png) ${value} {{value}}'
)


def passage(n: int, text: str, source: str = "tea.txt", heading: str | None = "Tea", page: int | None = None):
    return Passage(n, Chunk(f"id{n}", source, text, 10, 10 + len(text), heading, page), 0.5)


def answer(text: str, cited: list[Citation], retrieved: list[Passage], **kw) -> Answer:
    return Answer(
        question=kw.pop("question", "When does the harvest begin?"),
        answer=text,
        abstained=kw.pop("abstained", False),
        citations=cited,
        retrieved=retrieved,
        timings={},
        model="fake",
        **kw,
    )


def assert_inert(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "![" not in html  # no Markdown image syntax left for anything to render
    assert "${" not in html and "{{" not in html  # no template syntax for Gradio's HTML component


# --- render -------------------------------------------------------------------------------------


def test_document_and_model_text_render_inert():
    evil = passage(1, EVIL, source="<b>x</b>.txt", heading="<img src=http://example.com/h.png>")
    a = answer("It begins in March [1]. <script>alert(3)</script> ![y](http://example.com/z.png)", [], [evil])
    a.citations = [Citation(evil, ("It begins in March.",))]
    for html in (render.answer_html(a), render.sources_html(a), render.streaming_html(a.answer)):
        assert_inert(html)
    panel = render.sources_html(a)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel  # shown as text, not dropped
    assert "&lt;b&gt;x&lt;/b&gt;.txt" in panel


def test_question_and_uploaded_names_render_inert():
    assert_inert(render.question_html("<script>alert(1)</script> ![x](http://e.com/y.png)"))
    row = uploads.DocumentRow("<img src=x onerror=alert(1)>.txt", "indexed", 10, 1, "2026")
    assert_inert(render.documents_html([row]))
    report = IndexReport(failed=[FileProblem("<script>x</script>.pdf", "<img src=y>")])
    assert_inert(render.report_html(report))


def test_markers_link_to_passage_cards():
    p1, p2 = passage(1, "The harvest begins in March."), passage(2, "It ends in October.")
    a = answer(
        "It begins in March [1]. It ends in October [2].",
        [Citation(p1, ("It begins in March.",)), Citation(p2, ("It ends in October.",))],
        [p1, p2],
    )
    bubble, panel = render.answer_html(a), render.sources_html(a)
    assert 'href="#src-1"' in bubble and 'href="#src-2"' in bubble
    assert 'id="src-1"' in panel and 'id="src-2"' in panel


def test_marker_for_unknown_passage_stays_text():
    html = render.link_markers("It rose [1] and [9].", [1])
    assert 'href="#src-1"' in html and "#src-9" not in html and "&#91;9&#93;" in html


def test_supporting_sentence_is_highlighted():
    p = passage(1, "Tea grows in Yunnan. The urbanization rate rose to 60.60% in 2019. Rice is grown too.")
    a = answer("The rate was 60.60% in 2019 [1].", [Citation(p, ("The rate was 60.60% in 2019.",))], [p])
    assert "<mark>The urbanization rate rose to 60.60% in 2019.</mark>" in render.sources_html(a)


def test_highlight_survives_escaping():
    html = render.passage_text_html("A <b>tag</b>. Farmers picked 120 tonnes.", ["They picked 120 tonnes."])
    assert html == "A &lt;b&gt;tag&lt;/b&gt;. <mark>Farmers picked 120 tonnes.</mark>"


def test_abstained_answer_looks_different():
    p = passage(1, "Tea grows in Yunnan.")
    refused = answer("The documents don't answer this question.", [], [p], abstained=True, abstain_reason="low score")
    normal = answer("Tea grows in Yunnan [1].", [Citation(p, ("Tea grows in Yunnan.",))], [p])
    assert "abstained" in render.answer_html(refused) and render.ABSTAIN_BADGE in render.answer_html(refused)
    assert "abstained" not in render.answer_html(normal) and render.ABSTAIN_BADGE not in render.answer_html(normal)
    assert "low score" in render.sources_html(refused)


def test_uncited_passages_are_collapsed():
    p1, p2 = passage(1, "Tea grows in Yunnan."), passage(2, "Rice grows in Hani.")
    panel = render.sources_html(answer("Tea grows in Yunnan [1].", [Citation(p1, ("Tea grows in Yunnan.",))], [p1, p2]))
    cited, _, collapsed = panel.partition("<details")
    assert 'id="src-1"' in cited and 'id="src-2"' not in cited
    assert 'id="src-2"' in collapsed and "1 more passage retrieved, not cited" in collapsed


def test_panel_shows_rewritten_question_and_location():
    p = passage(1, "Tea grows.", page=3)
    a = answer("Tea grows [1].", [Citation(p, ("Tea grows.",))], [p], standalone_question="Where does <tea> grow?")
    panel = render.sources_html(a)
    assert "Searched as: Where does &lt;tea&gt; grow?" in panel and "page 3" in panel


# --- uploads ------------------------------------------------------------------------------------


@pytest.fixture
def upload(tmp_path: Path):
    """Write a file as the browser's upload would arrive: its own name, in a folder of its own."""
    counter = itertools.count()

    def make(name: str, content: bytes = b"Tea grows in Yunnan.") -> Path:
        folder = tmp_path / "incoming" / str(next(counter))
        folder.mkdir(parents=True)
        path = folder / name
        path.write_bytes(content)
        return path

    return make


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../x.txt", "climbs out"),
        ("..\\..\\x.txt", "climbs out"),
        ("/etc/passwd", "absolute path"),
        ("C:\\Windows\\x.txt", "absolute path"),
        ("sub/x.txt", "contains a folder"),
        (".hidden.txt", "hidden"),
        ("tool.exe", "unsupported file type '.exe'"),
        ("noext", "unsupported file type '(none)'"),
        ("???", "empty after removing unsafe characters"),
    ],
)
def test_refused_names(name: str, expected: str):
    with pytest.raises(DocsError) as info:
        uploads.clean_name(name)
    assert expected in info.value.cause and info.value.fix


def test_names_are_sanitized():
    assert uploads.clean_name("  My  report<1>.md ") == "My report_1_.md"
    assert uploads.clean_name("Résumé 2019.PDF") == "Résumé 2019.PDF"
    long = uploads.clean_name("a" * 300 + ".txt")
    assert len(long) == uploads.MAX_NAME_CHARS and long.endswith(".txt")


def test_good_upload_is_saved(settings: Settings, upload):
    result = uploads.save_upload(settings, upload("tea notes.md", b"# Tea\n\nIt grows."))
    assert result.source == "tea notes.md" and not result.replaced and result.error is None
    assert (settings.docs_dir / "tea notes.md").read_bytes() == b"# Tea\n\nIt grows."
    again = uploads.save_upload(settings, upload("tea notes.md", b"new"))
    assert again.replaced and (settings.docs_dir / "tea notes.md").read_bytes() == b"new"
    assert not [p for p in settings.docs_dir.iterdir() if p.name.startswith(".upload-")]


def test_oversize_upload_is_refused(settings: Settings, upload):
    small = settings.model_copy(update={"max_upload_mb": 0.001})
    with pytest.raises(DocsError) as info:
        uploads.save_upload(small, upload("big.txt", b"x" * 2000))
    assert "over the 0.001 MB upload limit" in info.value.cause and "max_upload_mb" in info.value.fix
    assert not (settings.docs_dir / "big.txt").exists()


def test_upload_name_given_by_browser_is_checked(settings: Settings, upload):
    with pytest.raises(DocsError, match="climbs out"):
        uploads.save_upload(settings, upload("x.txt"), name="../../x.txt")
    assert not (settings.docs_dir.parent / "x.txt").exists()


def test_save_uploads_reports_each_file(settings: Settings, upload):
    results = uploads.save_uploads(settings, [upload("a.txt"), upload("b.exe"), upload("empty.txt", b"")])
    assert [r.error is None for r in results] == [True, False, False]
    assert "unsupported file type" in results[1].message and "empty" in results[2].message


def test_delete_document(settings: Settings):
    (settings.docs_dir / "old.txt").write_text("x")
    uploads.delete_document(settings, "old.txt")
    assert not (settings.docs_dir / "old.txt").exists()
    for bad in ("../docs/yunnan.txt", "/etc/passwd", ".git/config", "missing.txt", ""):
        with pytest.raises(DocsError):
            uploads.delete_document(settings, bad)
    assert (settings.docs_dir / "yunnan.txt").exists()


def test_symlink_out_of_docs_is_refused(settings: Settings, tmp_path: Path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("secret")
    (settings.docs_dir / "link").symlink_to(outside)
    with pytest.raises(DocsError, match="outside the documents folder"):
        uploads.delete_document(settings, "link/key.txt")
    assert (outside / "key.txt").exists()


def test_list_documents_states(make_pipeline, settings: Settings):
    pipeline = make_pipeline("x")
    (settings.docs_dir / "new.txt").write_text("Brand new.")
    manifest = pipeline.retriever.index.manifest
    rows = {r.source: r for r in uploads.list_documents(settings, manifest)}
    assert rows["yunnan.txt"].state == "indexed" and rows["yunnan.txt"].chunks >= 1
    assert rows["yunnan.txt"].indexed_at == manifest["built_at"]
    assert rows["new.txt"].state == "not indexed yet" and rows["new.txt"].chunks is None
    (settings.docs_dir / "yunnan.txt").write_text("changed")
    assert uploads.list_documents(settings, manifest)[-1].state == "changed since indexing"
    (settings.docs_dir / "yunnan.txt").unlink()
    assert uploads.list_documents(settings, manifest)[-1].state == "missing from folder"


def test_list_documents_shows_why_files_are_not_indexed(make_pipeline, settings: Settings):
    (settings.docs_dir / "tool.exe").write_bytes(b"MZ")
    (settings.docs_dir / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    pipeline = make_pipeline("x")
    report = pipeline.last_index_report
    rows = {r.source: r for r in uploads.list_documents(settings, pipeline.retriever.index.manifest, report.failed)}
    assert rows["tool.exe"].state == "can't be indexed" and "unsupported file type" in rows["tool.exe"].note
    assert rows["broken.pdf"].state == "can't be indexed" and rows["broken.pdf"].note
    assert rows["yunnan.txt"].state == "indexed" and rows["yunnan.txt"].note is None
    html = render.documents_html(list(rows.values()))
    assert "unsupported file type" in html and "can-t-be-indexed" in html


def test_example_questions_come_from_headings_and_names(make_pipeline):
    questions = uploads.example_questions(make_pipeline("x").retriever.chunks)
    assert questions == [
        "What does the document say about Tea in Yunnan?",
        "What does the document say about Rice terraces?",
    ]
    chunks = [Chunk(str(i), f"file-{i}-notes.txt", "t", 0, 1, f"Topic {i}") for i in range(6)]
    assert len(uploads.example_questions(chunks, limit=4)) == 4


# --- web ----------------------------------------------------------------------------------------

web = pytest.importorskip("docqa.serve.web")


def test_analytics_off_before_gradio_runs():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_chat_stream_streams_then_links_markers(make_pipeline):
    pipelines = web.Pipelines(make_pipeline("The harvest begins in March [1]. It ends in October [1]."))
    updates = list(web.chat_stream(pipelines, "When does the tea harvest begin?", []))
    streaming = [u for u in updates if u[1] is None]  # one update per checked sentence
    assert len(streaming) == 2 and "streaming" in streaming[0][0][-1]["content"]
    assert "March" in streaming[0][0][-1]["content"] and "October" not in streaming[0][0][-1]["content"]
    messages, panel, history = updates[-1]
    assert len(history) == 1 and isinstance(history[0], Answer)
    assert 'href="#src-1"' in messages[-1]["content"] and "<mark>" in panel


def test_chat_stream_passes_history_for_follow_ups(make_pipeline):
    pipeline = make_pipeline(by_prompt("The harvest ends in October [1].", rewrite="When does the tea harvest end?"))
    pipelines = web.Pipelines(pipeline)
    *_, (_, _, history) = web.chat_stream(pipelines, "When does the tea harvest begin?", [])
    *_, (messages, panel, history) = web.chat_stream(pipelines, "and when does it end?", history)
    assert len(history) == 2 and history[1].standalone_question == "When does the tea harvest end?"
    assert "Searched as: When does the tea harvest end?" in panel
    assert len(messages) == 4
    assert "When does the tea harvest begin?" in pipeline.generator.calls[1][-1]["content"]  # the rewrite prompt


def test_chat_stream_error_keeps_history(make_pipeline):
    pipelines = web.Pipelines(make_pipeline("x"))
    messages, panel, history = list(web.chat_stream(pipelines, "   ", []))[-1]
    assert history == [] and panel is None and "failed" in messages[-1]["content"]
    *_, (messages, _, history) = web.chat_stream(pipelines, "Tea?", [], top_k=99)
    assert history == [] and "top_k" in messages[-1]["content"]


def test_profiles_get_their_own_generator_and_share_the_index(make_pipeline, settings: Settings):
    base = make_pipeline("x", profile="default")
    pipelines = web.Pipelines(base)
    small = pipelines.get("small")
    assert small is not base and small.settings.profile == "small" and small.retriever is base.retriever
    assert pipelines.get("small") is small and pipelines.get(None) is base
    with pytest.raises(SettingsError):
        pipelines.get("huge")
    (settings.docs_dir / "new.txt").write_text("The Zorblat festival is held in April.")
    report = pipelines.reindex()
    assert report.added == ["new.txt"]
    assert pipelines.get("small").retriever is base.retriever
    assert any(c.source == "new.txt" for c in small.retriever.chunks)


def test_login_needs_both_or_neither(settings: Settings):
    assert settings.login is None
    assert settings.model_copy(update={"username": "u", "password": "p"}).login == ("u", "p")
    for half in ({"username": "u"}, {"password": "p"}, {"username": "", "password": "p"}):
        with pytest.raises(SettingsError, match="only one"):
            _ = settings.model_copy(update=half).login


def test_open_access_warning_only_beyond_loopback_without_login(settings: Settings):
    for host in ("127.0.0.1", "localhost", "::1"):
        s = settings.model_copy(update={"host": host})
        assert s.is_loopback and s.open_access_warning is None
    exposed = settings.model_copy(update={"host": "0.0.0.0"})
    assert not exposed.is_loopback and "serving on 0.0.0.0 without a login" in exposed.open_access_warning
    assert exposed.model_copy(update={"username": "u", "password": "p"}).open_access_warning is None


def test_mcp_setting_and_its_hints(monkeypatch: pytest.MonkeyPatch, settings: Settings):
    assert not settings.mcp_server
    monkeypatch.setenv("DOCQA_MCP_SERVER", "true")
    assert Settings.load(docs_dir=settings.docs_dir).mcp_server
    monkeypatch.setitem(__import__("sys").modules, "mcp", None)  # as if the extra were not installed
    with pytest.raises(SettingsError) as info:
        web.check_mcp(settings)
    assert 'pip install "docqa[mcp]"' in info.value.fix and "DOCQA_MCP_SERVER" in info.value.fix
    assert "gradio[mcp]" not in info.value.fix and "GRADIO_" not in info.value.fix


# --- the page's handlers, called directly --------------------------------------------------------


@pytest.fixture
def handlers(make_pipeline) -> web.Handlers:
    return web.Handlers(web.Pipelines(make_pipeline("The harvest begins in March [1].")))


def test_start_shows_the_question_as_pending(handlers):
    box, pending, messages = handlers.start("When does the <tea> harvest begin?", [])
    assert box == "" and pending == "When does the <tea> harvest begin?"
    assert len(messages) == 2 and "&lt;tea&gt;" in messages[0]["content"] and "streaming" in messages[1]["content"]
    with pytest.raises(web.gr.Error, match="empty"):
        handlers.start("   ", [])


def test_respond_skips_what_did_not_change(handlers):
    updates = list(handlers.respond("When does the tea harvest begin?", [], "default", 4, 160))
    skip = web.gr.skip()
    assert all(panel == skip and history == skip for _, panel, history in updates[:-1])
    messages, panel, history = updates[-1]
    assert len(history) == 1 and "<mark>" in panel and 'href="#src-1"' in messages[-1]["content"]


def test_show_turn_and_pick_example_read_the_event(handlers):
    *_, (_, _, history) = handlers.respond("When does the tea harvest begin?", [], "default", 4, 160)
    assert "<mark>" in web.show_turn(history, SimpleNamespace(index=[1, 0]))
    assert web.show_turn(history, SimpleNamespace(index=5)) == web.gr.skip()
    assert web.pick_example(SimpleNamespace(value={"text": "Tea?"})) == "Tea?"
    assert web.pick_example(SimpleNamespace(value="junk")) == ""
    assert web.reset() == ([], [], render.sources_html(None))


def test_document_handlers_add_delete_and_reindex(handlers, settings: Settings, upload):
    with pytest.raises(web.gr.Error, match="Choose one or more files"):
        handlers.add_files([])
    note, cleared = handlers.add_files([str(upload("new.txt", b"The Zorblat festival is held in April."))])
    assert "new.txt: saved as new.txt" in note and cleared is None
    report, table, menu, status, _ = handlers.reindex(note, "default", progress=lambda *a, **k: None)
    assert report.startswith(note) and "new.txt" in table and "new.txt" in str(menu.choices)
    assert status == handlers.status("default")
    assert "new.txt: deleted" in handlers.delete_file("new.txt") and not (settings.docs_dir / "new.txt").exists()
    with pytest.raises(web.gr.Error, match="new.txt"):
        handlers.delete_file("new.txt")


def test_ask_handler_returns_the_answer_json(handlers):
    result = handlers.ask("When does the tea harvest begin?", 1)
    assert result["answer"] == "The harvest begins in March [1]." and len(result["retrieved"]) == 1
    with pytest.raises(web.gr.Error, match="must be text"):
        handlers.ask(["not", "text"])  # type: ignore[arg-type]
    with pytest.raises(web.gr.Error, match="top_k"):
        handlers.ask("Tea?", 99)


# --- the page over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def served(make_pipeline, settings: Settings):
    """Start the app on a free port (tests/support.py's serving_app); yields (url, settings, demo)."""
    with contextlib.ExitStack() as stack:

        def start(reply="The harvest begins in March [1].", **overrides):
            app = stack.enter_context(serving_app(make_pipeline(reply, **overrides), settings, **overrides))
            return app.url, app.settings, app.demo

        yield start


def test_ask_api_returns_answer_json(served, make_pipeline):
    from gradio_client import Client

    url, s, demo = served()
    assert demo._queue.max_size == s.queue_size
    client = Client(url, verbose=False)
    result = client.predict("When does the tea harvest begin?", api_name="/ask")
    expected = make_pipeline("The harvest begins in March [1].").ask("When does the tea harvest begin?").to_dict()
    assert set(result) == set(expected)
    for key in ("answer", "abstained", "citations", "retrieved", "model", "standalone_question"):
        assert result[key] == expected[key]
    assert len(client.predict("When does the tea harvest begin?", 1, api_name="/ask")["retrieved"]) == 1
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/ask"]


def test_queue_is_bounded_and_full_queue_says_busy(served):
    from gradio_client import Client

    def slow(messages):
        time.sleep(1.5)
        return "The harvest begins in March [1]."

    url, _, _ = served(slow, queue_size=1)
    client = Client(url, verbose=False)
    jobs = [client.submit("When does the tea harvest begin?", api_name="/ask") for _ in range(3)]
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result()["answer"])
        except Exception as exc:  # noqa: BLE001 - the client raises its own QueueError
            outcomes.append(str(exc))
    # One runs and one may wait its turn (how many got in depends on when the first started);
    # the rest are refused at once instead of hanging.
    answered = outcomes.count("The harvest begins in March [1].")
    refused = sum("Queue is full" in o for o in outcomes)
    assert answered >= 1 and refused >= 1 and answered + refused == 3, outcomes


def test_ask_api_error_is_a_message(served):
    from gradio_client import Client

    url, _, _ = served()
    with pytest.raises(Exception, match="the question is empty"):
        Client(url, verbose=False).predict("   ", api_name="/ask")


def test_login_protects_page_and_api(served):
    from gradio_client import Client

    url, _, _ = served(username="reader", password="s3cret")
    for path in ("config", "gradio_api/info", "gradio_api/openapi.json"):
        assert httpx.get(url + path).status_code == 401, path
    assert httpx.post(url + "gradio_api/call/ask", json={"data": ["Tea?"]}).status_code == 401
    assert httpx.post(url + "gradio_api/upload", files={"files": ("a.txt", b"x")}).status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - the client's error type varies across versions
        Client(url, verbose=False)
    client = Client(url, auth=("reader", "s3cret"), verbose=False)
    assert "March" in client.predict("When does the tea harvest begin?", api_name="/ask")["answer"]


def test_mcp_refused_with_login(make_pipeline, settings: Settings):
    pytest.importorskip("mcp", reason="without the mcp package the missing extra is refused first")
    s = settings.model_copy(update={"username": "u", "password": "p", "mcp_server": True})
    with pytest.raises(SettingsError, match="MCP"):
        web.launch(web.build_app(make_pipeline("x")), s, block=False, quiet=True)


def test_mcp_schema_lists_ask_tool(served):
    pytest.importorskip("mcp", reason="the MCP server needs the mcp package (the `mcp` extra)")
    url, _, _ = served(mcp_server=True)
    tools = httpx.get(url + "gradio_api/mcp/schema").json()
    ask = next(t for t in tools if t["name"] == "ask")
    assert ask["inputSchema"]["required"] == ["question"] and "top_k" in ask["inputSchema"]["properties"]
    assert [t["name"] for t in tools] == ["ask"]  # the page's own events are not tools
