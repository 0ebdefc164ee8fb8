"""Less to prefill: shorter passages for the prompt, without losing the evidence the answer needs.

On a CPU the prompt's prefill is compute-bound and about linear in its tokens, so every token the
passages do not need is time to the first word. Two levers, each a pure function over the retrieved
passages (no model), parameterised so `bench/prefill.py` can sweep them:

- `trim_sentences`: keep the units of a passage that share content terms with the question (docqa's
  BM25 tokenizer, stemmed), with their neighbours and the passage's first unit; cut the rest, marking
  each cut with " … ". A unit is a sentence of prose, or a whole line where the text is a list or a
  table (a row is never split), or a line of a list led by a kept line that ends with ":".
- `dynamic_top_k`: drop passages whose dense cosine falls far below the best one's, keeping at least
  `min_keep` (the retriever's first ones), and never for a multi-part, comparison or broad question.

`trim_prompt` applies both. Every function returns new `Passage` objects (`dataclasses.replace`) and
leaves the caller's alone; the text changed is the prompt's copy, so the checks that judge the draft
against the prompted passages should be given the same trimmed list.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, replace

from docqa.answering.question import split_parts
from docqa.answering.shapes import shape
from docqa.retrieve.bm25 import stem, tokenize
from docqa.types import Passage

CUT = " … "  # marks text left out inside a line
LINE_CUT = "\n…\n"  # marks text left out across lines

# Words that frame a question rather than name what it is about: they match every passage.
FRAME_WORDS = frozenset(
    stem(w)
    for w in "say says said mention mentions according document documents essay manual passage passages text "
    "describe explain tell summarize summarise overview summary about regarding".split()
)
# A line that is an item of a list or a row of a table: bullet, number, option, pipe or tab columns.
_ROW = re.compile(r"^\s*(?:[-*•·▪◦+—–]\s|\d{1,3}[.)]\s|[a-z][.)]\s|-{1,2}[\w]|\|)|\t|\S\s{3,}\S|\|.*\|", re.I)
# A sentence end inside a line: ., ! or ? (and closing quotes/brackets) then space and a capital,
# digit, quote or bracket. "e.g. the" and "5.2 kB" do not end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+(?=[A-Z0-9\"“(\[])")


@dataclass(frozen=True)
class Unit:
    """A piece of a passage that is kept or cut whole: text[start:end] of the passage text."""

    start: int
    end: int
    row: bool  # a list item or table row (a whole line)


def units(text: str) -> list[Unit]:
    """Split a passage's text into sentences of prose and whole lines of lists and tables.

    A line is a row when it looks like a list item or table row, or when it sits in a block (lines
    between blank lines) of three or more short lines. A prose line is cut into sentences; a
    sentence may run across line breaks (hard-wrapped PDF text), a row never is cut.

    >>> t = "Intro. It has rows:\\n- a 1\\n- b 2\\nEnd here."
    >>> [t[u.start:u.end] for u in units(t)]
    ['Intro.', 'It has rows:', '- a 1', '- b 2', 'End here.']
    """
    lines = _lines(text)
    rows = _row_lines(text, lines)
    out: list[Unit] = []
    open_start: int | None = None  # start of a prose sentence still running over a line break
    for (start, end), row in zip(lines, rows, strict=True):
        if row or start == end:
            if open_start is not None:
                out.append(Unit(open_start, _prev_end(text, start), False))
                open_start = None
            if start < end:
                out.append(Unit(start, end, True))
            continue
        pos = start if open_start is None else open_start
        for m in _SENTENCE_END.finditer(text, start, end):
            out.append(Unit(pos, m.start(), False))
            pos = m.end()
        rest = text[pos:end].rstrip()
        if rest.endswith((".", "!", "?", ":", '."', ".)", ".”")) or _blank_after(lines, end):
            out.append(Unit(pos, end, False))
            open_start = None
        else:
            open_start = pos
    if open_start is not None:
        out.append(Unit(open_start, len(text.rstrip()), False))
    return [u for u in out if text[u.start : u.end].strip()]


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, without its newline and trailing spaces; blank lines have start == end."""
    spans, pos = [], 0
    for line in text.split("\n"):
        stripped = line.rstrip()
        lead = len(stripped) - len(stripped.lstrip())
        spans.append((pos + lead, pos + len(stripped)) if stripped else (pos, pos))
        pos += len(line) + 1
    return spans


def _row_lines(text: str, lines: list[tuple[int, int]]) -> list[bool]:
    """Which lines are rows: list items and table rows, and every line of a block of 3+ short lines."""
    rows = [start < end and bool(_ROW.search(text[start:end])) for start, end in lines]
    block: list[int] = []
    for i, (start, end) in enumerate([*lines, (0, 0)]):
        if start < end:
            block.append(i)
            continue
        prose_like = sum(_ends_sentence(text[lines[j][0] : lines[j][1]]) for j in block)
        short = [j for j in block if len(text[lines[j][0] : lines[j][1]].split()) <= 8]
        if len(block) >= 3 and len(short) * 4 >= len(block) * 3 and prose_like * 2 < len(block):
            for j in block:  # a short line holding two sentences is still prose
                rows[j] = rows[j] or not _SENTENCE_END.search(text, lines[j][0], lines[j][1])
        block = []
    return rows


