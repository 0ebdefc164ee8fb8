"""Clicking a citation shows the cited spot, in headless Chromium with the real small model.

A Markdown file and a small PDF (text layer written by hand) are indexed; two real answers are
asked for, and a click on each answer's [n] must show, in the viewer, the passage marked at the
offsets the index stored: the Markdown section with the passage in <mark>, and the PDF page as an
image with the passage's lines highlighted over it. Screenshots go to tests/artifacts/viewer-*.png.

Needs Debian's browser and driver: `apt-get install -y chromium chromium-driver`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from docqa.ingest.readers import read_document
from docqa.serve.viewer import boxes_on_page
from support import headless_chromium, pdf_file, serving

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ANSWER_TIMEOUT_S = 180

TEA_MD = """# Tea in Yunnan

Yunnan grows most of China's pu-erh tea on old trees in the south of the province.

## Harvest

Pickers climb the old trees at dawn and fill bamboo baskets by hand. The leaves are sorted in the village
before noon, and the best buds are kept apart for the spring cakes.

The pu-erh tea harvest in Yunnan begins in March and ends in October. <script>window.__pwned=1</script>

After picking, the leaves are withered, pan-fired and rolled, then sun-dried on bamboo mats for two days
before they are pressed into cakes and stored for years.

## Rice terraces

The Hani rice terraces cover 16,603 hectares and became a World Heritage site in 2013.
"""

PDF_LINES = [
    "Quokka cooperative annual report",
    "The cooperative was founded in 2009 by eleven families.",
    "It buys walnuts from farmers in three valleys.",
    "Prices are set every spring at a public meeting.",
    "The Quokka cooperative in Lijiang had 4,321 members in 2021.",
    "Members sell walnuts and honey at the Friday market.",
    "The board meets four times a year in the old school.",
    "Its accounts are audited every year by the county office.",
]

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs chromium and chromedriver: apt-get install -y chromium chromium-driver", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

EXTERNAL_IMAGES_JS = """
return Array.from(document.querySelectorAll('img'))
  .map(img => img.getAttribute('src') || '')
  .filter(src => !src.startsWith('data:') && !src.startsWith(location.origin) && !src.startsWith('/'));
"""
# Where each highlight rectangle sits on the page image, in the image's own pixels.
HIGHLIGHTS_JS = """
const page = document.querySelector('#docqa-viewer .viewer-page img');
const box = page.getBoundingClientRect();
return Array.from(document.querySelectorAll('#docqa-viewer .viewer-hl')).map(h => {
  const r = h.getBoundingClientRect();
  return {left: r.left - box.left, top: r.top - box.top, right: r.right - box.left, bottom: r.bottom - box.top,
          width: box.width, height: box.height};
});
"""


def lines_pdf(lines: list[str]) -> bytes:
    """A one-page Letter PDF with one Helvetica line per item, 20 points apart, from the top left."""
    shown = " ".join(f"({line}) Tj T*" for line in lines)
    stream = f"BT /F1 12 Tf 20 TL 72 720 Td {shown} ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        " /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>",
    ]
    return pdf_file(objects)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from docqa.answering.pipeline import Pipeline
    from docqa.settings import Settings

    root = tmp_path_factory.mktemp("viewer")
    docs = root / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text(TEA_MD, encoding="utf-8")
    (docs / "quokka-report.pdf").write_bytes(lines_pdf(PDF_LINES))
    settings = Settings(  # small chunks, so a cited passage is part of its section and of its page
        profile="small",
        docs_dir=docs,
        index_dir=root / "index",
        data_dir=root / "data",
        chunk_tokens=48,
        chunk_overlap_tokens=8,
    )
    pipeline = Pipeline.from_settings(settings)
    _ = pipeline.generator  # loaded before the page opens, as `docqa serve` does
    with serving(pipeline, settings) as url:
        yield SimpleNamespace(url=url, docs=docs)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as driver:
        yield driver


def wait(driver: WebDriver, condition, timeout: float = ANSWER_TIMEOUT_S, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def finished_answers(driver: WebDriver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#docqa-chat .docqa-answer:not(.streaming)")


def ask(driver: WebDriver, question: str):
    """Ask through the page; the finished answer's element."""
    before = len(finished_answers(driver))
    box = driver.find_element(By.CSS_SELECTOR, "#docqa-question textarea")
    box.clear()
    box.send_keys(question)
    driver.find_element(By.ID, "docqa-send").click()
    wait(driver, lambda d: len(finished_answers(d)) > before, message=f"no answer to {question!r}")
    return finished_answers(driver)[-1]


def words(text: str) -> str:
    return " ".join(text.split())


def click_citation_of(driver: WebDriver, answer, source: str) -> str:
    """Click the answer's first [n] whose passage comes from `source`; the passage's text, from its card."""
    for marker in answer.find_elements(By.CSS_SELECTOR, "a.cite"):
        card_id = marker.get_attribute("href").rsplit("#", 1)[1]
        card = driver.find_element(By.ID, card_id)
        if card.find_element(By.CSS_SELECTOR, ".src-file").text == source:
            passage = card.find_element(By.CSS_SELECTOR, ".src-text").text  # visible text: <br> as a line break
            marker.click()
            return passage
    raise AssertionError(f"the answer cites no passage of {source}: {answer.text!r}")


