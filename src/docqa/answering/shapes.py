"""What shape of answer a question wants: yes or no first, or every item of a list.

A small model told "name each of them" still often names one item, or restates the question,
although the passage it cites lists every item. So a list answer is checked against its
evidence after generation: when a sentence of the passages enumerates the items the question
asks for and the draft misses some of them, the answer becomes that sentence, quoted and cited.
The quote is the passage's own words, so it is grounded by construction; the choice of sentence
is the risky part, and is guarded like the second attempt (it must address the question).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from docqa.answering.checks import addresses, strip_markers
from docqa.answering.question import split_parts
from docqa.retrieve.bm25 import STOPWORDS, stem, tokenize
from docqa.types import Passage

_AUXILIARY = frozenset(
    "is are was were am do does did can could should would will shall may might must has have had "
    "isn't aren't wasn't weren't don't doesn't didn't can't couldn't shouldn't won't wouldn't hasn't haven't".split()
)
_LEAD_IN = re.compile(r"^(?:(?:and|but|so|also|then|ok|okay|well)[, ]+)+", re.I)
_COUNTS = dict(zip("two three four five six seven eight nine ten".split(), range(2, 11), strict=True))
_NUMBER_WORD = r"(two|three|four|five|six|seven|eight|nine|ten|[2-9])"
# "what three ways", "which two channels", "name the five measures"; not "the two strategies" (a referent).
_COUNT = re.compile(
    rf"\b(?:what|which)\s+{_NUMBER_WORD}\b|^(?:name|list|give)\s+(?:me\s+)?(?:the\s+)?{_NUMBER_WORD}\b", re.I
)
_LIST_ASK = re.compile(
    r"^(?:list|name|enumerate)\b"
    r"|\bwhat\s+(?:are|were)\s+the\b"
    r"|\b(?:which|what)\s+(?:kinds|types|sorts|ways|steps|options|measures|parts|components|things|items|methods|modes|levels|values)\b"
    # "which colour models are ...", "what files does it read": a plural noun asked for with which/what
    r"|\b(?:which|what)\s+(?:[\w.-]+\s+){0,2}?[\w-]*[^su\W]s\s+(?:are|were|do|does|did|can|should|must|will|has|have)\b"
    r"|\b(?:consists?|composed|made\s+up)\s+of\b"
    r"|\bwhat\s+(?:does|do|did|will)\s+.+\b(?:cover|include|list|contain|offer|provide|support)\??$",
    re.I,
)
_BROAD = re.compile(
    r"^(?:summari[sz]e|give\s+(?:me\s+)?(?:an?\s+)?(?:overview|summary)|overview|describe|explain|tell\s+me\s+about)\b"
    r"|\bwhat\s+(?:does|do|did)\s+.{0,80}?\b(?:say|said|write|tell\s+us|cover)\s+(?:about|on|regarding)\b"
    r"|\bwhat\s+is\s+said\s+about\b|\b(?:summary|overview)\s+of\b",
    re.I,
)
YES_NO_HINT = "Begin the answer with Yes or No, then give the fact from the passages that shows it."
LIST_HINT = "Name every item that the passages list."
BROAD_HINT = "Sum up what the passages say on this, one short sentence per point, each with its passage number."


@dataclass(frozen=True)
class Shape:
    yes_no: bool = False
    is_list: bool = False
    count: int | None = None  # how many items the question asks for, when it says
    broad: bool = False  # "what does it say about X", "summarize Y": more passages, a summary

    @property
    def hint(self) -> str:
        """A line for the prompt, after the question ("" for a plain question: the prompt is unchanged)."""
        if self.yes_no:
            return YES_NO_HINT
        if self.broad:
            return BROAD_HINT
        if self.is_list:
            return LIST_HINT
        return ""


def shape(question: str) -> Shape:
    """The answer shape a question asks for.

    >>> shape("Does ALTER SYSTEM write to postgresql.conf?").yes_no
    True
    >>> shape("Is the limit 8 kB or 16 kB?").yes_no  # a choice, not yes or no
    False
    >>> s = shape("Through which two channels should rural talent be built up?"); (s.is_list, s.count)
    (True, 2)
    >>> shape("What does the chapter on backups cover?").is_list, shape("Who wrote it?").is_list
    (True, False)
    >>> shape("What does the manual say about vacuuming?").broad, shape("Summarize the section on WAL.").broad
    (True, True)
    """
    text = " ".join(question.split())
    body = _LEAD_IN.sub("", text)
    first = body.split(" ", 1)[0].lower().strip(",") if body else ""
    yes_no = first in _AUXILIARY and not re.search(r"\bor\b", body, re.I)
    found = _COUNT.search(body)
    word = (found.group(1) or found.group(2)).lower() if found else None
    count = (_COUNTS.get(word) or int(word)) if word else None
    is_list = count is not None or bool(_LIST_ASK.search(body))
    broad = not yes_no and count is None and bool(_BROAD.search(body))
    return Shape(yes_no=yes_no, is_list=is_list and not yes_no and not broad, count=count, broad=broad)


# --- list completion ---------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+(?=[A-Z\"“(])")
_ITEM_SPLIT = re.compile(r"\s*(?:;|,|\band\b|\bor\b|\bas well as\b)\s*", re.I)
_ENUM_LEAD = re.compile(r"^.*?(?::|\binclud(?:e|es|ing)\b|\bsuch as\b|\bnamely\b|\bare\b|\bis\b|\bbetween\b)\s+", re.I)


def _stems(text: str) -> set[str]:
    return {stem(t) for t in tokenize(text) if t not in STOPWORDS}


def items(sentence: str) -> list[str]:
    """The items a sentence enumerates ([] when it enumerates nothing).

    >>> items("The policies draw boundaries between households, villages, and counties.")
    ['households', 'villages', 'counties']
    >>> items("Talent should be built through internal training and external introduction.")
    []
    """
    body = _ENUM_LEAD.sub("", sentence.strip().rstrip(".!?"), count=1)
    if body.count(",") + body.count(";") < 1:
        return []  # "A and B" alone is too often a phrase, not a list
    parts = [p.strip(" \"'()“”‘’") for p in _ITEM_SPLIT.split(body)]
    parts = [p for p in parts if p]
    if len(parts) < 2 or any(len(p.split()) > 8 for p in parts):
        return []  # long clauses between commas: prose, not a list
    return parts


def _candidates(passage: Passage) -> list[str]:
    """Sentences of a passage; a sentence ending in ':' takes the short lines that follow as its list."""
    lines = [
        sentence.strip()
        for line in passage.chunk.text.splitlines()
        for sentence in _SENTENCE_END.split(line)
        if sentence.strip()
    ]
    out = []
    for i, line in enumerate(lines):
        if line.endswith(":"):
            follow = []
            for nxt in lines[i + 1 : i + 13]:
                if len(nxt.split()) > 25:
                    break
                follow.append(nxt.rstrip(".;,"))
            if len(follow) >= 2:
                out.append(f"{line} {'; '.join(follow)}.")
                continue
        out.append(line)
    return out


def complete_list(question: str, answer: str, passages: list[Passage], cited: list[int]) -> tuple[str, int] | None:
    """A quoted sentence naming every item, when the draft `answer` misses items its evidence lists.

    Returns (new answer text with its marker, passage number) or None to keep the draft. The
    sentence must enumerate at least the number of items the question asks for, address the
    question, and name items the draft lacks. Sentences of cited passages win ties.
    """
    want = shape(question)
    if not want.is_list:
        return None
    asked = _stems(question)
    best: tuple[float, str, list[str], int] | None = None
    for p in passages:
        for sentence in _candidates(p):
            found = items(sentence)
            if not max(2, want.count or 2) <= len(found) <= (want.count or 99) + 2 or not addresses(question, sentence):
                continue
            score = len(asked & _stems(sentence)) / max(1, len(asked)) + (0.25 if p.n in cited else 0.0)
            if best is None or score > best[0]:
                best = (score, sentence, found, p.n)
    if best is None:
        return None
    _, sentence, found, n = best
    said = _stems(strip_markers(answer))
    if all(len(_stems(it) & said) * 2 >= max(1, len(_stems(it))) for it in found):
        return None  # the draft already names every item of the best list
    return f"{sentence.rstrip()} [{n}]", n


# --- multi-part completion ---------------------------------------------------------------------

_COMPARING = re.compile(r"\b(?:compar\w*|differ\w*|versus|vs\.?|contrast\w*|whereas)\b", re.I)
_CLAUSES = re.compile(
    r"[;?]\s+\S|,?\s+and\s+(?:(?:by|in|for|from|to|at|on|with|since|until|after|before|under)\s+)?"
    r"(?:what|which|how|why|when|where|who|whose|is|are|does|do|did|can|was|were)\b",
    re.I,
)
# Words that frame a part rather than name what it is about ("which year", "what does the essay say").
_ASKS = re.compile(
    r"\?\s*$|^\W*(?:(?:by|in|for|from|to|at|on|with|and)\s+)?(?:what|which|how|why|when|where|who|whose|whom|is|are|was"
    r"|were|do|does|did|can|could|should|will|would|has|have)\b",
    re.I,
)
_NOT_TERMS = frozenset(
    stem(w)
    for w in "compare compared differ differs difference different each both versus year date time "
    "say says said mention mentions according document documents essay manual passage text".split()
)


_YEAR = re.compile(r"\b(?:what|which)\s+year\b|\bin\s+what\s+year\b", re.I)
_WHEN = re.compile(r"\b(?:when|what\s+year|which\s+year|what\s+date)\b", re.I)
_HOW_MUCH = re.compile(r"\bhow\s+(?:many|much|long|large|big|often|old|far|high)\b|\bwhat\s+percentage\b", re.I)
_NUMBER_WORDS = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand)\b", re.I)
_MONTHS = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.I)


def fits(question: str, sentence: str) -> bool:
    """Could the sentence answer the question's kind: a time for "when", an amount for "how many"?

    >>> fits("When were the terraces listed?", "They were listed in 2013."), fits("When?", "They are large.")
    (True, False)
    """
    if _HOW_MUCH.search(question):
        return bool(_NUMBER_WORDS.search(sentence))
    if _YEAR.search(question):
        return bool(re.search(r"\b(?:1[5-9]|20|21)\d\d\b", sentence))
    if _WHEN.search(question):
        return bool(re.search(r"\d", sentence) or _MONTHS.search(sentence))
    return True


def _terms(text: str) -> set[str]:
    return _stems(text) - _NOT_TERMS


def _contexts(passages: list[Passage]) -> Iterator[tuple[Passage, str, set[str]]]:
    """Each passage sentence with the stems of its context: itself, the sentence before, the heading."""
    for p in passages:
        sentences = _candidates(p)
        heading = _stems(p.chunk.heading or "")
        for i, sentence in enumerate(sentences):
            yield p, sentence, _stems(sentence) | _stems(sentences[i - 1] if i else "") | heading


def answered(part: str, own: set[str], answer: str, passages: list[Passage]) -> bool:
    """Does the draft answer this part: half its key words, and for "when" or "how many" a number
    that a passage states next to those key words (not one taken from another sentence)?"""
    said = _stems(strip_markers(answer))
    if len(own & said) * 2 < len(own):
        return False
    if fits(part, "") or not fits(part, answer):
        return fits(part, answer)  # no time or amount asked for (True), or none given (False)
    numbers = {t for t in tokenize(strip_markers(answer)) if t[0].isdigit()} - set(tokenize(part))
    if not numbers:
        return True  # a time in words ("in March"): nothing to look up
    return any(numbers & context and len(own & context) * 2 >= len(own) for _, _, context in _contexts(passages))


def complete_parts(question: str, answer: str, passages: list[Passage]) -> list[tuple[str, int]]:
    """Sentences to add for the parts of a multi-part or comparison question the draft leaves out.

    A part counts as answered when the draft holds half of its key words (and, for a time or an
    amount, one the passages state with them: see `answered`). For a part left out,
    the passage sentence that holds most of them (at least half, and the part's numbers) is
    returned with its passage number, to be quoted after the draft.
    """
    parts = split_parts(question)
    if len(parts) < 2 or not (_CLAUSES.search(question) or _COMPARING.search(question)):
        return []  # "A and B" inside a plain question is not two questions
    said = _stems(strip_markers(answer))
    shared = set.intersection(*(_terms(p) for p in parts))  # words every part has: the question's frame
    added: list[tuple[str, int]] = []
    for part in parts:
        own = _terms(part) - shared or _terms(part)
        if not own or not _ASKS.search(part) or answered(part, own, answer, passages):
            continue  # nothing to look for, not a question ("Please be brief."), or answered
        best: tuple[tuple[float, float], str, int] | None = None
        for p in passages:
            sentences = _candidates(p)
            for i, sentence in enumerate(sentences):
                words = _stems(sentence)
                if len(words & said) >= 0.7 * len(words) or not fits(part, sentence):
                    continue  # the draft says this already, or it is not the kind of answer asked for
                # "They were listed in 2013" answers "when were the terraces listed?" after a
                # sentence about the terraces: the previous sentence and the heading count too.
                if not own & words:
                    continue  # the sentence itself must name something the part asks about
                context = words | _stems(sentences[i - 1] if i else "") | _stems(p.chunk.heading or "")
                if any(t[0].isdigit() and t not in context for t in own):
                    continue
                score = (len(own & context) / len(own), len(own & words) / len(own))
                # Half the key words in the sentence itself, or three quarters with its context.
                if (score[1] >= 0.5 or score[0] >= 0.75) and (best is None or score > best[0]):
                    best = (score, sentence, p.n)
        if best is not None and best[1] not in {s for s, _ in added}:
            added.append((best[1], best[2]))
            said |= _stems(best[1])
    return added


# --- acronyms ----------------------------------------------------------------------------------

_STANDS_FOR = re.compile(
    r"\bwhat\s+(?:does|do|did|is)\s+(?:the\s+)?(?:acronym\s+|abbreviation\s+|initialism\s+|name\s+)?"
    r"[\"'“‘]?(?P<a>[A-Za-z][\w.+-]*?[A-Za-z0-9])[\"'”’]?\s+(?:stand\s+for|short\s+for|abbreviate|mean)\b"
    r"|\b(?:expand|spell\s+out)\s+(?:the\s+)?(?:acronym\s+|abbreviation\s+)?[\"'“‘]?(?P<b>[A-Za-z][\w.+-]*?[A-Za-z0-9])\b"
    r"|\bwhat\s+is\s+[\"'“‘]?(?P<c>[A-Za-z][\w.+-]*?[A-Za-z0-9])[\"'”’]?\s+short\s+for\b",
    re.I,
)


def acronym_asked(question: str) -> str | None:
    """The acronym whose long form the question asks for, if it asks for one.

    >>> acronym_asked("What does ASN.1 stand for?"), acronym_asked("What is WAL short for?")
    ('ASN.1', 'WAL')
    >>> acronym_asked("What does the server do?") is None
    True
    """
    m = _STANDS_FOR.search(" ".join(question.split()))
    if not m:
        return None
    short = m.group("a") or m.group("b") or m.group("c")
    letters = [ch for ch in short if ch.isalpha()]
    if len(letters) < 2 or sum(ch.isupper() for ch in letters) < 2:
        return None  # "what does the manual mean": not an acronym
    return short


def long_form(text: str, short: str) -> str | None:
    """The long form a text gives for `short`, written "Long Form (SHORT)".

    The short form's letters are matched right to left in the words before the parenthesis (the
    first letter at a word's start); the long form runs from that word to the parenthesis. At most
    min(n + 5, 2n) words for n letters, as in Schwartz and Hearst's algorithm.

    >>> long_form("GNU Libtasn1 Abstract Syntax Notation One (ASN.1) library", "ASN.1")
    'Abstract Syntax Notation One'
    >>> long_form("Writes go to the write-ahead log (WAL) first.", "WAL")
    'write-ahead log'
    >>> long_form("The WAL is flushed (WAL) often.", "WAL") is None
    True
    """
    letters = [ch.lower() for ch in short if ch.isalpha()]
    for m in re.finditer(rf"\(\s*{re.escape(short)}\s*\)", text):
        words = text[: m.start()].split()[-min(len(letters) + 5, 2 * len(letters)) :]
        before = " ".join(words)
        i = len(before) - 1
        for k in range(len(letters) - 1, -1, -1):
            while i >= 0 and (before[i].lower() != letters[k] or (k == 0 and i > 0 and before[i - 1].isalnum())):
                i -= 1
            if i < 0:
                break
            if k > 0:
                i -= 1
        if i < 0:
            continue
        start = before.rfind(" ", 0, i) + 1
        found = before[start:].strip(" ,;:\"'“”")
        named_in_it = short.lower() in re.findall(r"[\w.+-]+", found.lower())
        if not named_in_it and (len(found.split()) >= 2 or "-" in found):
            return found
    return None


def expand_acronym(question: str, passages: list[Passage]) -> tuple[str, int] | None:
    """For "what does X stand for?": the sentence giving X's long form, from the first passage that
    spells it out, and that passage's number; None when the question asks no such thing or no
    passage spells it out."""
    short = acronym_asked(question)
    if short is None:
        return None
    for p in passages:
        found = long_form(p.chunk.text, short)
        if found:
            return f"{short} stands for {found} [{p.n}].", p.n
    return None
