#!/usr/bin/env python3
"""Check every evidence span of every collection against the documents' extracted text.

For each eval/collections/NAME/ (and its slice/), loads docs/ (or the slice's own files), extracts
the text, collapses whitespace to single spaces, and checks that

  * every evidence span of an answerable question is a verbatim substring of the text of the
    question's `source` file (and, for a PDF, of its `page`, 1-based: one number for all the
    spans, or a list with one page per span);
  * answerable questions have expected facts and evidence, refusals have neither;
  * ids are unique, kinds are known, every key is one the runner knows.

Text extraction, two ways each, and a span must be found in both:
  HTML: (a) the visible text, tags stripped (BeautifulSoup get_text()), and (b) docqa's reader's way
        (leaf blocks, get_text(" ", strip=True), which puts a space at every tag boundary);
  PDF:  (a) `pdftotext` (poppler-utils) and (b) pypdf's extract_text() (docqa's reader).
The span must be a verbatim substring of (a). In (b) it is looked up with all whitespace removed from
both, since docqa's reader puts a space at every inline-tag boundary ("“ Smart ” mode") and pypdf
spaces words differently from pdftotext. A span found by (a) but not (b) is reported as a warning,
not a failure; with --strict it fails.

Needs beautifulsoup4 and pypdf (docqa's own dependencies) and pdftotext.
Usage: python eval/collections/check_evidence.py [--strict] [COLLECTION_DIR ...]
Exit status 1 when any check fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = {"id", "question", "answerable", "kind", "expected", "evidence", "forbidden", "history", "source", "page"}
ANSWER_KINDS = {"fact", "number", "list", "definition", "yes_no", "multi_part", "comparison", "follow_up", "about"}
REFUSAL_KINDS = {"out_of_scope", "unstated", "near_miss", "false_premise"}


def collapse(text: str) -> str:
    return " ".join(text.split())


@cache
def squeeze(text: str) -> str:
    return "".join(text.split())


@cache
def html_texts(path: Path) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    plain = collapse(soup.get_text())
    blocks = {
        "p",
        "div",
        "li",
        "br",
        "tr",
        "section",
        "article",
        "blockquote",
        "pre",
        "td",
        "th",
        "dt",
        "dd",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
    parts = []
    for el in soup.find_all(list(blocks)):
        if el.find(list(blocks)):
            continue
        parts.append(collapse(el.get_text(" ", strip=True)))
    return plain, " ".join(p for p in parts if p)


@cache
def pdf_pages(path: Path) -> tuple[list[str], list[str]]:
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    poppler = [collapse(p) for p in out.split("\f")]
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font-encoding chatter
    reader = PdfReader(str(path))
    pypdf = [collapse(p.extract_text() or "") for p in reader.pages]
    return poppler, pypdf


def texts_for(path: Path, page: int | None) -> tuple[str, str]:
    if path.suffix.lower() == ".pdf":
        poppler, pypdf = pdf_pages(path)
        if page is None:
            return " ".join(poppler), " ".join(pypdf)
        return poppler[page - 1], pypdf[page - 1]
    return html_texts(path)


def check_file(qfile: Path, docs: Path, strict: bool) -> tuple[int, int, int]:
    """Returns (spans checked, failures, warnings)."""
    spans = fails = warns = 0
    seen: set[str] = set()

    def fail(qid: str, msg: str) -> None:
        nonlocal fails
        fails += 1
        print(f"FAIL {qfile.relative_to(HERE)} {qid}: {msg}")

    for n, line in enumerate(qfile.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        qid = q.get("id", f"line {n}")
        if qid in seen:
            fail(qid, "duplicate id")
        seen.add(qid)
        if set(q) - KEYS:
            fail(qid, f"unknown keys {sorted(set(q) - KEYS)}")
        kinds = ANSWER_KINDS if q["answerable"] else REFUSAL_KINDS
        if q.get("kind") not in kinds:
            fail(qid, f"kind {q.get('kind')!r} not one of {sorted(kinds)}")
        if not q["answerable"]:
            if q.get("expected") or q.get("evidence"):
                fail(qid, "a refusal has expected facts or evidence")
            continue
        if not q.get("expected") or not q.get("evidence") or any(not alts for alts in q["expected"]):
            fail(qid, "answerable without expected facts or evidence")
        if q.get("kind") == "yes_no" and q["expected"][0][0].lower() not in {"yes", "no"}:
            fail(qid, "yes_no: the first expected fact must be yes or no")
        if q.get("kind") == "follow_up" and not q.get("history"):
            fail(qid, "follow_up without history")
        sources = q.get("source")
        if not sources:
            fail(qid, "no source")
            continue
        sources = sources if isinstance(sources, list) else [sources]
        page = q.get("page")
        if isinstance(page, list) and len(page) != len(q["evidence"]):
            fail(qid, "a list of pages must give one page per evidence span")
            continue
        for i, span in enumerate(q["evidence"]):
            # `page` is one page for all the spans, or a list with one page per span
            pages = [page[i] if isinstance(page, list) else page] * len(sources)
            spans += 1
            words = len(span.split())
            if not 3 <= words <= 45:
                warns += 1
                print(f"WARN {qfile.relative_to(HERE)} {qid}: span of {words} words")
            found_a = found_b = False
            for src, pg in zip(sources, pages, strict=True):
                path = docs / src
                if not path.exists():
                    fail(qid, f"source {src} not in {docs}")
                    continue
                a, b = texts_for(path, pg)
                found_a |= span in a
                found_b |= squeeze(span) in squeeze(b)
            if not found_a:
                fail(qid, f"span not found in {sources} page {pages}: {span!r}")
            elif not found_b:
                if strict:
                    fail(qid, f"span found by the plain extractor only: {span!r}")
                else:
                    warns += 1
                    print(f"WARN {qfile.relative_to(HERE)} {qid}: span not in docqa's reader text: {span!r}")
    return spans, fails, warns


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    dirs = [Path(a).resolve() for a in argv if a != "--strict"] or sorted(
        p for p in HERE.iterdir() if (p / "questions.jsonl").exists()
    )
    total = [0, 0, 0]
    for coll in dirs:
        runs = []
        if (coll / "docs").is_dir():
            runs.append((coll / "questions.jsonl", coll / "docs"))
        else:
            print(f"SKIP {coll.name}/questions.jsonl: no docs/ (run {coll.name}/fetch.sh)")
        if (coll / "slice" / "questions.jsonl").exists():
            runs.append((coll / "slice" / "questions.jsonl", coll / "slice" / "docs"))
        for qfile, docs in runs:
            r = check_file(qfile, docs, strict)
            print(f"{qfile.relative_to(HERE)}: {r[0]} spans, {r[1]} failed, {r[2]} warnings")
            total = [t + x for t, x in zip(total, r, strict=True)]
    print(f"total: {total[0]} spans, {total[1]} failed, {total[2]} warnings")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
