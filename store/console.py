"""The SQL console (`tunelab sql`, the TUI's `:`): a person's own queries over the stores, made
read-only by DuckDB itself, not by reading the query.

Each query gets its own in-memory DuckDB (never the process's shared one: these settings cannot
be undone). The stores are attached READ_ONLY first, with the tables and views the docs name
(several stores, or an older one, as one: `connection.reading_many`); then the connection is
locked:

- `enable_external_access = false`: no file outside the stores is read or written (COPY, EXPORT,
  ATTACH, read_csv/read_text/read_parquet/…, glob, INSTALL), however the statement is wrapped
  (EXPLAIN ANALYZE runs what it explains);
- `autoinstall_known_extensions = false`, `autoload_known_extensions = false`: no download, no
  extension loaded on the fly;
- `lock_configuration = true`: no statement (SET, PRAGMA, RESET) undoes the above.

`allow` names the files and folders a query may use besides (`tunelab sql --allow-files PATH`):
DuckDB's `allowed_paths` / `allowed_directories`, set before the lock. DuckDB grants access
there, reading and writing alike; the stores stay attached read-only wherever they are.

`check_read_only` only words a refusal (the statement's kind, by DuckDB's own parser): the
lock is DuckDB's settings, whatever that check lets through.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import duckdb

from tunelab.store import connection
from tunelab.store.damage import damaged, is_damage, reason
from tunelab.store.errors import StoreError

StorePaths = str | Path | Sequence[str | Path]

LOCK = ("SET enable_external_access = false", "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false", "SET lock_configuration = true")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class QueryPage(QueryResult):
    truncated: bool = False  # more rows than `max_rows` came back


@cache
def schema_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tables, views) a store offers to SQL, from the migrations themselves (what they create
    and do not drop again), so that no help text lists a table short."""
    made: dict[str, str] = {}
    for _, sql in connection.MIGRATIONS:
        for verb, kind, name in re.findall(
                r"\b(CREATE(?: OR REPLACE)?|DROP)\s+(TABLE|VIEW)\s+(?:IF (?:NOT )?EXISTS\s+)?(\w+)",
                sql, flags=re.IGNORECASE):
            if verb.upper() == "DROP":
                made.pop(name.lower(), None)
            else:
                made[name.lower()] = kind.upper()
    made["trial_summary"] = "VIEW"  # regenerated as parameters appear (store.views)
    made.pop("schema_version", None)
    return (tuple(n for n, k in made.items() if k == "TABLE"),
            tuple(sorted(n for n, k in made.items() if k == "VIEW")))