def viewer_shows(driver: WebDriver, source: str) -> bool:
    heads = driver.find_elements(By.CSS_SELECTOR, "#docqa-viewer .viewer-file")
    return bool(heads) and heads[0].text == source and bool(driver.find_elements(By.CSS_SELECTOR, "#docqa-viewer mark"))


def requests_outside(driver: WebDriver, origin: str) -> list[str]:
    """Network URLs requested since the last call that are not on `origin` (data: is not the network)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    origin = origin.rstrip("/")
    ws_origin = "ws" + origin.removeprefix("http")
    network = [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert network, "the performance log recorded no request at all"
    return [u for u in network if not u.startswith((origin, ws_origin))]


def test_citation_opens_the_markdown_section_with_the_passage_marked(server, browser: WebDriver):
    browser.get(server.url)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#docqa-question textarea"), 30, "page did not load")
    answer = ask(browser, "When does the pu-erh tea harvest in Yunnan begin?")
    assert "March" in answer.text, answer.text
    passage = click_citation_of(browser, answer, "tea.md")

    wait(browser, lambda d: viewer_shows(d, "tea.md"), 30, "the viewer did not show tea.md")
    viewer = browser.find_element(By.ID, "docqa-viewer")
    mark = viewer.find_element(By.CSS_SELECTOR, "mark")
    assert words(mark.text) == words(passage)  # exactly the stored passage, at its stored offsets
    assert "begins in March" in mark.text and mark.is_displayed()
    assert "## Harvest" in viewer.text and "16,603" not in viewer.text  # its section, not the next one
    section = viewer.find_element(By.CSS_SELECTOR, ".viewer-text").text
    assert len(words(section.replace(mark.text, "")).split()) >= 10  # and more of the section around the passage
    assert "<script>window.__pwned=1</script>" in viewer.get_attribute("textContent")  # shown as text
    assert not browser.find_elements(By.CSS_SELECTOR, "#docqa-viewer script")
    assert browser.execute_script("return typeof window.__pwned") == "undefined"

    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", viewer)
    browser.save_screenshot(str(ARTIFACTS / "viewer-markdown.png"))
    assert requests_outside(browser, server.url) == []


def test_citation_opens_the_pdf_page_with_the_lines_highlighted(server, browser: WebDriver):
    answer = ask(browser, "How many members did the Quokka cooperative have in 2021?")
    assert "4,321" in answer.text or "4321" in answer.text, answer.text
    passage = click_citation_of(browser, answer, "quokka-report.pdf")

    wait(browser, lambda d: viewer_shows(d, "quokka-report.pdf"), 60, "the viewer did not show the PDF")
    viewer = browser.find_element(By.ID, "docqa-viewer")
    image = viewer.find_element(By.CSS_SELECTOR, ".viewer-page img")
    assert image.get_attribute("alt") == "Page 1" and image.get_attribute("src").startswith("data:image/png;base64,")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0, 10, "no page image")
    assert words(viewer.find_element(By.CSS_SELECTOR, "mark").text) == words(passage)

    doc = read_document(server.docs / "quokka-report.pdf")
    start, end = map(int, re.search(r"characters (\d+)–(\d+)", viewer.text).groups())
    assert words(doc.text[start:end]) == words(passage)
    if doc.boxes:  # the PDF reader gives line positions: the passage's lines are drawn over the page
        expected = boxes_on_page(doc.boxes, start, end, 1)
        highlights = browser.execute_script(HIGHLIGHTS_JS)
        assert expected and len(highlights) == len(expected), (highlights, expected)
        assert len(expected) < len(doc.boxes)  # the passage's lines, not the whole page
        for h, (x0, y0, x1, y1) in zip(highlights, expected, strict=True):  # where the line is, on the image
            assert abs(h["left"] - x0 * h["width"]) <= 2 and abs(h["right"] - x1 * h["width"]) <= 2, (h, x0, x1)
            assert abs(h["top"] - y0 * h["height"]) <= 2 and abs(h["bottom"] - y1 * h["height"]) <= 2, (h, y0, y1)
        assert all(h["bottom"] < h["height"] / 2 for h in highlights)  # the lines are near the top of the page
        assert "can't be drawn" not in viewer.text
    else:
        assert "can't be drawn" in viewer.text

    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", viewer)
    browser.save_screenshot(str(ARTIFACTS / "viewer-pdf.png"))
    assert browser.execute_script(EXTERNAL_IMAGES_JS) == []
    assert requests_outside(browser, server.url) == []


def test_documents_tab_filters_by_path(server, browser: WebDriver):
    browser.get(server.url)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#docqa-question textarea"), 30, "page did not load")
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Documents").click()
    table = lambda d: d.find_element(By.ID, "docqa-docs").text  # noqa: E731
    wait(browser, lambda d: "rows 1–2 of 2" in table(d), 30, "the table did not list both files")
    browser.find_element(By.CSS_SELECTOR, "#docqa-docs-filter textarea, #docqa-docs-filter input").send_keys("QUOKKA")
    wait(browser, lambda d: "rows 1–1 of 1 matching 'QUOKKA'" in table(d), 30, "the filter did not apply")
    assert "quokka-report.pdf" in table(browser) and "tea.md" not in table(browser)
    browser.find_element(By.ID, "docqa-docs-next").click()  # one page only: Next stays on it
    wait(browser, lambda d: "page 1 of 1" in table(d), 10, "paging left the only page")
    browser.save_screenshot(str(ARTIFACTS / "viewer-documents-filter.png"))
