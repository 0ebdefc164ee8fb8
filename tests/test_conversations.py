"""Conversations and feedback: the SQLite store, the web handlers called directly, and
`docqa eval --from-feedback` turning ratings into draft eval cases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from docqa.evaluate import runner as ev
from docqa.serve import conversations as conv
from docqa.serve.conversations import ConversationStore
from docqa.settings import Settings
from docqa.types import Answer, Chunk, Citation, Passage
from fakes import by_prompt

HARVEST = "The harvest begins in March [1]."


def passage(n: int, text: str, source: str = "tea.txt", heading: str | None = "Tea", page: int | None = None):
    return Passage(n, Chunk(f"id{n}", source, text, 10, 10 + len(text), heading, page), 0.5)


def answer(question: str, text: str, cited: list[int], retrieved: list[Passage], **kw) -> Answer:
    by_n = {p.n: p for p in retrieved}
    return Answer(
        question=question,
        answer=text,
        abstained=kw.pop("abstained", False),
        citations=[Citation(by_n[n], (text,)) for n in cited],
        retrieved=retrieved,
        timings={"total_ms": 12.0},
        model="fake",
        **kw,
    )


P1 = passage(1, "The harvest begins in March and ends in October.", page=3)
P2 = passage(2, "Rice terraces cover 16,603 hectares.", source="rice.md", heading="Rice terraces")
FIRST = answer("When does the harvest begin?", "It begins in March [1].", [1], [P1, P2])
SECOND = answer("And the rice terraces?", "They cover 16,603 hectares [2].", [2], [P1, P2])
SETTINGS = {"profile": "small", "model": "fake", "top_k": 4, "retrieval": "hybrid", "min_score": 0.175}


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    s = ConversationStore(tmp_path / "data" / conv.FILE_NAME)
    yield s
    s.close()


# --- the store ------------------------------------------------------------------------------------


def test_reading_an_absent_store_creates_nothing(store: ConversationStore):
    assert store.list("alice") == [] and store.get("alice", "x") is None and store.feedback() == []
    assert not store.path.exists()


def test_create_append_list_and_get(store: ConversationStore):
    cid = store.create("alice", "When does the harvest begin?")
    assert store.list("alice") == []  # listed once it has a turn
    assert store.append("alice", cid, FIRST, SETTINGS) == 0
    assert store.append("alice", cid, SECOND, SETTINGS) == 1
    [summary] = store.list("alice")
    assert summary.id == cid and summary.turns == 2 and summary.title == "When does the harvest begin?"
    assert "2 answers" in summary.label
    got = store.get("alice", cid)
    assert [a.question for a in got.answers] == [FIRST.question, SECOND.question]
    assert got.answers[0].to_dict() == FIRST.to_dict()  # passages, citations and all come back
    assert got.turns[1].settings == SETTINGS


def test_save_stores_only_new_turns_and_starts_a_conversation(store: ConversationStore):
    assert store.save("alice", None, [], SETTINGS) is None
    cid = store.save("alice", None, [FIRST], SETTINGS)
    assert store.save("alice", cid, [FIRST, SECOND], SETTINGS) == cid
    assert store.save("alice", cid, [FIRST, SECOND], SETTINGS) == cid  # nothing new: nothing added
    assert store.count("alice", cid) == 2 and len(store.list("alice")) == 1


def test_users_never_see_each_others_conversations(store: ConversationStore):
    alice = store.save("alice", None, [FIRST], SETTINGS)
    bob = store.save("bob", None, [SECOND], SETTINGS)
    assert [c.id for c in store.list("alice")] == [alice] and [c.id for c in store.list("bob")] == [bob]
    assert store.get("bob", alice) is None and store.count("bob", alice) is None
    with pytest.raises(KeyError):
        store.append("bob", alice, SECOND, SETTINGS)
    with pytest.raises(KeyError):
        store.export_markdown("bob", alice)
    with pytest.raises(KeyError):
        store.rate("bob", alice, 0, "down")
    # Bob's page holding Alice's id starts a conversation of his own instead of writing into hers.
    other = store.save("bob", alice, [FIRST], SETTINGS)
    assert other not in (alice, bob) and store.count("alice", alice) == 1
    store.rate("alice", alice, 0, "up")
    assert store.feedback("bob") == [] and len(store.feedback("alice")) == 1


def test_reopened_after_a_new_connection_and_process(store: ConversationStore, tmp_path: Path):
    cid = store.save("alice", None, [FIRST, SECOND], SETTINGS)
    store.rate("alice", cid, 1, "down", "wrong passage")
    store.close()
    again = ConversationStore(store.path)
    assert again.get("alice", cid).answers[1].to_dict() == SECOND.to_dict()
    again.close()
    code = (
        "import sys; from docqa.serve.conversations import ConversationStore as S; s = S(sys.argv[1]);"
        "c = s.get('alice', sys.argv[2]); print(len(c.turns), s.feedback('alice')[0].comment)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store.path), cid], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "wrong", "passage"]


def test_wal_mode_and_schema_version(store: ConversationStore):
    store.save("alice", None, [FIRST], SETTINGS)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == conv.SCHEMA_VERSION
        db.execute("PRAGMA user_version = 99")
    store.close()
    with pytest.raises(Exception, match="schema version 99"):
        ConversationStore(store.path).list("alice")


def test_threads_write_safely(store: ConversationStore):
    cids = [store.create(f"user{i}") for i in range(4)]

    def write(i: int) -> None:
        for _ in range(5):
            store.append(f"user{i}", cids[i], FIRST, SETTINGS)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [store.count(f"user{i}", cids[i]) for i in range(4)] == [5, 5, 5, 5]


def test_export_markdown_has_each_answer_and_its_citations(store: ConversationStore):
    cid = store.save("alice", None, [FIRST, SECOND], SETTINGS)
    md = store.export_markdown("alice", cid)
    assert md.startswith("# When does the harvest begin?")
    assert "## 1. When does the harvest begin?" in md and "## 2. And the rice terraces?" in md
    first, second = md.split("## 2.")
    assert "It begins in March [1]." in first and "[1] tea.txt, page 3, “Tea”" in first
    assert "> The harvest begins in March and ends in October." in first and "rice.md" not in first
    assert "They cover 16,603 hectares [2]." in second and "[2] rice.md, “Rice terraces”" in second
    assert "> Rice terraces cover 16,603 hectares." in second


def test_feedback_keeps_answer_passages_settings_and_history(store: ConversationStore):
    cid = store.save("alice", None, [FIRST, SECOND], SETTINGS)
    fb = store.rate("alice", cid, 1, "down", "wrong number")
    assert fb.rating == "down" and fb.comment == "wrong number" and fb.question == "And the rice terraces?"
    assert fb.answer["answer"] == "They cover 16,603 hectares [2]." and fb.settings == SETTINGS
    assert [(p["chunk_id"], p["cited"]) for p in fb.passages] == [("id1", False), ("id2", True)]
    assert fb.passages[1]["text"] == "Rice terraces cover 16,603 hectares." and fb.passages[1]["source"] == "rice.md"
    assert fb.history == [["When does the harvest begin?", "It begins in March [1]."]]
    assert store.rate("alice", cid, 1, "up").comment == "wrong number"  # a changed mind keeps the comment
    assert store.comment("alice", cid, 1, " better now ").comment == "better now"
    assert store.rate("alice", cid, 1, None) is None and store.feedback("alice") == []
    with pytest.raises(KeyError):
        store.comment("alice", cid, 1, "no rating to comment on")
    with pytest.raises(KeyError):
        store.rate("alice", cid, 5, "up")
    with pytest.raises(ValueError):
        store.rate("alice", cid, 0, "meh")  # type: ignore[arg-type]


def test_data_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert conv.data_dir(Settings()).name == "docqa"
    monkeypatch.setenv("DOCQA_DATA_DIR", str(tmp_path / "mine"))
    s = Settings.load()
    assert ConversationStore.from_settings(s).path == tmp_path / "mine" / conv.FILE_NAME


# --- the web handlers, called directly ------------------------------------------------------------

web = pytest.importorskip("docqa.serve.web")


def request(user: str | None) -> SimpleNamespace:
    return SimpleNamespace(username=user)


@pytest.fixture
def handlers(make_pipeline, tmp_path: Path):
    pipeline = make_pipeline(by_prompt(HARVEST, rewrite="When does the tea harvest end?"))
    h = web.Handlers(web.Pipelines(pipeline), ConversationStore(tmp_path / "web" / conv.FILE_NAME))
    yield h
    h.store.close()


def ask(handlers, question: str, history: list, conversation: str | None, user: str | None = "alice"):
    *_, (_, _, history) = handlers.respond(question, history, "default", 3, 160)
    conversation, listed, download = handlers.save(history, conversation, "default", 3, 160, request(user))
    return history, conversation, listed, download


def test_turns_are_saved_listed_reopened_and_exported(handlers):
    history, cid, listed, download = ask(handlers, "When does the tea harvest begin?", [], None)
    assert cid and listed.value == cid and [c[1] for c in listed.choices] == [cid]
    history, again, _, download = ask(handlers, "and when does it end?", history, cid)
    assert again == cid and handlers.store.count("alice", cid) == 2
    settings = handlers.store.get("alice", cid).turns[0].settings
    assert settings["top_k"] == 3 and settings["profile"] == "default" and settings["retrieval"] == "hybrid"
    assert settings["model"] == "scripted" and settings["min_score"] == 0.1
    assert settings["prompt_version"].startswith("sha256:")
    text = Path(download).read_text(encoding="utf-8")
    assert "The harvest begins in March [1]." in text and "[1] yunnan.txt" in text

    # A reload of the page: the list comes back from the store, and picking one reopens it.
    assert [c[1] for c in handlers.conversation_list(request("alice")).choices] == [cid]
    handlers.store.rate("alice", cid, 1, "down")
    turns, chatbot, panel, opened, download, note = handlers.open(cid, request("alice"))
    assert opened == cid and len(turns) == 2 and isinstance(turns[0], Answer) and len(chatbot.value) == 4
    assert turns[1].standalone_question == "When does the tea harvest end?" and "<mark>" in panel
    assert 'href="#src-1"' in chatbot.value[1]["content"][0]["text"] and Path(download).exists()
    assert chatbot.feedback_value == [None, "Dislike"]  # the thumbs as they were left
    turns, chatbot, *_ = handlers.new_conversation()
    assert turns == [] and chatbot.value == [] and chatbot.feedback_value == []


def test_each_login_sees_only_its_own(handlers):
    _, alice, _, _ = ask(handlers, "When does the tea harvest begin?", [], None, user="alice")
    _, local, _, _ = ask(handlers, "When does the tea harvest begin?", [], None, user=None)  # no login
    assert handlers.conversation_list(request("bob")).choices == []
    assert [c[1] for c in handlers.conversation_list(request(None)).choices] == [local]
    assert handlers.store.count(conv.LOCAL_USER, local) == 1
    with pytest.raises(web.gr.Error, match="not there"):
        handlers.open(alice, request("bob"))
    assert handlers.export(alice, request("bob")) is None


def test_thumbs_and_comment_are_stored_with_the_answer(handlers):
    history, cid, _, _ = ask(handlers, "When does the tea harvest begin?", [], None)
    note, rated = handlers.rate(history, cid, SimpleNamespace(index=1, liked=False, value=[]), request("alice"))
    assert rated == 0 and "Thumbs down saved" in note
    note, box = handlers.comment("It should say October too", cid, rated, request("alice"))
    assert box == "" and "Comment saved" in note
    [fb] = handlers.store.feedback("alice")
    assert fb.rating == "down" and fb.comment == "It should say October too"
    assert fb.answer["answer"] == HARVEST and fb.passages[0]["cited"] and fb.passages[0]["chunk_id"]
    assert fb.settings["top_k"] == 3 and fb.settings["retrieval"] == "hybrid"
    note, rated = handlers.rate(history, cid, SimpleNamespace(index=[1, 0], liked=True, value=[]), request("alice"))
    assert handlers.store.feedback("alice")[0].rating == "up" and "Thumbs up saved" in note
    assert handlers.rate(history, cid, SimpleNamespace(index=1, liked="", value=[]), request("alice"))[1] is None
    assert handlers.store.feedback("alice") == []  # clicked again: taken back
    assert handlers.rate(history, cid, SimpleNamespace(index=7, liked=True, value=[]), request("alice"))[1] is None
    with pytest.raises(web.gr.Error, match="Rate an answer"):
        handlers.comment("x", cid, None, request("alice"))


def test_page_builds_with_the_new_controls(make_pipeline, tmp_path: Path):
    demo = web.build_app(make_pipeline(HARVEST, data_dir=tmp_path / "data"))
    like = [d for d in demo.config["dependencies"] if any(t[1] == "like" for t in d["targets"])]
    assert len(like) == 1
    assert not (tmp_path / "data").exists()  # nothing written until a turn is saved


# --- docqa eval --from-feedback ---------------------------------------------------------------------


def test_eval_from_feedback_writes_draft_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from docqa.cli import cli

    data = tmp_path / "data"
    store = ConversationStore(data / conv.FILE_NAME)
    cid = store.save("alice", None, [FIRST, SECOND], SETTINGS)
    store.rate("alice", cid, 1, "down", "It is 16,603 hectares, the answer is right but check the unit")
    refused = answer("How long to boil an egg?", "The documents don't say.", [], [P1], abstained=True)
    other = store.save("bob", None, [FIRST, refused], SETTINGS)
    store.rate("bob", other, 0, "up")
    store.rate("bob", other, 1, "up")
    store.close()
    monkeypatch.setenv("DOCQA_DATA_DIR", str(data))
    out = tmp_path / "drafts.jsonl"
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 3 draft eval cases (1 thumbs-down, 2 thumbs-up)" in result.output and str(out) in result.output

    cases = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    down, up, refusal = cases
    assert down["question"] == "And the rice terraces?" and down["answerable"] and down["kind"] == "follow_up"
    assert down["history"] == [["When does the harvest begin?", "It begins in March [1]."]]
    assert down["evidence"] == ["Rice terraces cover 16,603 hectares."] and down["expected"] == []
    assert "check the unit" in down["review"] and "expected" in down["todo"]
    assert down["source"] == "rice.md" and down["settings"] == SETTINGS and down["feedback"]["rating"] == "down"
    assert up["page"] == [3] and "regression" in up["review"] and "history" not in up
    assert refusal["answerable"] is False and refusal["evidence"] == [] and "todo" not in refusal

    with pytest.raises(Exception, match="lacks expected facts"):
        ev.load_questions(out)  # a draft until a person fills "expected"
    for case in (down, up):
        case["expected"] = [["16,603"]] if case is down else [["March"]]
    out.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    loaded = ev.load_questions(out)
    assert [q.id for q in loaded] == [c["id"] for c in cases] and len({q.id for q in loaded}) == 3
    assert loaded[0].history == (("When does the harvest begin?", "It begins in March [1]."),)
    assert loaded[1].source == "tea.txt" and loaded[1].page == (3,) and not loaded[2].answerable


def test_eval_from_feedback_without_any(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from docqa.cli import cli

    monkeypatch.setenv("DOCQA_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli, ["eval", "--from-feedback", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 0 and "no feedback yet" in result.output and not (tmp_path / "x.jsonl").exists()


# --- the page in headless Chromium (as tests/test_browser.py runs it) ------------------------------


@pytest.mark.e2e
@pytest.mark.browser
@pytest.mark.skipif(
    not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()),
    reason="needs chromium and chromedriver: apt-get install -y chromium chromium-driver",
)
def test_page_keeps_rates_reopens_and_exports(make_pipeline, settings: Settings, tmp_path: Path):
    import shutil
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from support import serving

    s = settings.model_copy(update={"data_dir": tmp_path / "data"})
    store = ConversationStore(conv.data_dir(s) / conv.FILE_NAME)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    profile, downloads = tempfile.mkdtemp(prefix="docqa-chromium-"), tmp_path / "downloads"
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))

    def wait(condition, message: str, timeout: float = 60):
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(), message)

    def css(selector: str) -> list:
        return driver.find_elements(By.CSS_SELECTOR, selector)

    def button(label: str):
        return next(b for b in css("#docqa-chat button") if b.get_attribute("aria-label") == label)

    try:
        with serving(make_pipeline(HARVEST, data_dir=s.data_dir), s, username="alice", password="pw") as url:
            driver.get(url)
            wait(lambda: css("input[type=password]"), "the login form")
            css("input[type=text]")[0].send_keys("alice")
            css("input[type=password]")[0].send_keys("pw")
            css("button[type=submit], button.lg")[0].click()
            wait(lambda: css("#docqa-question textarea"), "the page after login")
            css("#docqa-question textarea")[0].send_keys("When does the tea harvest begin?")
            driver.find_element(By.ID, "docqa-send").click()
            wait(lambda: store.list("alice"), "the turn to be saved")
            wait(lambda: css("#docqa-chat button[aria-label=Dislike]"), "the thumbs").pop().click()
            wait(lambda: "saved for answer 1" in driver.find_element(By.ID, "docqa-feedback-note").text, "the rating")
            css("#docqa-comment textarea")[0].send_keys("It ends in October too")
            driver.find_element(By.ID, "docqa-send-comment").click()
            wait(lambda: [f.comment for f in store.feedback("alice")] == ["It ends in October too"], "the comment")

            driver.refresh()  # a reload: an empty chat, and the conversation in the list
            wait(lambda: css("#docqa-past input"), "the page after reload")[0].click()
            wait(lambda: css("[role=option]"), "the list of conversations")[0].click()
            wait(lambda: css("#docqa-chat .docqa-answer"), "the reopened conversation")
            assert button("Disliked") and "March" in css("#docqa-chat .docqa-answer")[0].text
            driver.find_element(By.ID, "docqa-export").click()
            [exported] = wait(lambda: list(downloads.glob("*.md")), "the Markdown export")
            text = exported.read_text(encoding="utf-8")
            assert HARVEST in text and "[1] yunnan.txt" in text and "> Yunnan grows" in text
    finally:
        driver.quit()
        store.close()
        shutil.rmtree(profile, ignore_errors=True)
