"""The one error hierarchy of tunelab: a human title and message, never a traceback.

It lives in the store because every layer may raise it and the store imports no
other layer; `tunelab.engine.errors` re-exports it with the engine's own kinds.
"""

from __future__ import annotations


class TunelabError(Exception):
    """An error a user can act on. `str()` is the message; `title` is a short heading."""

    title = "tunelab error"

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title


class StoreError(TunelabError):
    title = "store error"


class StoreLocked(StoreError):
    """The DuckDB file stayed locked by another process for longer than we waited.

    `holder` says who holds it ("process 1234 (duckdb runs.duckdb)"), for a screen that keeps
    showing the data it last had and says why it is not updating.
    """

    title = "store locked"

    def __init__(self, message: str, title: str | None = None, holder: str = "another process"
                 ) -> None:
        super().__init__(message, title)
        self.holder = holder


class StoreDamaged(StoreError):
    """The DuckDB file is damaged (truncated, overwritten): tunelab reads what it can and never
    writes to it. `path` is the damaged file."""

    title = "store damaged"

    def __init__(self, message: str, title: str | None = None, path: str = "", why: str = ""
                 ) -> None:
        super().__init__(message, title)
        self.path = path
        self.why = why  # DuckDB's words, or the size check's


class StoreGone(StoreError):
    """The store file was deleted or replaced while this process was writing to it."""

    title = "store gone"