def _ends_sentence(line: str) -> bool:
    return line.rstrip().endswith((".", "!", "?"))


def _blank_after(lines: list[tuple[int, int]], end: int) -> bool:
    for i, (_, e) in enumerate(lines):
        if e == end and lines[i][0] < e:
            return i + 1 >= len(lines) or lines[i + 1][0] == lines[i + 1][1]
    return False


def _prev_end(text: str, start: int) -> int:
    return len(text[:start].rstrip())


def question_terms(question: str) -> set[str]:
    """The question's content terms: BM25 tokens (stemmed, no stopwords) less the words that frame it.

    >>> sorted(question_terms("What does the manual say about vacuum cost limits?"))
    ['cost', 'limit', 'vacuum']
    """
    terms = set(tokenize(question))
    return (terms - FRAME_WORDS) or terms


def term_weights(terms: set[str], passages: list[Passage]) -> dict[str, float]:
    """An IDF for each question term over the units of the passages: a term in every unit weighs ~0.

    Terms in the passages' headings count as already said (the label shows the heading), so they
    weigh less too.
    """
    docs: list[set[str]] = []
    for p in passages:
        text = p.chunk.text
        docs += [set(tokenize(text[u.start : u.end])) for u in units(text)]
    df = Counter(t for d in docs for t in d & terms)
    n = max(1, len(docs))
    return {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}


@dataclass(frozen=True)
class TrimOptions:
    """How `trim_sentences` trims. The bench sweeps these; the defaults are its recommendation.

    - `neighbours`: units kept on each side of a unit that matters.
    - `min_weight`: a unit matters when the IDF weight of the question terms it holds reaches this
      (0 < w: any shared term counts; a term in every unit of the passages weighs about 0.1).
    - `top_min_units`: the top passage keeps at least this many units (its best, then its first).
    - `keep_first`: always keep a passage's first unit (it often is or follows its heading).
    - `min_units`: passages of at most this many units are not trimmed.
    - `skip_broad`: do not trim for a broad question ("summarize", "what does it say about X").
    - `list_rows`: a kept unit ending with ":" keeps up to this many list rows that follow it.
    - `list_neighbours`: `neighbours` for a list question ("what three things ...": items in prose
      often share few words with the question, "Second, the content of the two is in harmony.").
    """

    neighbours: int = 1
    min_weight: float = 0.3
    top_min_units: int = 3
    keep_first: bool = True
    min_units: int = 3
    skip_broad: bool = True
    list_rows: int = 12
    list_neighbours: int = 2


def trim_passage(
    passage: Passage, weights: dict[str, float], options: TrimOptions = TrimOptions(), min_keep: int = 0
) -> Passage:
    """One passage with only its units that matter (and their context); the passage itself is untouched.

    `weights` are the question terms' weights (`term_weights`); `min_keep` is the least number of
    units to keep (the top passage's floor).
    """
    text = passage.chunk.text
    parts = units(text)
    if len(parts) <= options.min_units:
        return replace(passage)
    scores = []
    for u in parts:
        found = set(tokenize(text[u.start : u.end]))
        scores.append(sum(w for t, w in weights.items() if t in found))
    keep = set()
    for i, s in enumerate(scores):
        if s >= options.min_weight and s > 0:
            keep.update(range(max(0, i - options.neighbours), min(len(parts), i + options.neighbours + 1)))
    if options.keep_first:
        keep.add(0)
    for i in sorted(keep):  # a kept lead-in ("... the following:") keeps the rows of its list
        if text[parts[i].start : parts[i].end].rstrip().endswith(":"):
            j = i + 1
            while j < len(parts) and j <= i + options.list_rows and parts[j].row:
                keep.add(j)
                j += 1
    for i in sorted(range(len(parts)), key=lambda i: (-scores[i], i)):
        if len(keep) >= min(min_keep, len(parts)):
            break
        keep.add(i)
    if len(keep) >= len(parts):
        return replace(passage)
    return replace(passage, chunk=replace(passage.chunk, text=join_kept(text, parts, keep)))


def join_kept(text: str, parts: list[Unit], keep: set[int]) -> str:
    """The kept units in order, with the original text between neighbours and a cut mark over gaps."""
    out: list[str] = []
    last: int | None = None
    for i in sorted(keep):
        u = parts[i]
        if last is None:
            if i > 0:
                out.append(LINE_CUT.lstrip() if "\n" in text[: u.start] else CUT.lstrip())
        elif i == last + 1:
            out.append(text[parts[last].end : u.start])
        else:
            gap = text[parts[last].end : u.start]
            out.append(LINE_CUT if "\n" in gap else CUT)
        out.append(text[u.start : u.end])
        last = i
    if last is not None and last < len(parts) - 1:
        out.append(LINE_CUT.rstrip() if "\n" in text[parts[last].end :] else CUT.rstrip())
    return "".join(out)


