"""The answering pipeline: question -> retrieval -> gate -> generation -> judge -> cited answer.

`Pipeline.stream` is the orchestration alone; each step lives in its own module:
`question` (cleaning, follow-ups), `budget` (time budget), `prompting` (the prompt and its
injection defences), `checks` (the gate, the judge, grounded citations).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from docqa.answering import checks
from docqa.answering.budget import SpeedModel, fit_budget
from docqa.answering.prompting import Prompts
from docqa.answering.question import History, clean_question, needs_rewrite, paired_with_last, rewrite, split_parts
from docqa.answering.shapes import complete_list, complete_parts, expand_acronym, shape
from docqa.answering.trim import dynamic_top_k, trim_sentences
from docqa.errors import DocsError
from docqa.generate import Generator, count_text_tokens, load_generator
from docqa.generate.weights import log
from docqa.ingest.embeddings import Embedder, check_embedder
from docqa.ingest.indexer import IndexReport, Progress
from docqa.retrieve.fusion import Mode, Retrieval
from docqa.retrieve.parts import cover_parts
from docqa.settings import Settings, apply_runtime_settings
from docqa.stores import SearchIndex, open_retriever, update_index
from docqa.types import Answer, Citation, Passage, StreamEvent

ABSTAIN_TEXT = "The documents don't answer this question."
NOTHING_INDEXED_TEXT = (
    "There is nothing to search yet: no documents are indexed. Add some in the Documents tab (upload), "
    "or put files in the documents folder and run `docqa index`, then ask again."
)


class NoIndexYet:
    """The `SearchIndex` of a folder with nothing indexed yet (first use): `stream` says how to add documents."""

    def __init__(self, error: DocsError, embedder: Embedder) -> None:
        self.error, self.reason = error, f"nothing is indexed yet: {error.cause}"
        self.index, self.chunks = self, []
        self.manifest: dict[str, Any] = {"files": {}, "embed_model": embedder.name, "dim": embedder.dim}

    def retrieve(self, query: str, top_k: int = 4, mode: Mode = "hybrid") -> Retrieval:
        return Retrieval([], 0.0)


@dataclass
class Turn:
    """One question on its way through the pipeline: what was asked, and what was measured."""

    question: str  # as asked
    text: str  # cleaned
    standalone: str | None = None  # the rewritten follow-up, when there was one
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def query(self) -> str:
        """What retrieval and the model see: the standalone form of a follow-up, else the question."""
        return self.standalone or self.text

    def elapsed_ms(self) -> float:
        return ms(self.started)


@dataclass
class Draft:
    """What the model wrote for a turn, before the checks."""

    text: str
    usage: dict[str, int]


class Pipeline:
    """Answers questions from one index with one generator. Build it with `from_settings`."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        retriever: SearchIndex,
        prompts: Prompts,
        generator: Generator | None = None,
        load: Callable[[], Generator] | None = None,
    ) -> None:
        """`generator` is used as given; otherwise `load()` builds one on first use."""
        if generator is None and load is None:
            raise ValueError("give a generator or a function that loads one")
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.prompts = prompts
        self._generator = generator
        self._load = load
        self.speed = SpeedModel()
        self.last_index_report: IndexReport | None = None
        # Each document's tokens, for `checks.foreign_source`: built on first use, per index version.
        self._texts_of: weakref.ref[SearchIndex] | None = None
        self._texts: dict[str, list[str]] = {}
        self._forms: dict[str, set[str]] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        progress: Progress | None = None,
    ) -> Pipeline:
        """Load (and with auto_index, first update) the index; the generator loads on first use."""
        settings = settings or Settings.load()
        apply_runtime_settings(settings)
        if embedder is None:
            from docqa.ingest.embeddings import embedder_from_settings

            embedder = embedder_from_settings(settings)
        report, retriever = None, None
        if settings.auto_index:
            try:
                report = update_index(settings, embedder, progress=progress, lock_wait_s=600)
                log_index_report(report)
            except DocsError as exc:  # an empty folder (first use) serves "nothing to search yet"
                retriever = nothing_indexed(settings, embedder, exc)
        if retriever is None:
            retriever = open_retriever(settings, embedder)  # FAISS or pgvector, as settings.vector_store says
            check_embedder(retriever.index.manifest, embedder)
        pipeline = cls(
            settings, embedder, retriever, Prompts(settings.prompts_dir), generator, lambda: load_generator(settings)
        )
        pipeline.last_index_report = report
        return pipeline

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            assert self._load is not None
            self._generator = self._load()
        return self._generator

    @property
    def model_name(self) -> str:
        if self._generator is not None:
            return self._generator.name
        return self.settings.llm_model or f"profile:{self.settings.profile}"

    def reindex(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Bring the index up to date with the docs folder and answer from the new one."""
        try:
            report = update_index(self.settings, self.embedder, rebuild=rebuild, progress=progress, lock_wait_s=600)
        except DocsError as exc:  # the last document was deleted: say so, and answer "nothing to search"
            self.retriever = nothing_indexed(self.settings, self.embedder, exc)
            raise
        self.retriever = open_retriever(self.settings, self.embedder)
        self.last_index_report = report
        return report

    def ask(self, question: str, history: History | None = None, **options: Any) -> Answer:
        """Answer one question. `options`: top_k, retrieval, max_new_tokens, retrieval_only (see `stream`)."""
        for event in self.stream(question, history, **options):
            if event.answer is not None:
                return event.answer
        raise AssertionError("stream() always ends with an Answer")  # pragma: no cover

    def stream(
        self,
        question: str,
        history: History | None = None,
        *,
        top_k: int | None = None,
        retrieval: Mode | None = None,
        max_new_tokens: int | None = None,
        retrieval_only: bool = False,
    ) -> Iterator[StreamEvent]:
        """Yield the draft's checked sentences as deltas as the model writes, then the checked `Answer` last.

        A sentence is shown only once complete and checked (`generate`); the final answer can still
        differ from the deltas (it replaces them): a later sentence failed, or list or part completion
        added to it.

        With `retrieval_only`, stop after the gate: the answer is empty, and abstained only if the
        gate refused (what `docqa eval --retrieval-only` scores).
        """
        retriever = self.retriever  # one index version for the whole turn, whatever a re-index swaps in
        if isinstance(retriever, NoIndexYet):
            turn = self.start_turn(question, None)  # a question is still checked; no model call
            yield StreamEvent(NOTHING_INDEXED_TEXT)
            yield StreamEvent(answer=self.finish(turn, [], NOTHING_INDEXED_TEXT, retriever.reason))
            return
        turn = self.start_turn(question, history)
        found = self.retrieve(turn, top_k, retrieval, retriever)
        reason = checks.gate(
            turn.query,
            found,
            self.settings.min_score,
            lambda name: named_in_sources(retriever, found, name),
            rare=lambda word: self.embedder.count_tokens(word) >= 3,
        )
        if reason is not None or retrieval_only:
            text = ABSTAIN_TEXT if reason is not None else ""
            if text:
                yield StreamEvent(text)
            yield StreamEvent(answer=self.finish(turn, found.passages, text, reason))
            return
        max_new = max_new_tokens or self.settings.max_new_tokens
        draft = yield from self.generate(turn, found.passages, max_new)
        checked, citations, reason = checks.judge(draft.text, found.passages, [turn.query, turn.text])
        if reason is not None and self.may_retry(draft, reason, found):
            draft, (checked, citations, reason) = self.second_attempt(turn, found.passages, max_new, draft, reason)
        if reason is None:
            checked, citations, reason = self.polarity(turn, found.passages, checked, citations)
        if reason is None:  # about the thing the question names, not another document's
            cited = [c.passage for c in citations]
            reason = checks.foreign_source(turn.query, cited, lambda source: self.document_forms(retriever, source))
        checked, citations, reason = self.spell_out(turn, found.passages, checked, citations, reason)
        if reason is not None:
            answer = self.finish(turn, found.passages, ABSTAIN_TEXT, reason, usage=draft.usage, draft=draft.text)
        else:
            checked, citations = self.complete(turn, found.passages, checked, citations)
            answer = self.finish(turn, found.passages, checked, None, citations, draft.usage)
        yield StreamEvent(answer=answer)

    def start_turn(self, question: str, history: History | None) -> Turn:
        """Clean the question; make a follow-up standalone (by a rewrite call, or cheaply when short of time)."""
        text, notices = clean_question(question, self.settings.max_question_chars)
        turn = Turn(question, text, notices=notices)
        if history and needs_rewrite(text, history):
            budget = self.settings.answer_budget_s
            if budget and self.speed.over_budget(budget, extra_calls=1):
                turn.standalone = paired_with_last(text, history)
                turn.notices.append(
                    "Follow-up combined with the previous question, without a rewrite, to stay in the time budget."
                )
            else:
                turn.standalone = rewrite(text, history, self.generator, self.prompts)
            turn.timings["rewrite_ms"] = turn.elapsed_ms()
        return turn

    def retrieve(
        self, turn: Turn, top_k: int | None, mode: Mode | None, retriever: SearchIndex | None = None
    ) -> Retrieval:
        """The passages for the turn's query, cut to fit the time budget when there is one.

        `retriever` is the index the turn started with (default: the live one); every search of
        the turn uses it, so a re-index landing mid-question never mixes two index versions.
        """
        s = self.settings
        retriever = retriever or self.retriever
        t0 = time.perf_counter()
        k, mode = top_k or (s.broad_top_k if shape(turn.query).broad else s.top_k), mode or s.retrieval
        found = retriever.retrieve(turn.query, k, mode)
        parts = split_parts(turn.query) if s.search_parts else []
        if parts:  # a multi-part or comparison question: each part's best passage gets a slot
            found = cover_parts(found, [retriever.retrieve(p, k, mode) for p in parts], k, s.dedup_threshold)
        if s.prompt_trim:  # passages far below the best go; the judge and citations follow the new numbers
            found = replace(found, passages=dynamic_top_k(turn.query, found.passages))
        turn.timings["retrieve_ms"] = ms(t0)
        if s.answer_budget_s:
            seconds_left = s.answer_budget_s - turn.elapsed_ms() / 1000
            found = fit_budget(
                found, seconds_left, self.speed, lambda ps: self._prompt_tokens(turn.query, ps), turn.notices
            )
        return found

    def may_retry(self, draft: Draft, reason: str, found: Retrieval) -> bool:
        """A second attempt only where the model declined, or said the question back, although
        retrieval is confident."""
        floor = self.settings.retry_min_score
        gave_nothing = not draft.text or checks.declined(draft.text) or reason == checks.RESTATES
        return floor is not None and found.best_score >= floor and gave_nothing

    def second_attempt(
        self, turn: Turn, passages: list[Passage], max_new_tokens: int, first: Draft, first_reason: str
    ) -> tuple[Draft, tuple[str, list[Citation], str | None]]:
        """Ask again for the sentence that answers, quoted; keep it only if it passes the judge and
        addresses the question. Not streamed: the final answer replaces what the first draft released.
        """
        attempt = self.generate(turn, passages, max_new_tokens, system="quote_system")
        while True:
            try:
                next(attempt)
            except StopIteration as done:
                draft: Draft = done.value
                break
        verdict = checks.judge(draft.text, passages, [turn.query, turn.text])
        if verdict[2] is None and not checks.addresses(turn.query, verdict[0]):
            verdict = (draft.text, [], "the second attempt quoted a passage that does not address the question")
        if verdict[2] is not None:
            return first, (first.text, [], f"{first_reason}; {verdict[2]} (second attempt)")
        turn.notices.append("The first draft declined; this answer quotes the passage that answers.")
        return draft, verdict

    def document_forms(self, retriever: SearchIndex, source: str) -> set[str]:
        """Every token of one document (`checks.known_forms`), for the index the turn searched."""
        if self._texts_of is None or self._texts_of() is not retriever:  # first use, or a re-index
            texts: dict[str, list[str]] = {}
            for c in retriever.chunks:
                texts.setdefault(c.source, []).append(c.search_text)
            # A weak reference: an index the pipeline has swapped out is not kept alive for this.
            self._texts, self._forms, self._texts_of = texts, {}, weakref.ref(retriever)
        if source not in self._forms:
            self._forms[source] = checks.known_forms(self._texts.get(source, []))
        return self._forms[source]

    def polarity(
        self, turn: Turn, passages: list[Passage], text: str, citations: list[Citation]
    ) -> tuple[str, list[Citation], str | None]:
        """A draft that states a passage's claim the other way round ("TRUNCATE is MVCC-safe" where
        the passage says it is not) is not an answer. To a yes/no question the passage's own
        sentence is the answer, led by the verdict it gives; to any other, it is a refusal.
        """
        found = checks.contradiction(text, passages)
        if found is None:
            return text, citations, None
        n, sentence, passage_says_not = found
        if not shape(turn.query).yes_no:
            return text, [], f"the draft answer says the opposite of passage [{n}]"
        said = "No" if passage_says_not else "Yes"
        checked, cited = checks.check_citations(f'{said}: "{sentence.rstrip(".")}" [{n}].', passages)
        turn.notices.append(f"The draft said the opposite of passage [{n}]; this answer quotes it.")
        return checked, cited, None if cited else f"the draft answer says the opposite of passage [{n}]"

    def spell_out(
        self, turn: Turn, passages: list[Passage], text: str, citations: list[Citation], reason: str | None
    ) -> tuple[str, list[Citation], str | None]:
        """For "what does X stand for?": the long form a passage spells out as "Long Form (X)", when the
        draft was refused or lacks it; the answer as it was otherwise."""
        spelled = expand_acronym(turn.query, passages)
        if spelled is None or (reason is None and checks.support(checks.strip_markers(spelled[0]), text) >= 0.8):
            return text, citations, reason
        quoted, cited = checks.check_citations(spelled[0], passages)
        if not cited:
            return text, citations, reason
        lacked = "did not answer" if reason is not None else "did not give the long form"
        turn.notices.append(f"The draft {lacked}; this answer quotes passage [{spelled[1]}].")
        return quoted, cited, None

    def complete(
        self, turn: Turn, passages: list[Passage], text: str, citations: list[Citation]
    ) -> tuple[str, list[Citation]]:
        """Make a partial answer whole from the passages' own words, each addition cited.

        A list answer that misses items its evidence lists becomes the quoted list sentence; a
        part of a multi-part or comparison question that the draft leaves out gets the sentence
        that answers it, quoted after the draft.
        """
        done = complete_list(turn.query, text, passages, [c.n for c in citations])
        if done is not None:
            text = done[0]
            turn.notices.append(f"The draft named only part of the list; this answer quotes passage [{done[1]}].")
        added = complete_parts(turn.query, text, passages)
        for sentence, n in added:
            text = f"{text} {sentence} [{n}]"
        if added:
            numbers = ", ".join(f"[{n}]" for _, n in added)
            turn.notices.append(f"The draft left part of the question unanswered; quoted from passage {numbers}.")
        if done is None and not added:
            return text, citations
        checked, checked_citations = checks.check_citations(text, passages)
        return (checked, checked_citations) if checked_citations else (text, citations)

    def generate(
        self, turn: Turn, passages: list[Passage], max_new_tokens: int, system: str = "answer_system"
    ) -> Iterator[StreamEvent]:
        """Stream the checked part of the model's draft as events; returns the `Draft` (via
        StopIteration) for the judge.

        The draft is released sentence by sentence, each once complete and past the checks that
        apply to one sentence (`checks.CheckedStream`): nothing unchecked is ever shown, and
        nothing at all after a sentence fails or declines.
        """
        # The model reads the passages' sentences that bear on the question (prompt_trim); the checks
        # below hold its draft against the whole passages.
        shown = trim_sentences(turn.query, passages) if self.settings.prompt_trim else passages
        messages = self.prompts.answer_messages(turn.query, shown, system, hint=shape(turn.query).hint)
        generator = self.generator
        gate = checks.CheckedStream(passages, [turn.query, turn.text])
        t0 = time.perf_counter()
        first_s = 0.0  # seconds to this call's first piece: its prefill, for the speed model
        pieces: list[str] = []
        for piece in generator.stream(messages, max_new_tokens):
            if not pieces:
                first_s = time.perf_counter() - t0
                turn.timings.setdefault("first_token_ms", turn.elapsed_ms())
            pieces.append(piece)
            released = gate.feed(piece)
            if released:
                turn.timings.setdefault("first_text_ms", turn.elapsed_ms())
                yield StreamEvent(released)
        released = gate.close()
        if released:
            turn.timings.setdefault("first_text_ms", turn.elapsed_ms())
            yield StreamEvent(released)
        generate_s = time.perf_counter() - t0
        turn.timings["generate_ms"] = turn.timings.get("generate_ms", 0.0) + generate_s * 1000
        raw = "".join(pieces).strip()
        usage = {"prompt_tokens": generator.count_tokens(messages), "answer_tokens": count_text_tokens(generator, raw)}
        self.speed.observe(usage["prompt_tokens"], usage["answer_tokens"], first_s, generate_s)
        return Draft(raw, usage)

    def finish(
        self,
        turn: Turn,
        passages: list[Passage],
        text: str,
        reason: str | None,
        citations: list[Citation] | None = None,
        usage: dict[str, int] | None = None,
        draft: str | None = None,
    ) -> Answer:
        turn.timings.setdefault("first_token_ms", turn.elapsed_ms())
        turn.timings["total_ms"] = turn.elapsed_ms()
        return Answer(
            question=turn.question,
            answer=text,
            abstained=reason is not None,
            citations=list(citations or []),
            retrieved=passages,
            timings=turn.timings,
            model=self.model_name,
            standalone_question=turn.standalone,
            abstain_reason=reason,
            notices=turn.notices,
            usage=usage or {},
            draft=draft,
        )

    def _prompt_tokens(self, query: str, passages: list[Passage]) -> int:
        return self.generator.count_tokens(self.prompts.answer_messages(query, passages))

    def status(self) -> dict:
        manifest = self.retriever.index.manifest
        return {
            "documents": len(manifest.get("files", {})),
            "chunks": len(self.retriever.chunks),
            "built_at": manifest.get("built_at"),
            "embed_model": manifest.get("embed_model"),
            "llm": self.model_name,
            "docs_dir": str(self.settings.docs_dir),
        }


def nothing_indexed(settings: Settings, embedder: Embedder, error: DocsError) -> NoIndexYet:
    """An empty or unreadable documents folder is "nothing indexed yet"; a missing one stays an error."""
    if not settings.docs_dir.is_dir():
        raise error
    log(f"nothing indexed yet: {error.message}")
    return NoIndexYet(error, embedder)


def named_in_sources(retriever: SearchIndex, found: Retrieval, name: str) -> bool:
    """Does a document the passages come from name `name` somewhere (one lexical search)?"""
    sources = {p.chunk.source for p in found.passages}
    hits = retriever.retrieve(name, 5, "bm25").passages
    return any(h.chunk.source in sources and name.casefold() in h.chunk.search_text.casefold() for h in hits)


def log_index_report(report: IndexReport) -> None:
    """Say on stderr what an index update did: why it rebuilt, what changed, which files failed."""
    if report.changed:  # a rebuild's summary starts "rebuilt because <reason>; "
        log(f"index {'' if report.rebuilt_because else 'updated: '}{report.summary()}")
    for problem in report.failed:
        log(f"not indexed: {problem.source}: {problem.reason}")


def ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
