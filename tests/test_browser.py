"""The chat page in headless Chromium, with the real small model.

Needs Debian's browser and driver: `apt-get install -y chromium chromium-driver`. Selenium is always
given the driver's path, so selenium-manager never tries to download one.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from docqa.settings import Settings
from support import headless_chromium, serving, small_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ANSWER_TIMEOUT_S = 120
HOSTILE_DOC = """# Quokka cooperative

The Quokka cooperative in Lijiang had 4,321 members in 2021. <script>window.__pwned=1</script>
<img src=http://10.255.255.1/x.png onerror="window.__pwned=2"> ![tracker](http://10.255.255.1/y.png)
"""

HOSTILE_QUESTION = '<img src=http://10.255.255.1/q.png onerror="window.__pwned=3"> How many members did Quokka have?'

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs chromium and chromedriver: apt-get install -y chromium chromium-driver", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Records, in the page's own clock, when Send is clicked and when the first streamed token shows.
TIMING_JS = """
window.__t0 = null; window.__tfirst = null; window.__tfinal = null;
if (window.__observer) window.__observer.disconnect();
const before = arguments[0];
const chat = document.querySelector('#docqa-chat');
window.__observer = new MutationObserver(() => {
  const streaming = chat.querySelector('.docqa-answer.streaming');
  if (window.__t0 && !window.__tfirst && streaming && streaming.textContent.replace('▍', '').trim()) {
    window.__tfirst = performance.now();
  }
  const answers = chat.querySelectorAll('.docqa-answer:not(.streaming)');
  if (window.__t0 && !window.__tfinal && answers.length > before) window.__tfinal = performance.now();
});
window.__observer.observe(chat, {subtree: true, childList: true, characterData: true});
document.querySelector('#docqa-send').addEventListener('click', () => { window.__t0 = performance.now(); },
                                                       {capture: true, once: true});