def trim_sentences(question: str, passages: list[Passage], options: TrimOptions = TrimOptions()) -> list[Passage]:
    """The passages with only the sentences (or list and table rows) that matter for the question.

    Order and numbering are kept; the top passage keeps at least `options.top_min_units` units; a
    broad question's passages are kept whole when `options.skip_broad`. Returns new passages.
    """
    if not passages or (options.skip_broad and shape(question).broad):
        return [replace(p) for p in passages]
    if shape(question).is_list and options.list_neighbours > options.neighbours:
        options = replace(options, neighbours=options.list_neighbours)
    weights = term_weights(question_terms(question), passages)
    return [trim_passage(p, weights, options, options.top_min_units if j == 0 else 0) for j, p in enumerate(passages)]


# Two question words ("which meeting ..., and into which document ...") or "both A and B": more than
# one thing asked, even where `split_parts` finds no clause to split at.
_ASK_WORD = re.compile(r"\b(?:what|which|how|why|when|where|who|whose|whom)\b", re.I)
_BOTH = re.compile(r"\bboth\b.+\band\b", re.I)


def protected(question: str, lists: bool = True) -> bool:
    """A question whose passages are never dropped: multi-part or comparison (a search per part, or
    two question words, or "both ... and"), broad, and (with `lists`) a list question, whose items
    are often spread over several passages.

    >>> protected("Which meeting adopted the plan, and into which document was it written?")
    True
    >>> protected("Which meeting adopted the plan?")
    False
    """
    want = shape(question)
    several = bool(split_parts(question)) or len(_ASK_WORD.findall(question)) >= 2 or bool(_BOTH.search(question))
    return several or want.broad or (lists and want.is_list)


def lexical_weight(passage: Passage, weights: dict[str, float]) -> float:
    """The IDF weight of the question terms a passage's text (and heading) holds."""
    found = set(tokenize(passage.chunk.search_text))
    return sum(w for t, w in weights.items() if t in found)


def dynamic_top_k(
    question: str,
    passages: list[Passage],
    gap: float = 0.05,
    ratio: float = 0.0,
    min_keep: int = 2,
    lexical_keep: float = 0.75,
    protect_lists: bool = True,
    renumber: bool = True,
) -> list[Passage]:
    """The passages less those whose dense cosine (`Passage.score`) falls far below the best one's.

    A passage after the first `min_keep` (in the retriever's order) is dropped when its cosine is
    more than `gap` below the best cosine, or below `ratio` times it, unless (`lexical_keep` > 0)
    it holds at least `lexical_keep` times the question-term weight of the best-matching passage:
    the lexical half of retrieval put it there, often for an exact name or number the embedder
    misses. Nothing is dropped for a multi-part, comparison or broad question, nor (`protect_lists`)
    a list question. With `renumber`, the kept passages are numbered 1, 2, ... again (the prompt's
    numbers and the citations follow the list).
    """
    if len(passages) <= min_keep or protected(question, protect_lists):
        return [replace(p) for p in passages]
    best = max(p.score for p in passages)
    lexical = [0.0] * len(passages)
    if lexical_keep > 0:
        weights = term_weights(question_terms(question), passages)
        lexical = [lexical_weight(p, weights) for p in passages]
    top_lexical = max(lexical)
    kept = [
        p
        for j, p in enumerate(passages)
        if j < min_keep
        or (p.score >= best - gap and (ratio <= 0 or p.score >= ratio * best))
        or (lexical_keep > 0 and top_lexical > 0 and lexical[j] >= lexical_keep * top_lexical)
    ]
    return [replace(p, n=j + 1) if renumber else replace(p) for j, p in enumerate(kept)]


def trim_prompt(
    question: str,
    passages: list[Passage],
    options: TrimOptions | None = TrimOptions(),
    gap: float | None = 0.05,
    min_keep: int = 2,
    lexical_keep: float = 0.75,
) -> list[Passage]:
    """Both levers: `dynamic_top_k` (unless `gap` is None), then `trim_sentences` (unless `options` is None).

    The defaults are what bench/prefill.py measured as free of evidence loss on the essay, pgdocs
    and pdfs collections: passages 3+ dropped below the best cosine - 0.05 unless they hold 3/4 of
    the best lexical weight, then sentences trimmed with one neighbour each side.
    """
    out = [replace(p) for p in passages]
    if gap is not None:
        out = dynamic_top_k(question, out, gap=gap, min_keep=min_keep, lexical_keep=lexical_keep)
    if options is not None:
        out = trim_sentences(question, out, options)
    return out
