"""Conversations and feedback, kept in SQLite under the data folder.

One file, `conversations.sqlite3` in `data_dir`, in WAL mode. Every read and write names the user
(the login's username, or `LOCAL_USER` without a login), so one user never sees another's
conversations. A turn keeps the whole checked answer (`Answer.to_dict`: passages retrieved and
cited, with chunk ids and text) and the settings that produced it; a rating copies both next to
the thumbs up or down and its comment, so feedback stays readable as it was given
(`docqa eval --from-feedback` turns it into draft eval cases).

The store opens the file on first use and creates it only to write: a page that only lists
conversations leaves no file behind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from docqa.errors import SettingsError
from docqa.settings import Settings
from docqa.types import Answer, Chunk, Citation, Passage

SCHEMA_VERSION = 1
FILE_NAME = "conversations.sqlite3"
LOCAL_USER = "local"  # the user when no login is set: everyone who reaches the page
TITLE_CHARS = 80
Rating = Literal["up", "down"]

SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX conversations_by_user ON conversations (user, updated_at);
CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    position INTEGER NOT NULL,
    user TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,      -- JSON: Answer.to_dict()
    settings TEXT NOT NULL,    -- JSON: what produced it (profile, model, top_k, retrieval, ...)
    created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE feedback (
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    user TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,      -- JSON: Answer.to_dict() of the rated turn
    passages TEXT NOT NULL,    -- JSON: retrieved and cited passages, with chunk ids and text
    settings TEXT NOT NULL,    -- JSON: the turn's settings
    history TEXT NOT NULL,     -- JSON: [[question, answer], ...] of the turns before it
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, position),
    FOREIGN KEY (conversation_id, position) REFERENCES turns (conversation_id, position)
);
"""


@dataclass(frozen=True)
class Summary:
    """A conversation as the list shows it."""

    id: str
    title: str
    updated_at: float
    turns: int

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.updated_at))
        return f"{self.title} · {when} · {self.turns} {'answer' if self.turns == 1 else 'answers'}"


@dataclass
class Turn:
    position: int
    answer: Answer
    settings: dict[str, Any]
    created_at: float


@dataclass
class Conversation:
    id: str
    user: str
    title: str
    created_at: float
    updated_at: float
    turns: list[Turn] = field(default_factory=list)

    @property
    def answers(self) -> list[Answer]:
        return [t.answer for t in self.turns]


@dataclass(frozen=True)
class Feedback:
    """A thumbs up or down on one answer, with what produced it."""

    conversation_id: str
    position: int
    user: str
    rating: Rating
    comment: str
    question: str
    answer: dict[str, Any]  # Answer.to_dict()
    passages: list[dict[str, Any]]  # retrieved passages (and any cited beyond them), each with "cited"
    settings: dict[str, Any]
    history: list[list[str]]  # [[question, answer], ...] before this turn
    created_at: float
    updated_at: float


def data_dir(settings: Settings) -> Path:
    """`settings.data_dir`, or a docqa folder in the user's data dir when unset."""
    if settings.data_dir is not None:
        return Path(settings.data_dir).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("docqa"))


def passage_from_dict(data: dict[str, Any]) -> Passage:
    chunk = Chunk(
        id=str(data["chunk_id"]),
        source=str(data["source"]),
        text=str(data["text"]),
        start=int(data.get("start") or 0),
        end=int(data.get("end") or 0),
        heading=data.get("heading"),
        page=data.get("page"),
    )
    return Passage(int(data["n"]), chunk, float(data.get("score") or 0.0))


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """The Answer that `Answer.to_dict` wrote (timings as rounded there)."""
    return Answer(
        question=data["question"],
        answer=data["answer"],
        abstained=bool(data["abstained"]),
        citations=[Citation(passage_from_dict(c), tuple(c.get("supports", ()))) for c in data["citations"]],
        retrieved=[passage_from_dict(p) for p in data["retrieved"]],
        timings=dict(data.get("timings", {})),
        model=data.get("model", ""),
        id=data.get("id"),
        standalone_question=data.get("standalone_question"),
        abstain_reason=data.get("abstain_reason"),
        notices=list(data.get("notices", [])),
        usage=dict(data.get("usage", {})),
        draft=data.get("draft"),
    )


