"""The web chat: a Gradio page and a JSON API over the library.

The page places what the library computes: answers stream from `Pipeline.stream`, HTML comes
from `docqa.serve.render` (which escapes every document and model string), and the Documents tab calls
`docqa.serve.documents`. One generation runs at a time; the rest wait in a bounded queue.
Conversations and thumbs up/down are kept per user by `docqa.serve.conversations`.
"""

from __future__ import annotations

import os

# Gradio reads this when it is imported and again in Blocks(): docqa never sends telemetry, and the
# version check it would trigger can't reach the network anyway.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import hashlib  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from docqa.answering.pipeline import NoIndexYet, Pipeline  # noqa: E402
from docqa.answering.question import clean_question  # noqa: E402
from docqa.errors import DocqaError, QuestionError, SettingsError  # noqa: E402
from docqa.generate import load_generator  # noqa: E402
from docqa.generate.weights import log  # noqa: E402
from docqa.ingest.indexer import IndexReport, Progress  # noqa: E402
from docqa.ingest.readers import SUPPORTED  # noqa: E402
from docqa.serve import documents as uploads  # noqa: E402
from docqa.serve import render  # noqa: E402
from docqa.serve import viewer as spots  # noqa: E402
from docqa.serve.conversations import LOCAL_USER, ConversationStore  # noqa: E402
from docqa.settings import PROFILES, Settings, apply_runtime_settings  # noqa: E402
from docqa.types import Answer, Chunk  # noqa: E402

# The viewer's own script (our code, not a document's): a click on an answer's [n] or on a source card
# names its chunk (the class "chunk-<id>": the chat's sanitizer drops data- attributes) and asks the
# server for the spot; the passage's place comes from the conversation on the server, never from the
# page. Installed once per page; `__docqaOpen` always holds the live viewer's trigger.
VIEWER_JS = """
window.__docqaOpen = (chunk) => trigger('click', {chunk: chunk});
if (!window.__docqaClicks) {
  window.__docqaClicks = true;
  document.addEventListener('click', (event) => {
    const el = event.target instanceof Element
      ? event.target.closest('#docqa-chat a.cite, #docqa-sources .src-card') : null;
    if (!el) return;
    if (el.classList.contains('src-card') && !window.getSelection().isCollapsed) return;  // selecting text
    const name = Array.from(el.classList).find((c) => c.startsWith('chunk-'));
    if (name && window.__docqaOpen) window.__docqaOpen(name.slice(6));
  });
}
watch('value', () => {
  const mark = element.querySelector('#docqa-spot-mark');
  const box = mark && mark.closest('.viewer-text');
  if (box) box.scrollTop = Math.max(0, mark.offsetTop - 40);
  const shown = element.querySelector('.docqa-viewer:not(.empty)');
  if (shown) shown.scrollIntoView({block: 'start'});
});
"""

# Answers (page and API) and re-indexing share one concurrency group of size 1: the CPU runs one
# model call at a time, and a re-index never swaps the index under a running answer.
MODEL_GROUP = "docqa-model"
EXAMPLES = 4
FEEDBACK_OPTIONS = {"up": "Like", "down": "Dislike"}  # the Chatbot's names for its thumb icons
PLACEHOLDER = "Ask a question about your documents. Answers cite passages as [n]."
FIRST_USE = (
    "No documents yet. Open the Documents tab and add some (upload), or put files in the documents "
    "folder and run `docqa index`; then ask about them here."
)