"""
IMAGES_SETTLED_JS = "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
TWO_FRAMES_JS = "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
EXTERNAL_IMAGES_JS = """
return Array.from(document.querySelectorAll('img'))
  .map(img => img.getAttribute('src') || '')
  .filter(src => /^(https?:)?\\/\\//i.test(src) && !src.startsWith(location.origin));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("browser")
    pipeline = small_pipeline(root)
    _ = pipeline.generator  # as `docqa serve` does: the model is loaded before the page opens
    with serving(pipeline, pipeline.settings) as url:
        yield SimpleNamespace(url=url, root=root)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as driver:
        yield driver


def wait(driver: WebDriver, condition, timeout: float = ANSWER_TIMEOUT_S, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def open_chat(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#docqa-question textarea"), 30, "page did not load")
    tab(driver, "Chat")


def tab(driver: WebDriver, name: str) -> None:
    button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == name)
    button.click()


def finished_answers(driver: WebDriver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#docqa-chat .docqa-answer:not(.streaming)")


def send(driver: WebDriver, question: str) -> float:
    """Ask through the page and wait for the checked answer; returns ms from click to first token."""
    before = len(finished_answers(driver))
    driver.execute_script(TIMING_JS, before)
    box = driver.find_element(By.CSS_SELECTOR, "#docqa-question textarea")
    box.clear()
    box.send_keys(question)
    driver.find_element(By.ID, "docqa-send").click()
    wait(driver, lambda d: len(finished_answers(d)) > before, message=f"no answer to {question!r}")
    first, final, t0 = driver.execute_script("return [window.__tfirst, window.__tfinal, window.__t0]")
    assert t0 is not None and first is not None, "no streamed token was seen before the final answer"
    assert first <= final
    return first - t0


def requests_outside(driver: WebDriver, origin: str) -> list[str]:
    """Network URLs (http, https, ws, wss) requested since the last call that are not on `origin`.

    Chromium's own pages (chrome://, about:) and inline data (data:, blob:) are not the network.
    """
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    origin = origin.rstrip("/")
    ws_origin = "ws" + origin.removeprefix("http")
    network = [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert network, "the performance log recorded no request at all"  # else this check would prove nothing
    return [u for u in network if not u.startswith((origin, ws_origin))]


def images_settled(driver: WebDriver) -> None:
    """Wait until every image on the page has loaded or failed, so their load/error handlers have run,
    and two animation frames have passed (handlers queued by the last DOM update have run too)."""
    wait(driver, lambda d: d.execute_script(IMAGES_SETTLED_JS), 10, "images on the page never settled")
    driver.execute_async_script(TWO_FRAMES_JS)


def sources_panel(driver: WebDriver):
    return driver.find_element(By.ID, "docqa-sources")


def test_chat_streams_cites_and_follows_up(server, browser: WebDriver):
    open_chat(browser, server.url)
    assert "1 document" in browser.find_element(By.ID, "docqa-status").text

    ttft_ms = send(browser, "What was China's urbanization rate in 2019?")
    print(f"\ntime to first token in the page (small model, warm): {ttft_ms:.0f} ms")
    answer = finished_answers(browser)[-1]
    assert "60.60%" in answer.text
    marker = answer.find_element(By.CSS_SELECTOR, "a.cite")
    target = marker.get_attribute("href").rsplit("#", 1)[1]

    marker.click()
    wait(browser, lambda d: d.current_url.endswith("#" + target), 10, "the marker did not jump to its passage")
    card = sources_panel(browser).find_element(By.ID, target)
    assert card.is_displayed()
    assert "60.60%" in card.find_element(By.TAG_NAME, "mark").text
    assert "poverty-alleviation-and-rural-revitalization.txt" in card.text

    send(browser, "And in 1995?")
    follow_up = finished_answers(browser)[-1].text
    panel = sources_panel(browser).text
    assert "Searched as:" in panel, "the follow-up was not rewritten into a standalone question"
    assert "1995" in panel.split("Searched as:", 1)[1].splitlines()[0], panel  # the year reached the rewrite
    # The essay: "The urbanization rate in China has soared from 29% in 1995 to 60.60% in 2019".
    assert "29%" in follow_up and "Not found in the documents" not in follow_up, follow_up
    marks = [m.text for m in sources_panel(browser).find_elements(By.TAG_NAME, "mark")]
    assert any("29%" in m for m in marks), marks  # the cited passage highlights the supporting sentence

    # A marker in the earlier answer brings that answer's sources back into the panel.
    finished_answers(browser)[0].find_element(By.CSS_SELECTOR, "a.cite").click()
    wait(browser, lambda d: "urbanization rate in 2019" in sources_panel(d).text, 10, "panel did not follow the turn")
    assert "Searched as:" not in sources_panel(browser).text

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "chat.png"))
    assert requests_outside(browser, server.url) == []  # no fonts, analytics or update checks from elsewhere


def test_hostile_document_is_shown_as_text(server, browser: WebDriver):
    open_chat(browser, server.url)
    hostile = server.root / "incoming" / "quokka.md"
    hostile.parent.mkdir(exist_ok=True)
    hostile.write_text(HOSTILE_DOC, encoding="utf-8")

    tab(browser, "Documents")
    browser.find_element(By.CSS_SELECTOR, "#docqa-upload input[type=file]").send_keys(str(hostile))
    wait(browser, lambda d: "quokka" in d.find_element(By.ID, "docqa-upload").text, 30, "upload did not arrive")
    browser.find_element(By.ID, "docqa-add").click()
    wait(browser, lambda d: "Added: quokka.md" in d.find_element(By.ID, "docqa-report").text, 60, "not re-indexed")
    assert "quokka.md" in browser.find_element(By.ID, "docqa-docs").text

    tab(browser, "Chat")
    send(browser, HOSTILE_QUESTION)
    panel = sources_panel(browser)
    text = panel.get_attribute("textContent")
    assert "<script>window.__pwned=1</script>" in text  # displayed, as text
    assert 'onerror="window.__pwned=2"' in text
    assert browser.execute_script(EXTERNAL_IMAGES_JS) == []
    images_settled(browser)  # any injected image handler has had its chance to fire
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert not browser.find_elements(By.CSS_SELECTOR, "#docqa-sources script, #docqa-chat script")
    assert requests_outside(browser, server.url) == []


# The model's own output carrying markup and outside addresses: never on screen as markup.
HOSTILE_REPLY = (
    'The Quokka cooperative had 4,321 members [1]. <img src="http://evil.invalid/m.png"'
    " onerror=\"window.__pwned='model'\"> <script>window.__pwned='script'</script>"
    " ![t](http://evil.invalid/t.png) <a href=\"javascript:window.__pwned='link'\">more</a>"
)


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory):
    """The page over a scripted generator that answers with markup, and the hash embedder."""
    from docqa.answering.pipeline import Pipeline
    from fakes import HashEmbedder, ScriptedGenerator

    root = tmp_path_factory.mktemp("browser-fake")
    (root / "docs").mkdir()
    (root / "docs" / "quokka.txt").write_text("The Quokka cooperative had 4,321 members in 2021.\n", encoding="utf-8")
    settings = Settings(docs_dir=root / "docs", index_dir=root / "index", data_dir=root / "data", min_score=0.1)
    pipeline = Pipeline.from_settings(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(HOSTILE_REPLY))
    with serving(pipeline, settings) as url:
        yield SimpleNamespace(url=url)


def test_model_output_with_markup_is_shown_as_text(fake_server, browser: WebDriver):
    open_chat(browser, fake_server.url)
    send(browser, "How many members did the Quokka cooperative have?")
    answer = finished_answers(browser)[-1]
    # Addresses found in no passage (exfiltration images) make the draft untrustworthy: the answer
    # abstains and names them, as inert text; no sentence of the draft was streamed.
    assert "address found in no passage" in answer.text and "evil.invalid/m.png" in answer.text
    assert "4,321" not in answer.text
    assert browser.execute_script(EXTERNAL_IMAGES_JS) == []
    images_settled(browser)  # any injected image handler has had its chance to fire
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert not browser.find_elements(
        By.CSS_SELECTOR, "#docqa-chat img, #docqa-chat script, #docqa-chat a[href^=javascript]"
    )
    assert browser.execute_script(EXTERNAL_IMAGES_JS) == []
    assert requests_outside(browser, fake_server.url) == []