def answer_passages(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The passages of an answer dict: each retrieved one, then any cited one not among them, marked "cited"."""
    cited = {c["n"]: c for c in answer.get("citations", [])}
    out = []
    for p in answer.get("retrieved", []):
        out.append({**p, "cited": p["n"] in cited, "supports": cited.get(p["n"], {}).get("supports", [])})
    seen = {p["n"] for p in out}
    out.extend({**c, "cited": True} for n, c in cited.items() if n not in seen)
    return out


def title_for(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


class ConversationStore:
    """Conversations, turns and feedback in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationStore:
        return cls(data_dir(settings) / FILE_NAME)

    # --- the connection ----------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; None when the file doesn't exist and `create` is False."""
        if self._db is not None:
            return self._db
        if not create and not self.path.exists():
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._migrate(db)
        except sqlite3.Error as exc:
            raise SettingsError(
                f"can't open the conversation store {self.path} ({exc})",
                "check that data_dir is writable, or set data_dir to another folder",
            ) from None
        self._db = db
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this docqa's {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (all or nothing), one at a time in this process."""
        with self._lock:
            db = self._connect(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        with self._lock:
            yield self._connect(create=False)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- conversations -----------------------------------------------------------------------

    def create(self, user: str, title: str = "New conversation") -> str:
        """A new, empty conversation of `user`; returns its id."""
        with self._write() as db:
            return _create(db, user, title)

    def append(self, user: str, conversation_id: str, answer: Answer, settings: dict[str, Any]) -> int:
        """Add a turn to the end of `user`'s conversation; returns its position (0 for the first)."""
        with self._write() as db:
            position = _count(db, user, conversation_id)
            if position is None:
                raise KeyError(f"no conversation {conversation_id} for this user")
            _append(db, user, conversation_id, position, answer, settings)
        return position

    def save(
        self, user: str, conversation_id: str | None, answers: list[Answer], settings: dict[str, Any]
    ) -> str | None:
        """Store the turns of `answers` not stored yet, in one transaction (creating the conversation
        on the first turn); `settings` are recorded with each new turn.

        Returns the conversation's id (None while there is nothing to store). An id that isn't one of
        this user's conversations starts a new conversation rather than writing into another's.
        """
        if not answers and conversation_id is None:
            return None
        with self._write() as db:
            stored = _count(db, user, conversation_id) if conversation_id else None
            if stored is None:
                conversation_id, stored = _create(db, user, answers[0].question if answers else ""), 0
            for position in range(stored, len(answers)):
                _append(db, user, conversation_id, position, answers[position], settings)
        return conversation_id

    def count(self, user: str, conversation_id: str) -> int | None:
        """How many turns `user`'s conversation has; None if there is no such conversation of theirs."""
        with self._read() as db:
            return None if db is None else _count(db, user, conversation_id)

    def list(self, user: str, limit: int = 100) -> list[Summary]:
        """`user`'s conversations with at least one turn, most recent first."""
        with self._read() as db:
            if db is None:
                return []
            rows = db.execute(
                "SELECT c.id, c.title, c.updated_at, COUNT(t.position) AS n FROM conversations c"
                " JOIN turns t ON t.conversation_id = c.id AND t.user = c.user"
                " WHERE c.user = ? GROUP BY c.id ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                (user, limit),
            ).fetchall()
        return [Summary(r["id"], r["title"], r["updated_at"], r["n"]) for r in rows]

    def get(self, user: str, conversation_id: str) -> Conversation | None:
        """`user`'s conversation with its turns, oldest first; None if there is none of theirs by that id."""
        with self._read() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT * FROM conversations WHERE id = ? AND user = ?", (conversation_id, user)
            ).fetchone()
            if row is None:
                return None
            turns = db.execute(
                "SELECT position, answer, settings, created_at FROM turns"
                " WHERE conversation_id = ? AND user = ? ORDER BY position",
                (conversation_id, user),
            ).fetchall()
        conversation = Conversation(row["id"], row["user"], row["title"], row["created_at"], row["updated_at"])
        conversation.turns = [
            Turn(t["position"], answer_from_dict(json.loads(t["answer"])), json.loads(t["settings"]), t["created_at"])
            for t in turns
        ]
        return conversation

    # --- feedback ----------------------------------------------------------------------------

    def rate(
        self, user: str, conversation_id: str, position: int, rating: Rating | None, comment: str | None = None
    ) -> Feedback | None:
        """Thumbs up or down on `user`'s answer at `position` (None takes the rating back).

        The answer, its passages, the settings and the earlier turns are copied next to the rating.
        `comment` None keeps the comment already given. Returns the stored feedback (None when removed).
        """
        if rating not in ("up", "down", None):
            raise ValueError(f"rating must be 'up', 'down' or None, not {rating!r}")
        now = time.time()
        with self._write() as db:
            if rating is None:
                db.execute(
                    "DELETE FROM feedback WHERE conversation_id = ? AND position = ? AND user = ?",
                    (conversation_id, position, user),
                )
                return None
            turns = db.execute(
                "SELECT position, question, answer, settings FROM turns"
                " WHERE conversation_id = ? AND user = ? AND position <= ? ORDER BY position",
                (conversation_id, user, position),
            ).fetchall()
            if not turns or turns[-1]["position"] != position:
                raise KeyError(f"no answer {position} in conversation {conversation_id} for this user")
            turn = turns[-1]
            answer = json.loads(turn["answer"])
            history = [[t["question"], json.loads(t["answer"])["answer"]] for t in turns[:-1]]
            db.execute(
                "INSERT INTO feedback (conversation_id, position, user, rating, comment, question, answer, passages,"
                " settings, history, created_at, updated_at) VALUES (?, ?, ?, ?, COALESCE(?, ''), ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (conversation_id, position) DO UPDATE SET rating = excluded.rating,"
                " comment = COALESCE(?, feedback.comment), updated_at = excluded.updated_at"
                " WHERE feedback.user = excluded.user",
                (
                    conversation_id,
                    position,
                    user,
                    rating,
                    comment,
                    turn["question"],
                    turn["answer"],
                    json.dumps(answer_passages(answer)),
                    turn["settings"],
                    json.dumps(history),
                    now,
                    now,
                    comment,
                ),
            )
        return self.get_feedback(user, conversation_id, position)

    def comment(self, user: str, conversation_id: str, position: int, comment: str) -> Feedback:
        """Set the comment on `user`'s rating of the answer at `position` (rate it first)."""
        with self._write() as db:
            updated = db.execute(
                "UPDATE feedback SET comment = ?, updated_at = ?"
                " WHERE conversation_id = ? AND position = ? AND user = ?",
                (comment.strip(), time.time(), conversation_id, position, user),
            ).rowcount
        if not updated:
            raise KeyError(f"answer {position} of conversation {conversation_id} has no rating to comment on")
        feedback = self.get_feedback(user, conversation_id, position)
        assert feedback is not None
        return feedback

    def get_feedback(self, user: str, conversation_id: str, position: int) -> Feedback | None:
        with self._read() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT * FROM feedback WHERE conversation_id = ? AND position = ? AND user = ?",
                (conversation_id, position, user),
            ).fetchone()
        return None if row is None else _feedback(row)

    def ratings(self, user: str, conversation_id: str) -> dict[int, Rating]:
        """{position: "up" or "down"} for the answers `user` rated in a conversation."""
        with self._read() as db:
            if db is None:
                return {}
            rows = db.execute(
                "SELECT position, rating FROM feedback WHERE conversation_id = ? AND user = ?", (conversation_id, user)
            ).fetchall()
        return {r["position"]: r["rating"] for r in rows}

    def feedback(self, user: str | None = None) -> list[Feedback]:
        """Every rating of `user`, oldest first; `user` None: every user's (for `docqa eval --from-feedback`)."""
        with self._read() as db:
            if db is None:
                return []
            if user is None:
                rows = db.execute("SELECT * FROM feedback ORDER BY created_at, rowid").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM feedback WHERE user = ? ORDER BY created_at, rowid", (user,)
                ).fetchall()
        return [_feedback(r) for r in rows]

    # --- export ------------------------------------------------------------------------------

    def export_markdown(self, user: str, conversation_id: str) -> str:
        """`user`'s conversation as Markdown, each answer followed by its cited passages."""
        conversation = self.get(user, conversation_id)
        if conversation is None:
            raise KeyError(f"no conversation {conversation_id} for this user")
        return conversation_markdown(conversation)


