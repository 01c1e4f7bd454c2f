"""Short-lived DuckDB connections, by the store rules: open, do one thing, close.

DuckDB lets one process write, and while it has the file open no other process
can even read it. So nobody keeps the file open: every open here retries while
another process holds the lock, and every caller closes as soon as it is done.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from tunelab.store.errors import StoreError, StoreLocked

DEFAULT_STORE = "tunelab.duckdb"

_HOLDER = re.compile(r"\(PID (\d+)\)")


def _is_lock_error(error: Exception) -> bool:
    text = str(error)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def lock_holder(error: Exception) -> str:
    """Who holds the file, as DuckDB's lock message tells it ("process 1234" or "another process")."""
    found = _HOLDER.search(str(error))
    return f"process {found.group(1)}" if found else "another process"


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("tunelab.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(found)


MIGRATIONS = _migrations()
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _migrate(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    current = (row[0] if row else None) or 0
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {current}, newer than this tunelab understands "
            f"({SCHEMA_VERSION}). Upgrade tunelab (pip install -U tunelab) to use it.",
            "store is newer than tunelab",
        )
    for version, sql in MIGRATIONS:
        if version > current:
            con.execute("BEGIN")
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            con.execute("COMMIT")


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not _is_lock_error(error):
                raise StoreError(f"cannot open {path}: {error}") from error
            if time.monotonic() >= deadline:
                raise StoreLocked(
                    f"{path} is held by {lock_holder(error)}; waited {wait:g}s. "
                    "Close that program (a duckdb shell keeps the file open) and try again.",
                ) from error
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


@contextmanager
def writing(path: str | Path, wait: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection to the store, created and migrated if needed, closed on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(path, read_only=False, wait=wait)
    try:
        _migrate(con, path)
        yield con
    finally:
        con.close()


@contextmanager
def reading(path: str | Path, wait: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to an existing store, closed on exit."""
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"no store at {path}. Run an experiment first (tunelab run FILE) "
            "or point at one with --store PATH.",
            "no store",
        )
    con = _open(path, read_only=True, wait=wait)
    try:
        row = (
            con.execute("SELECT max(version) FROM schema_version").fetchone()
            if _has_table(con, "schema_version")
            else None
        )
        version = (row[0] if row else 0) or 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}, newer than this tunelab understands "
                f"({SCHEMA_VERSION}). Upgrade tunelab to read it.",
                "store is newer than tunelab",
            )
        yield con
    finally:
        con.close()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])