CSS = """
.docqa-answer.abstained { border-left: 4px solid #b45309; padding-left: 8px; color: #78350f; }
.docqa-answer .badge, .src-abstained .badge { display: inline-block; font-size: 0.8em; font-weight: 600;
  padding: 1px 6px; margin-right: 4px; border-radius: 4px; background: #fef3c7; color: #92400e; }
.docqa-answer.failed .badge { background: #fee2e2; color: #991b1b; }
.docqa-answer .abstain-reason { font-size: 0.85em; opacity: 0.8; margin-top: 4px; }
.docqa-answer .cursor { opacity: 0.6; }
a.cite { font-weight: 600; text-decoration: none; padding: 0 1px; }
#docqa-sources { max-height: 70vh; overflow-y: auto; }
.docqa-sources .src-question { font-weight: 600; }
.docqa-sources .src-rewritten, .docqa-sources .src-notice { font-size: 0.9em; font-style: italic; }
.docqa-sources .src-abstained { margin: 6px 0; }
.src-card { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px; margin: 8px 0;
  scroll-margin-top: 12px; }
.src-card:target { outline: 3px solid var(--color-accent); }
.src-card .src-head { font-size: 0.85em; margin-bottom: 4px; display: flex; flex-wrap: wrap; gap: 6px; }
.src-card .src-file { font-weight: 600; }
.src-card .src-heading { font-style: italic; }
.src-card .src-loc { opacity: 0.7; }
.src-card mark { background: #fde68a; color: inherit; padding: 0 1px; }
.docqa-sources details.uncited summary { cursor: pointer; margin-top: 8px; }
table.docqa-docs { width: 100%; border-collapse: collapse; }
table.docqa-docs th, table.docqa-docs td { text-align: left; padding: 4px 8px;
  border-bottom: 1px solid var(--border-color-primary); }
table.docqa-docs tr.not-indexed-yet td, table.docqa-docs tr.changed-since-indexing td { font-style: italic; }
table.docqa-docs tr.can-t-be-indexed td { color: #b91c1c; }
.docqa-report .failed { color: #b91c1c; }
#docqa-status { font-size: 0.9em; opacity: 0.85; }
.src-card[class*="chunk-"] { cursor: pointer; }
.src-card .src-open { margin-left: auto; font-size: 0.9em; color: var(--color-accent); }
.docqa-viewer .viewer-head { font-size: 0.9em; margin-bottom: 6px; display: flex; flex-wrap: wrap; gap: 6px; }
.docqa-viewer .viewer-file { font-weight: 600; }
.docqa-viewer .viewer-heading { font-style: italic; }
.docqa-viewer .viewer-loc { opacity: 0.7; }
.docqa-viewer .viewer-notice { margin: 6px 0; padding: 4px 8px; border-radius: 4px; background: #fef3c7;
  color: #78350f; }
.docqa-viewer .viewer-notice.stale, .docqa-viewer .viewer-notice.error { background: #fee2e2; color: #991b1b; }
.docqa-viewer .viewer-page { position: relative; display: inline-block; max-width: 100%; width: 720px;
  border: 1px solid var(--border-color-primary); float: left; margin: 0 12px 8px 0; }
.docqa-viewer .viewer-page img { display: block; width: 100%; height: auto; }
.docqa-viewer .viewer-hl { position: absolute; background: rgba(250, 204, 21, 0.38);
  outline: 2px solid rgba(217, 119, 6, 0.85); pointer-events: none; }
.docqa-viewer .viewer-text { position: relative; max-height: 60vh; overflow-y: auto; white-space: normal;
  padding: 6px 8px; border: 1px solid var(--border-color-primary); border-radius: 6px; }
.docqa-viewer mark { background: #fde68a; color: inherit; padding: 0 1px; }
.docqa-viewer::after { content: ""; display: block; clear: both; }
.docqa-docs-summary { margin: 4px 0; font-size: 0.9em; opacity: 0.85; }
#docqa-feedback-note { font-size: 0.9em; opacity: 0.85; }
"""


class Pipelines:
    """One pipeline per generator profile, sharing the embedder and the live index.

    Built on first use of a profile; a re-index through any of them is seen by all.
    """

    def __init__(self, base: Pipeline) -> None:
        self.base = base
        self._by_profile: dict[str, Pipeline] = {base.settings.profile: base}
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.base.settings

    def get(self, profile: str | None = None) -> Pipeline:
        profile = profile or self.base.settings.profile
        if profile not in PROFILES:
            raise SettingsError(f"unknown profile {profile!r}", f"choose one of {', '.join(PROFILES)}")
        with self._lock:
            pipeline = self._by_profile.get(profile)
            if pipeline is None:
                settings = self.base.settings.model_copy(update={"profile": profile, "auto_index": False})
                base = self.base  # the index is the base's (possibly none yet): nothing to open here
                pipeline = Pipeline(
                    settings, base.embedder, base.retriever, base.prompts, load=lambda: load_generator(settings)
                )
                self._by_profile[profile] = pipeline
            # Only the generator differs between profiles; retrieval is the base's, current index included.
            pipeline.retriever = self.base.retriever
            return pipeline

    def reindex(self, progress: Progress | None = None) -> IndexReport:
        with self._lock:
            try:
                return self.base.reindex(progress=progress)
            finally:  # a failed re-index may still have changed it (the last document deleted)
                for pipeline in self._by_profile.values():
                    pipeline.retriever = self.base.retriever

    @property
    def nothing_indexed(self) -> bool:
        """True until the first documents are indexed (an empty documents folder)."""
        return isinstance(self.base.retriever, NoIndexYet)

    def status(self, profile: str | None = None) -> dict:
        return self.get(profile).status()


def checked_options(settings: Settings, **values: Any) -> Settings:
    """`settings` with the page's choices applied, validated by the Settings model itself."""
    copy = settings.model_copy()
    try:
        for key, value in values.items():
            if value is not None:
                setattr(copy, key, value)  # validate_assignment checks bounds and types
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingsError(f"{first['loc'][0]}: {first['msg']}", "pick a value inside the slider's range") from None
    return copy