def _create(db: sqlite3.Connection, user: str, title: str) -> str:
    conversation_id = uuid.uuid4().hex
    now = time.time()
    db.execute(
        "INSERT INTO conversations (id, user, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (conversation_id, user, title_for(title), now, now),
    )
    return conversation_id


def _count(db: sqlite3.Connection, user: str, conversation_id: str) -> int | None:
    row = db.execute(
        "SELECT (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id AND t.user = c.user) AS n"
        " FROM conversations c WHERE c.id = ? AND c.user = ?",
        (conversation_id, user),
    ).fetchone()
    return None if row is None else int(row["n"])


def _append(
    db: sqlite3.Connection, user: str, conversation_id: str, position: int, answer: Answer, settings: dict[str, Any]
) -> None:
    now = time.time()
    db.execute(
        "INSERT INTO turns (conversation_id, position, user, question, answer, settings, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, position, user, answer.question, json.dumps(answer.to_dict()), json.dumps(settings), now),
    )
    title = title_for(answer.question) if position == 0 else None
    db.execute(
        "UPDATE conversations SET updated_at = ?, title = COALESCE(?, title) WHERE id = ? AND user = ?",
        (now, title, conversation_id, user),
    )


def _feedback(row: sqlite3.Row) -> Feedback:
    return Feedback(
        conversation_id=row["conversation_id"],
        position=row["position"],
        user=row["user"],
        rating=row["rating"],
        comment=row["comment"],
        question=row["question"],
        answer=json.loads(row["answer"]),
        passages=json.loads(row["passages"]),
        settings=json.loads(row["settings"]),
        history=json.loads(row["history"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def passage_location(p: Passage) -> str:
    """Where a passage is: its file, page and heading, as one line."""
    parts = [p.chunk.source]
    if p.chunk.page is not None:
        parts.append(f"page {p.chunk.page}")
    if p.chunk.heading:
        parts.append(f"“{p.chunk.heading}”")
    return ", ".join(parts)


def quoted(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines())


def conversation_markdown(conversation: Conversation) -> str:
    """Markdown of a conversation: each question, its answer, then the passages it cites (source,
    page or heading, quoted text). Document text is quoted as it is, not interpreted."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.updated_at))
    out = [f"# {conversation.title}", "", f"*docqa conversation, {len(conversation.turns)} answers, last {when}*", ""]
    for number, turn in enumerate(conversation.turns, start=1):
        a = turn.answer
        out += [f"## {number}. {' '.join(a.question.split())}", ""]
        if a.standalone_question:
            out += [f"*Searched as: {a.standalone_question}*", ""]
        out += [a.answer.strip() or "(no answer)", ""]
        if a.abstained and a.abstain_reason:
            out += [f"*Not answered: {a.abstain_reason}*", ""]
        if a.citations:
            out += ["**Sources**", ""]
            for c in sorted(a.citations, key=lambda c: c.n):
                out += [f"[{c.n}] {passage_location(c.passage)}", "", quoted(c.passage.chunk.text), ""]
    return "\n".join(out).rstrip() + "\n"