def _literal(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def lock(con: duckdb.DuckDBPyConnection, allow: Sequence[Path] = ()) -> None:
    """Closes a connection to everything but what it has attached (and `allow`), for good."""
    folders = [str(p.resolve()) + "/" for p in allow if p.is_dir()]
    files = [str(p.resolve()) for p in allow if not p.is_dir()]
    if folders:  # accepted only while external access is still on
        con.execute(f"SET allowed_directories = {_literal(folders)}")
    if files:
        con.execute(f"SET allowed_paths = {_literal(files)}")
    for setting in LOCK:
        con.execute(setting)


@contextmanager
def console(stores: StorePaths, allow: Sequence[Path] = (), wait: float = 10.0
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked, read-only connection to the stores, closed on exit."""
    paths = _paths(stores)
    for path in paths:
        if not path.exists():
            raise StoreError(f"no store at {path}. Run an experiment first (tunelab run FILE) "
                             "or point at one with --store PATH.", "no store")
    with connection.held(paths, wait):
        yield from _console(paths, allow, wait)


def _console(paths: list[Path], allow: Sequence[Path], wait: float
             ) -> Iterator[duckdb.DuckDBPyConnection]:
    if len(paths) == 1:
        con = duckdb.connect()
        try:
            alias = connection._alias(paths[0], set())
            connection._attach(con, paths[0], alias, wait)
            version = connection._version(con, alias)
            if version > connection.SCHEMA_VERSION:
                raise connection._too_new(paths[0], version)
            if version == connection.SCHEMA_VERSION:  # the store's own tables and views
                con.execute(f'USE "{alias}"')
                lock(con, allow)
                try:
                    yield con
                except duckdb.Error as error:
                    if is_damage(error):
                        raise damaged(paths[0], reason(error)) from error
                    raise
                return
        finally:
            con.close()
    with connection.reading_many(paths, wait) as con:  # several, or an older one: as one
        lock(con, allow)
        yield con


def words(error: duckdb.Error) -> StoreError | None:
    """The console's refusals in tunelab's words (None for DuckDB's other errors)."""
    text = str(error)
    found = re.search(r'Cannot access (?:file|directory) "([^"]*)"', text)
    if isinstance(error, duckdb.PermissionException) and found:
        return StoreError(
            f"the console reads the stores and the files --allow-files names, nothing else: "
            f"{found.group(1)} is not among them. To let a query use a file or a folder, name "
            "it: tunelab sql --allow-files PATH …", "read-only")
    if isinstance(error, duckdb.PermissionException) or "configuration has been locked" in text:
        return StoreError(f"the console is read-only: {text.split(': ', 1)[-1]}", "read-only")
    if "attached in read-only mode" in text:
        return StoreError("the store is read-only here: a statement that writes to it is "
                          "refused. To change the file, use a duckdb shell while no sweep runs.",
                          "read-only")
    return None


READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "MULTI"}


def check_read_only(sql: str) -> None:
    """Refuses, in words, a statement that would change something (a store, a setting, a file).
    Only the words: the console's lock (`lock`) holds whatever this lets through."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # a syntax error: DuckDB's own message comes when it runs
    for statement in statements:
        kind = statement.type.name
        if kind not in READ_STATEMENTS:
            article = "an" if kind[0] in "AEIOU" else "a"
            raise StoreError(
                f"the store is read-only here: {article} {kind} statement is refused. tunelab sql runs "
                "queries (SELECT, DESCRIBE, SHOW, EXPLAIN, PRAGMA). To change the file, use a "
                "duckdb shell while no sweep runs.",
                "read-only",
            )


def _paths(stores: StorePaths) -> list[Path]:
    if isinstance(stores, (str, Path)):
        return [Path(stores)]
    return [Path(s) for s in stores]


@contextmanager
def _answering(stores: StorePaths, sql: str, allow: Sequence[Path], wait: float
               ) -> Iterator[duckdb.DuckDBPyConnection]:
    check_read_only(sql)
    try:
        with console(stores, allow, wait) as con:
            yield con
    except duckdb.Error as error:
        said = words(error)
        if said is None:
            raise
        raise said from error


def query(stores: StorePaths, sql: str, wait: float = 10.0, allow: Sequence[Path] = ()
          ) -> QueryResult:
    """Runs a person's SQL on one store or several as one; the last statement's rows come back.
    DuckDB's own errors propagate; a refusal of the lock is a StoreError."""
    with _answering(stores, sql, allow, wait) as con:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult([], [], [])
        return QueryResult([d[0] for d in cursor.description],
                           [str(d[1]) for d in cursor.description], cursor.fetchall())


def query_page(stores: StorePaths, sql: str, max_rows: int = 1000, wait: float = 10.0,
               allow: Sequence[Path] = ()) -> QueryPage:
    """`query`, keeping at most `max_rows` rows (a screen never holds a whole metrics table)."""
    with _answering(stores, sql, allow, wait) as con:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryPage([], [], [])
        rows = cursor.fetchmany(max_rows + 1)
        return QueryPage([d[0] for d in cursor.description], [str(d[1]) for d in cursor.description],
                         rows[:max_rows], len(rows) > max_rows)


def write_whole(out: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """A result file written whole or not at all: into a temporary file beside it, renamed
    over it once complete, so that a full disk leaves the old file (or none), never half a
    file. A device or a pipe (`/dev/stdout`) is written in place and never replaced: a writer
    that deletes its target when it fails (pyarrow's) must not delete /dev/full."""
    out = Path(out)
    if out.exists() and not out.is_file():
        with out.open("wb") as f:
            write(f)
        return
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as f:
            write(f)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def query_to_parquet(stores: StorePaths, sql: str, out: str | Path, wait: float = 10.0,
                     allow: Sequence[Path] = ()) -> int:
    """Writes the rows of a query to a Parquet file (by this process, not by DuckDB: the
    console writes no file; see write_whole); returns the row count."""
    import pyarrow.parquet as pq

    with _answering(stores, sql, allow, wait) as con:
        relation = con.sql(sql)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 renamed it
        table = fetch()
    write_whole(out, lambda f: pq.write_table(table, f))
    return int(table.num_rows)