def chat_messages(
    turns: list[Answer], pending: str | None = None, partial: str | None = None, error: str | None = None
) -> list[dict[str, str]]:
    """Chatbot messages for the finished turns, plus the question being answered, if any."""
    messages = []
    for answer in turns:
        messages.append({"role": "user", "content": render.question_html(answer.question)})
        messages.append({"role": "assistant", "content": render.answer_html(answer)})
    if pending is not None:
        messages.append({"role": "user", "content": render.question_html(pending)})
        if error is not None:
            messages.append({"role": "assistant", "content": render.error_html(error)})
        elif partial is not None:
            messages.append({"role": "assistant", "content": render.streaming_html(partial)})
    return messages


def chat_stream(
    pipelines: Pipelines,
    question: str,
    history: list[Answer],
    profile: str | None = None,
    top_k: float | None = None,
    max_new_tokens: float | None = None,
) -> Iterator[tuple[list[dict[str, str]], str | None, list[Answer] | None]]:
    """One chat turn as (messages, sources panel, history) updates; None where nothing changed.

    While checked sentences arrive only the messages change; the last update carries the answer, its
    sources and the history with the new turn. A DocqaError ends the turn with an error bubble and
    leaves the history as it was.
    """
    try:
        options = checked_options(
            pipelines.settings,
            profile=profile,
            top_k=None if top_k is None else int(top_k),
            max_new_tokens=None if max_new_tokens is None else int(max_new_tokens),
        )
        pipeline = pipelines.get(options.profile)
        previous = [(a.question, a.answer) for a in history]  # the pipeline decides whether to rewrite
        partial = ""
        for event in pipeline.stream(question, previous, top_k=options.top_k, max_new_tokens=options.max_new_tokens):
            if event.answer is not None:
                history = [*history, event.answer]
                yield chat_messages(history), render.sources_html(event.answer), history
            else:
                partial += event.delta
                yield chat_messages(history, pending=question, partial=partial), None, None
    except DocqaError as exc:
        yield chat_messages(history, pending=question, error=exc.message), None, history


def document_rows(pipelines: Pipelines) -> list[uploads.DocumentRow]:
    """Every file in the folder and the index, with its state."""
    report = pipelines.base.last_index_report
    return uploads.list_documents(
        pipelines.settings, pipelines.base.retriever.index.manifest, report.failed if report else ()
    )


def documents_view(
    pipelines: Pipelines, query: str = "", page: float | None = 1, rows: list[uploads.DocumentRow] | None = None
) -> tuple[str, list[str]]:
    """One page of the documents table (the files whose path contains `query`), and the names on it
    that the delete menu offers: a folder of 10,000 files sends 50 rows to the browser, not 10,000."""
    shown = uploads.page_of(document_rows(pipelines) if rows is None else rows, query, page)
    return render.documents_page_html(shown), [r.source for r in shown.rows if r.state != "missing from folder"]


def find_passage(history: list[Answer], chunk_id: str) -> Chunk | None:
    """The passage with this chunk id among the conversation's answers (latest first), or None."""
    for answer in reversed(history):
        for passage in [*(c.passage for c in answer.citations), *answer.retrieved]:
            if passage.chunk.id == chunk_id:
                return passage.chunk
    return None


def examples(pipelines: Pipelines) -> list[dict[str, str]]:
    return [{"text": q} for q in uploads.example_questions(pipelines.base.retriever.chunks, EXAMPLES)]


def placeholder(pipelines: Pipelines) -> str:
    """The empty chat's text: an invitation to add the first documents while there are none."""
    return FIRST_USE if pipelines.nothing_indexed else PLACEHOLDER


@contextmanager
def page_errors() -> Iterator[None]:
    """Show a DocqaError on the page as Gradio's error toast (its message, no traceback)."""
    try:
        yield
    except DocqaError as exc:
        raise gr.Error(exc.message, print_exception=False) from None


def show_turn(history: list[Answer], evt: gr.SelectData) -> Any:
    """The sources panel for the turn whose message was clicked."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    turn = int(index) // 2  # messages alternate question, answer
    if 0 <= turn < len(history):
        return render.sources_html(history[turn])
    return gr.skip()


def pick_example(evt: gr.SelectData) -> str:
    """The text of the example question that was clicked."""
    value = evt.value if isinstance(evt.value, dict) else {}
    return str(value.get("text", ""))


def reset() -> tuple[list, list, str]:
    """A new conversation: no turns, no messages, an empty sources panel."""
    return [], [], render.sources_html(None)


def user_of(request: gr.Request | None) -> str:
    """Whose conversations these are: the logged-in username, or LOCAL_USER without a login."""
    username = getattr(request, "username", None)
    return str(username) if username else LOCAL_USER


def prompt_version(prompts: Any) -> str | None:
    """A short digest of the prompt templates in use, so feedback says which prompts produced an answer."""
    templates = getattr(prompts, "templates", None)
    if not templates:
        return None
    digest = hashlib.sha256()
    for name in sorted(templates):
        digest.update(f"{name}\0{templates[name].template}\0".encode())
    return "sha256:" + digest.hexdigest()[:12]


def turn_settings(pipelines: Pipelines, options: Settings) -> dict[str, Any]:
    """The settings that shape an answer, recorded with each turn (and copied into its feedback)."""
    return {
        "profile": options.profile,
        "llm_model": options.llm_model,
        "llm_backend": options.llm_backend,
        "top_k": options.top_k,
        "broad_top_k": options.broad_top_k,
        "retrieval": options.retrieval,
        "min_score": options.min_score,
        "max_new_tokens": options.max_new_tokens,
        "vector_store": options.vector_store,
        "embedder": getattr(pipelines.base.embedder, "name", None),
        "prompt_version": prompt_version(pipelines.base.prompts),
    }


def conversation_choices(store: ConversationStore, user: str) -> list[tuple[str, str]]:
    """(label, id) of `user`'s conversations, most recent first, for the list."""
    return [(c.label, c.id) for c in store.list(user)]


