"""The few errors docqa raises on purpose.

Each carries the cause and the fix; the CLI and the web app turn them into one-line messages.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class DocqaError(Exception):
    """Base class: `cause` says what went wrong, `fix` says what the user can do about it."""

    def __init__(self, cause: str, fix: str = "") -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.cause}. Fix: {self.fix}" if self.fix else self.cause


class SettingsError(DocqaError):
    """A settings file, environment variable or option has a bad key or value."""


class DocsError(DocqaError):
    """The documents folder is missing, empty, or holds nothing readable."""


class IndexStateError(DocqaError):
    """The index is missing, corrupt, locked, or built with other settings."""


class ModelError(DocqaError):
    """Model weights are missing, fail their hash, or fail to load."""


class QuestionError(DocqaError):
    """The question itself is unusable (empty after cleaning)."""


class BusyError(DocqaError):
    """The server's queue is full."""
