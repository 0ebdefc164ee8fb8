"""The Documents tab over a folder of 10,000 files: filtered, paged, and listed again without rereading.

The 10,000 files are an index manifest built by hand (no indexing); the handlers run over a small
real pipeline with the deterministic fakes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from docqa.serve import documents, render, web
from docqa.serve.documents import DocumentRow, list_documents, page_of
from docqa.settings import Settings

FILES = 10_000


def fake_manifest(n: int = FILES) -> dict:
    """A manifest of `n` indexed files in 100 folders, none of them on disk."""
    files = {
        f"dept-{i % 100:02d}/report-{i:05d}.txt": {"sha256": "0" * 64, "chunks": 3, "bytes": 1000 + i} for i in range(n)
    }
    return {"files": files, "built_at": "2026-12-01T00:00:00Z"}


@pytest.fixture(scope="module")
def rows() -> list[DocumentRow]:
    return [DocumentRow(s, "indexed", r["bytes"], 3, "2026") for s, r in sorted(fake_manifest()["files"].items())]


def table_rows(html: str) -> list[str]:
    """The file names in the table's body rows."""
    return re.findall(r"<tr class=\"[^\"]*\"><td>([^<]*)</td>", html)


def test_listing_of_10k_files_is_quick_and_complete(settings: Settings):
    started = time.perf_counter()
    listed = list_documents(settings, fake_manifest())
    took = time.perf_counter() - started
    assert len(listed) == FILES + 1  # and the folder's own yunnan.txt, not indexed yet
    assert sum(r.state == "missing from folder" for r in listed) == FILES
    assert took < 5, f"listing 10,000 files took {took:.1f} s"


def test_pages_of_50_with_a_summary(rows):
    second = page_of(rows, page=2)
    assert [r.source for r in second.rows] == [r.source for r in rows[50:100]]
    assert second.summary() == "rows 51–100 of 10,000" and second.pages == 200
    html = render.documents_page_html(second)
    assert "rows 51–100 of 10,000 · page 2 of 200" in html
    assert table_rows(html) == [r.source for r in rows[50:100]]  # 50 rows sent, not 10,000


def test_filter_is_a_substring_of_the_path_in_any_case(rows):
    shown = page_of(rows, "DEPT-07/")
    assert shown.matched == 100 and all(r.source.startswith("dept-07/") for r in shown.rows)
    assert shown.summary() == "rows 1–50 of 100 matching 'DEPT-07/' (10,000 files in all)"
    assert page_of(rows, "report-0999").matched == 10  # report-09990 .. report-09999


def test_pages_past_the_end_and_bad_numbers_stay_in_range(rows):
    assert page_of(rows, page=999).page == 200 and page_of(rows, page=999).last == 10_000
    assert page_of(rows, page=-3).page == 1 and page_of(rows, page=None).page == 1
    assert page_of(rows, page=float("nan")).page == 1
    nothing = page_of(rows, "no-such-file")
    assert nothing.rows == [] and nothing.first == 0 and "no file name contains 'no-such-file'" in nothing.summary()
    assert "<table" not in render.documents_page_html(nothing)
    assert page_of([], "").summary() == "no files"


def test_filter_text_is_escaped(rows):
    html = render.documents_page_html(page_of(rows, "<img src=x onerror=alert(1)>"))
    assert "<img" not in html and "&lt;img" in html


def test_handlers_page_through_the_last_listing(make_pipeline, rows):
    handlers = web.Handlers(web.Pipelines(make_pipeline("Tea [1].")))
    handlers._rows = rows  # as if the folder held 10,000 files when the table was last listed
    table, menu, page = handlers.documents_page("", 1, +1)
    assert page == 2 and table_rows(table) == [r.source for r in rows[50:100]]
    assert [c[1] for c in menu.choices] == [r.source for r in rows[50:100]]  # the delete menu: this page's files
    table, _, page = handlers.documents_page("", 200, +1)
    assert page == 200 and "rows 9,951–10,000 of 10,000" in table
    table, _, page = handlers.documents_page("dept-42/", 7, -1)  # a stale page number is clamped first
    assert page == 1 and "of 100 matching &#x27;dept-42/&#x27;" in table


def test_refresh_lists_the_folder_again(make_pipeline, settings: Settings):
    handlers = web.Handlers(web.Pipelines(make_pipeline("Tea [1].")))
    handlers._rows = []
    (settings.docs_dir / "new.txt").write_text("The Zorblat festival is in April.", encoding="utf-8")
    table, menu, *_ = handlers.refresh("default", "new", 1)
    assert table_rows(table) == ["new.txt"] and [c[1] for c in menu.choices] == ["new.txt"]


def test_listing_again_reads_no_unchanged_file(make_pipeline, settings: Settings, monkeypatch: pytest.MonkeyPatch):
    pipeline = make_pipeline("Tea [1].")
    manifest = pipeline.retriever.index.manifest
    reads: list[Path] = []
    real = documents.store.sha256_file

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(documents.store, "sha256_file", counting)
    monkeypatch.setattr(documents, "_SHA_CACHE", {})
    first = list_documents(settings, manifest)
    assert [r.state for r in first] == ["indexed"] and len(reads) == 1
    list_documents(settings, manifest)
    assert len(reads) == 1  # unchanged: the hash is remembered
    (settings.docs_dir / "yunnan.txt").write_text(
        "Changed text, longer than before, so size differs.", encoding="utf-8"
    )
    assert [r.state for r in list_documents(settings, manifest)] == ["changed since indexing"]