def export_path(conversation_id: str, title: str) -> Path:
    """Where a conversation's Markdown export is written for download (under the temp dir Gradio serves from)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:40].lower() or "conversation"
    folder = Path(tempfile.gettempdir()) / "docqa-exports" / re.sub(r"[^0-9a-f]", "", conversation_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"docqa-{slug}.md"


class Handlers:
    """The page's event handlers and the /ask API over one `Pipelines`; `build_app` wires them.

    Each can be called directly, without a server. They are methods rather than partials so that
    Gradio sees their own names and signatures (gr.SelectData, gr.Progress, the API's docstring).
    """

    def __init__(self, pipelines: Pipelines, store: ConversationStore | None = None) -> None:
        self.pipelines = pipelines
        self.store = store or ConversationStore.from_settings(pipelines.settings)
        self.viewer = spots.Viewer(pipelines.settings.docs_dir, pipelines.settings.pdf_timeout_s)
        self._rows: list[uploads.DocumentRow] | None = None  # the Documents table as last listed

    @property
    def settings(self) -> Settings:
        return self.pipelines.settings

    # --- chat ---------------------------------------------------------------------------------

    def start(self, text: str, history: list[Answer]) -> tuple[str, str, list[dict[str, str]]]:
        """Check the question, clear the box, remember the question, and show it as pending."""
        with page_errors():
            clean_question(text, self.settings.max_question_chars)
        return "", text, chat_messages(history, pending=text, partial="")

    def respond(
        self, text: str, history: list[Answer], profile_name: str, k: float, max_new: float
    ) -> Iterator[tuple[Any, Any, Any]]:
        """`chat_stream`'s updates, with Gradio's skip where nothing changed."""
        for messages, panel, new_history in chat_stream(self.pipelines, text, history, profile_name, k, max_new):
            yield messages, gr.skip() if panel is None else panel, gr.skip() if new_history is None else new_history

    def view(self, history: list[Answer], evt: gr.EventData) -> str:
        """The cited spot of the passage whose [n] or card was clicked, in the viewer.

        The click names a chunk id; the passage (file, offsets, page) comes from this session's own
        conversation, so a page can only open passages it was shown."""
        data = getattr(evt, "_data", None)
        chunk_id = str(data.get("chunk", "")) if isinstance(data, dict) else ""
        chunk = find_passage(history, chunk_id) if chunk_id else None
        if chunk is None:
            return spots.message_html("That passage is not in this conversation; ask again to see it.")
        return self.viewer.html(chunk)

    def status(self, profile_name: str | None = None) -> str:
        line = render.status_line(self.pipelines.status(profile_name))
        if self.pipelines.nothing_indexed:
            line += " · nothing indexed yet: add documents in the Documents tab"
        return line

    # --- conversations and feedback -----------------------------------------------------------

    def save(
        self,
        history: list[Answer],
        conversation_id: str | None,
        profile_name: str | None = None,
        k: float | None = None,
        max_new: float | None = None,
        request: gr.Request | None = None,
    ) -> tuple[Any, Any, Any]:
        """Store the turns not stored yet; the conversation's id, the list and the export to download."""
        if not history:
            return conversation_id, gr.skip(), gr.skip()
        user = user_of(request)
        with page_errors():
            options = checked_options(
                self.settings,
                profile=profile_name,
                top_k=None if k is None else int(k),
                max_new_tokens=None if max_new is None else int(max_new),
            )
            recorded = {**turn_settings(self.pipelines, options), "model": history[-1].model}
            conversation_id = self.store.save(user, conversation_id, history, recorded)
            choices = conversation_choices(self.store, user)
        listed = gr.Dropdown(choices=choices, value=conversation_id)
        return conversation_id, listed, self.export(conversation_id, request)

    def conversation_list(self, request: gr.Request | None = None) -> Any:
        """The list of this user's past conversations (on page load)."""
        with page_errors():
            return gr.Dropdown(choices=conversation_choices(self.store, user_of(request)), value=None)

    def open(self, conversation_id: str | None, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Reopen one of this user's conversations: turns, messages, the last answer's sources, its id, the export."""
        if not conversation_id:
            return [], gr.Chatbot(value=[], feedback_value=[]), render.sources_html(None), None, None, ""
        user = user_of(request)
        with page_errors():
            conversation = self.store.get(user, conversation_id)
            ratings = self.store.ratings(user, conversation_id)
        if conversation is None:
            raise gr.Error("That conversation is not there any more.", print_exception=False)
        history = conversation.answers
        panel = render.sources_html(history[-1] if history else None)
        thumbs = [FEEDBACK_OPTIONS[ratings[n]] if n in ratings else None for n in range(len(history))]
        chatbot = gr.Chatbot(value=chat_messages(history), feedback_value=thumbs)  # the thumbs as they were left
        return history, chatbot, panel, conversation.id, self.export(conversation.id, request), ""

    def new_conversation(self) -> tuple[Any, ...]:
        """`reset` (thumbs cleared too), and no conversation open: nothing selected in the list, nothing to export."""
        turns, _, panel = reset()
        return turns, gr.Chatbot(value=[], feedback_value=[]), panel, None, gr.Dropdown(value=None), None, ""

    def export(self, conversation_id: str | None, request: gr.Request | None = None) -> str | None:
        """Write the conversation as Markdown for the download button; its path (None: nothing to export)."""
        if not conversation_id:
            return None
        with page_errors():
            conversation = self.store.get(user_of(request), conversation_id)
        if conversation is None or not conversation.turns:
            return None
        from docqa.serve.conversations import conversation_markdown

        path = export_path(conversation.id, conversation.title)
        path.write_text(conversation_markdown(conversation), encoding="utf-8")
        return str(path)

    def rate(
        self,
        history: list[Answer],
        conversation_id: str | None,
        evt: gr.LikeData,
        request: gr.Request | None = None,
    ) -> tuple[str, int | None]:
        """Thumbs up or down on an answer (clicked again: taken back); a note, and which answer a comment is for."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        position = int(index) // 2  # messages alternate question, answer
        if conversation_id is None or not 0 <= position < len(history):
            return "Only saved answers can be rated.", None
        rating = "up" if evt.liked is True else "down" if evt.liked is False else None
        with page_errors():
            try:
                self.store.rate(user_of(request), conversation_id, position, rating)
            except KeyError:
                raise gr.Error("That answer is not saved yet; try again in a moment.", print_exception=False) from None
        if rating is None:
            return f"Rating of answer {position + 1} taken back.", None
        thumb = "Thumbs up" if rating == "up" else "Thumbs down"
        return f"{thumb} saved for answer {position + 1}. Add a comment below if you like.", position

    def comment(
        self, text: str, conversation_id: str | None, position: int | None, request: gr.Request | None = None
    ) -> tuple[str, str]:
        """Attach a comment to the answer rated last; a note, and an emptied comment box."""
        if conversation_id is None or position is None:
            raise gr.Error("Rate an answer (thumbs up or down) first, then comment on it.", print_exception=False)
        if not text.strip():
            raise gr.Error("The comment is empty.", print_exception=False)
        with page_errors():
            try:
                self.store.comment(user_of(request), conversation_id, position, text)
            except KeyError:
                raise gr.Error("Rate the answer again, then comment.", print_exception=False) from None
        return f"Comment saved for answer {position + 1}.", ""

    # --- documents ----------------------------------------------------------------------------

    def refresh(self, profile_name: str | None = None, query: str = "", page: float | None = 1) -> tuple[Any, ...]:
        """The documents table (listed afresh), the delete menu, the status line and the example questions, as now."""
        self._rows = document_rows(self.pipelines)
        table, names = documents_view(self.pipelines, query, page, self._rows)
        return (
            table,
            gr.Dropdown(choices=names, value=None),
            self.status(profile_name),
            gr.Chatbot(examples=examples(self.pipelines), placeholder=placeholder(self.pipelines)),
        )

    def add_files(self, paths: list[str] | None) -> tuple[str, None]:
        """Save the uploaded files into the documents folder; the report, and an emptied upload box."""
        if not paths:
            raise gr.Error("Choose one or more files first.", print_exception=False)
        results = uploads.save_uploads(self.settings, paths)
        return render.messages_html(r.message for r in results), None

    def delete_file(self, source: str | None) -> str:
        with page_errors():
            uploads.delete_document(self.settings, source or "")
        return render.messages_html([f"{source}: deleted"])

    def documents_page(self, query: str = "", page: float | None = 1, step: int = 0) -> tuple[Any, Any, int]:
        """The table's page `step` pages from `page` among the files matching `query` (the listing is
        the last one made, not read again); the table, the delete menu, and the page shown."""
        rows = self._rows if self._rows is not None else document_rows(self.pipelines)
        self._rows = rows
        number = uploads.page_of(rows, query, page).page + step
        shown = uploads.page_of(rows, query, number)
        table, names = documents_view(self.pipelines, query, shown.page, rows)
        return table, gr.Dropdown(choices=names, value=None), shown.page

    def reindex(
        self,
        note: str,
        profile_name: str,
        query: str = "",
        page: float | None = 1,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:
        """Bring the index up to date, showing progress; the report after `note`, then `refresh`'s outputs."""

        def report_progress(done: int, total: int, message: str) -> None:
            progress((done, total) if total else None, desc=message)

        with page_errors():
            result = self.pipelines.reindex(report_progress)
        return (note + render.report_html(result), *self.refresh(profile_name, query, page))

    # --- API ----------------------------------------------------------------------------------

    def ask(self, question: str, top_k: int | None = None) -> dict:
        """Answer a question from the documents, with citations checked against the passages.

        Args:
            question: the question, in plain words.
            top_k: how many passages to give the model (1 to 20); the server's setting if left out.

        Returns:
            The answer as the JSON object `docqa ask --json` prints (answer, abstained, citations, retrieved, ...).
        """
        with page_errors():
            if not isinstance(question, str):  # JSON callers can send anything; the pipeline takes text
                raise QuestionError(
                    f"the question must be text, not {type(question).__name__}", "send the question as a string"
                )
            options = checked_options(self.settings, top_k=top_k)
            return self.pipelines.get().ask(question, top_k=options.top_k).to_dict()


@dataclass
class ChatTab:
    status: gr.HTML
    chatbot: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    clear: gr.Button
    sources: gr.HTML
    profile: gr.Radio
    top_k: gr.Slider
    max_tokens: gr.Slider
    past: gr.Dropdown
    export: gr.DownloadButton
    comment: gr.Textbox
    send_comment: gr.Button
    feedback_note: gr.Markdown
    viewer: gr.HTML


@dataclass
class DocumentsTab:
    table: gr.HTML
    filter: gr.Textbox
    prev: gr.Button
    next: gr.Button
    page: gr.State
    report: gr.HTML
    files: gr.File
    add: gr.Button
    to_delete: gr.Dropdown
    delete: gr.Button
    reindex: gr.Button


def chat_tab(handlers: Handlers) -> ChatTab:
    """The Chat tab's components: the chat and question box, the sources panel, the settings."""
    settings = handlers.settings
    status = gr.HTML(handlers.status(), elem_id="docqa-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="docqa",
                elem_id="docqa-chat",
                height=560,
                render_markdown=False,  # content is HTML built by docqa.serve.render, escaped there
                sanitize_html=True,  # and sanitized again in the browser
                latex_delimiters=[],
                allow_tags=False,
                feedback_options=tuple(FEEDBACK_OPTIONS.values()),  # thumbs up/down: Handlers.rate
                buttons=["copy"],
                examples=examples(handlers.pipelines),
                placeholder=placeholder(handlers.pipelines),
            )
            with gr.Row():
                question = gr.Textbox(
                    placeholder="Ask about your documents…",
                    show_label=False,
                    scale=5,
                    elem_id="docqa-question",
                    max_length=settings.max_question_chars,
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="docqa-send")
            with gr.Row():
                clear = gr.Button("New conversation", size="sm")
                export = gr.DownloadButton("Export as Markdown", size="sm", elem_id="docqa-export")
            with gr.Row():
                comment = gr.Textbox(
                    placeholder="Comment on the answer you rated with a thumb (optional)",
                    show_label=False,
                    scale=5,
                    elem_id="docqa-comment",
                    max_length=2000,
                )
                send_comment = gr.Button("Save comment", size="sm", scale=1, elem_id="docqa-send-comment")
            feedback_note = gr.Markdown("", elem_id="docqa-feedback-note")
        with gr.Column(scale=2):
            past = gr.Dropdown(
                [], value=None, label="Past conversations", elem_id="docqa-past", info="Pick one to reopen it."
            )
            sources = gr.HTML(render.sources_html(None), elem_id="docqa-sources", js_on_load=None)
            with gr.Accordion("Settings", open=False):
                profile, top_k, max_tokens = settings_controls(settings)
    # The cited spot: a click on [n] or a source card shows the passage in its document here.
    viewer = gr.HTML(spots.empty_html(), elem_id="docqa-viewer", js_on_load=VIEWER_JS)
    return ChatTab(
        status, chatbot, question, send, clear, sources, profile, top_k, max_tokens, past, export, comment,
        send_comment, feedback_note, viewer,
    )  # fmt: skip


def settings_controls(settings: Settings) -> tuple[gr.Radio, gr.Slider, gr.Slider]:
    """The profile choice and the two sliders of the Settings accordion."""
    profile = gr.Radio(
        list(PROFILES),
        value=settings.profile,
        label="Model profile",
        info="small answers faster; default answers better"
        if settings.llm_model is None
        else f"llm_model={settings.llm_model} is set and overrides the profile",
        interactive=settings.llm_model is None,
    )
    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages given to the model")
    max_tokens = gr.Slider(16, 1024, value=settings.max_new_tokens, step=16, label="Maximum answer length (tokens)")
    return profile, top_k, max_tokens


def documents_tab(handlers: Handlers) -> DocumentsTab:
    """The Documents tab's components: the table, the last report, upload, delete and re-index."""
    settings = handlers.settings
    docs_html, doc_names = documents_view(handlers.pipelines)
    gr.Markdown("### Documents in the folder and the index")
    with gr.Row():
        filter_box = gr.Textbox(
            placeholder="Filter by path (e.g. reports/2019)",
            show_label=False,
            scale=4,
            elem_id="docqa-docs-filter",
            max_length=200,
        )
        prev = gr.Button("◀ Previous", size="sm", scale=1, elem_id="docqa-docs-prev")
        next_ = gr.Button("Next ▶", size="sm", scale=1, elem_id="docqa-docs-next")
    page = gr.State(1)  # the table's page in this browser session
    table = gr.HTML(docs_html, elem_id="docqa-docs")
    startup = handlers.pipelines.base.last_index_report
    report = gr.HTML(
        render.report_html(startup) if startup and (startup.failed or startup.warnings) else "",
        elem_id="docqa-report",
    )
    gr.Markdown("### Change the documents")
    with gr.Row():
        with gr.Column():
            files = gr.File(
                label=f"Add documents ({', '.join(sorted(SUPPORTED))}; up to {settings.max_upload_mb:g} MB)",
                file_count="multiple",
                file_types=sorted(SUPPORTED),
                type="filepath",
                elem_id="docqa-upload",
            )
            add = gr.Button("Add and re-index", variant="primary", elem_id="docqa-add")
        with gr.Column():
            to_delete = gr.Dropdown(doc_names, label="Document to delete", elem_id="docqa-delete-choice")
            delete = gr.Button("Delete and re-index", variant="stop", elem_id="docqa-delete")
            reindex = gr.Button("Re-index now", elem_id="docqa-reindex")
    return DocumentsTab(table, filter_box, prev, next_, page, report, files, add, to_delete, delete, reindex)


def wire_chat(handlers: Handlers, chat: ChatTab, turns: gr.State, pending: gr.State, conversation: gr.State) -> None:
    """Asking (box, Send, example) and saving the turn, showing a turn's sources, a new conversation,
    reopening a past one, rating and commenting, the profile's status."""
    controls = [chat.profile, chat.top_k, chat.max_tokens]

    def then_respond(started: Any) -> None:
        started.success(
            handlers.respond,
            [pending, turns, *controls],
            [chat.chatbot, chat.sources, turns],
            concurrency_limit=1,
            concurrency_id=MODEL_GROUP,
            show_progress="minimal",
            api_visibility="private",
        ).then(
            handlers.save,
            [turns, conversation, *controls],
            [conversation, chat.past, chat.export],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )

    start_io: dict[str, Any] = dict(
        inputs=[chat.question, turns],
        outputs=[chat.question, pending, chat.chatbot],
        queue=False,
        api_visibility="private",
    )
    then_respond(gr.on([chat.question.submit, chat.send.click], handlers.start, **start_io))
    then_respond(
        chat.chatbot.example_select(pick_example, None, chat.question, queue=False, api_visibility="private").then(
            handlers.start, **start_io
        )
    )
    chat.chatbot.select(show_turn, turns, chat.sources, queue=False, api_visibility="private")
    opened = [turns, chat.chatbot, chat.sources, conversation, chat.export, chat.feedback_note]
    for cleared in (chat.clear.click, chat.chatbot.clear):
        cleared(
            handlers.new_conversation,
            None,
            [turns, chat.chatbot, chat.sources, conversation, chat.past, chat.export, chat.feedback_note],
            queue=False,
            api_visibility="private",
        )
    chat.past.input(handlers.open, chat.past, opened, queue=False, api_visibility="private")
    rated = gr.State(None)  # the position of the answer rated last, which a comment is for
    chat.chatbot.like(
        handlers.rate, [turns, conversation], [chat.feedback_note, rated], queue=False, api_visibility="private"
    )
    gr.on(
        [chat.comment.submit, chat.send_comment.click],
        handlers.comment,
        [chat.comment, conversation, rated],
        [chat.feedback_note, chat.comment],
        queue=False,
        api_visibility="private",
    )
    chat.profile.change(handlers.status, chat.profile, chat.status, api_visibility="private")
    chat.viewer.click(
        handlers.view, turns, chat.viewer, concurrency_limit=2, show_progress="minimal", api_visibility="private"
    )


def wire_documents(handlers: Handlers, demo: gr.Blocks, chat: ChatTab, docs: DocumentsTab) -> None:
    """Add, delete and re-index (each followed by a re-index in the model's queue), and refresh on load."""
    reindex_io: dict[str, Any] = dict(
        inputs=[docs.report, chat.profile, docs.filter, docs.page],
        outputs=[docs.report, docs.table, docs.to_delete, chat.status, chat.chatbot],
        concurrency_limit=1,
        concurrency_id=MODEL_GROUP,
        show_progress_on=[docs.report],
        api_visibility="private",
    )
    docs.add.click(handlers.add_files, docs.files, [docs.report, docs.files], api_visibility="private").success(
        handlers.reindex, **reindex_io
    )
    docs.delete.click(handlers.delete_file, docs.to_delete, docs.report, api_visibility="private").success(
        handlers.reindex, **reindex_io
    )
    docs.reindex.click(lambda: "", None, docs.report, queue=False, api_visibility="private").then(
        handlers.reindex, **reindex_io
    )
    demo.load(
        handlers.refresh,
        chat.profile,
        [docs.table, docs.to_delete, chat.status, chat.chatbot],
        api_visibility="private",
    )
    paged = [docs.table, docs.to_delete, docs.page]
    quiet: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")  # a few ms each
    docs.filter.input(lambda query: handlers.documents_page(query, 1), docs.filter, paged, **quiet)
    for button, step in ((docs.prev, -1), (docs.next, 1)):
        button.click(
            lambda query, page, step=step: handlers.documents_page(query, page, step),
            [docs.filter, docs.page],
            paged,
            **quiet,
        )
    demo.load(handlers.conversation_list, None, chat.past, api_visibility="private")


def build_app(pipeline: Pipeline) -> gr.Blocks:
    """The page: a Chat tab (chat, sources panel, settings) and a Documents tab; plus the /ask API."""
    handlers = Handlers(Pipelines(pipeline))
    with gr.Blocks(title="docqa", analytics_enabled=False, fill_width=True) as demo:
        turns = gr.State([])  # list[Answer], this browser session's conversation, oldest first
        pending = gr.State("")  # the question being answered
        conversation = gr.State(None)  # the id of the stored conversation on the page (None: not saved yet)
        with gr.Tab("Chat", id="chat"):
            chat = chat_tab(handlers)
        with gr.Tab("Documents", id="documents"):
            docs = documents_tab(handlers)
        wire_chat(handlers, chat, turns, pending, conversation)
        wire_documents(handlers, demo, chat, docs)
        gr.api(handlers.ask, api_name="ask", concurrency_limit=1, concurrency_id=MODEL_GROUP)
    return demo


def check_mcp(settings: Settings) -> None:
    """Refuse an MCP server that can't run (the extra is missing) or would be open to anyone (a login is set)."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise SettingsError(
            "the MCP server needs the mcp package, which is not installed",
            'pip install "docqa[mcp]", or turn MCP off (unset DOCQA_MCP_SERVER, or mcp_server = false)',
        ) from None
    if settings.login is not None:
        # Gradio mounts the MCP routes outside its login check: they would answer anyone.
        raise SettingsError(
            "the MCP server can't be protected by the login", "turn MCP off, or remove username and password"
        )


def launch(demo: gr.Blocks, settings: Settings, *, block: bool = True, quiet: bool = False) -> str:
    """Queue and serve `demo` as `settings` say; returns the local URL (after the server stops if `block`)."""
    auth = settings.login
    if settings.mcp_server:
        check_mcp(settings)
    if warning := settings.open_access_warning:
        log(f"warning: {warning}")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    try:
        _, url, _ = demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            auth=auth,
            auth_message="docqa: log in with the username and password from the settings.",
            prevent_thread_lock=not block,
            show_error=True,
            quiet=quiet,
            footer_links=["api", "settings"],
            run_history=False,  # nothing about the questions is kept in the browser
            enable_monitoring=False,
            max_file_size=int(settings.max_upload_mb * 1e6),
            mcp_server=settings.mcp_server,
            ssr_mode=False,
            css=CSS,
        )
    except OSError as exc:
        raise SettingsError(
            f"can't serve on {settings.host}:{settings.port} ({exc})", "choose another port (--port) or host"
        ) from None
    return url


def serve(settings: Settings) -> None:
    """Build the pipeline and serve the chat until interrupted (`docqa serve`, `python app.py`)."""
    apply_runtime_settings(settings)
    _ = settings.login  # a half-configured login fails before minutes of loading, not after
    pipeline = Pipeline.from_settings(settings)
    _ = pipeline.generator  # load now, so the first question doesn't wait for the model
    launch(build_app(pipeline), settings)
