"""Short-lived DuckDB connections, by the store rules: open, do one thing, close.

DuckDB lets one process write, and while it has the file open no other process
can even read it. So nobody keeps the file open: every open here retries while
another process holds the lock, and every caller closes as soon as it is done.
"Open" is an ATTACH to one in-memory DuckDB kept per process (see `_host`), and
"close" a DETACH: the same rule, at a few milliseconds instead of twenty.

`writing` also migrates: a store from an older tunelab is copied aside
(`<store>.vN.bak`) and brought to SCHEMA_VERSION; one from a newer tunelab is
refused. `reading_many` reads several stores, or an older one, as one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from tunelab.store.damage import check_intact, damaged, is_damage, reason
from tunelab.store.errors import StoreDamaged, StoreError, StoreLocked

DEFAULT_STORE = "tunelab.duckdb"

# What the store has to tell a person (a migration, a held file) goes to this logger. With no
# logging set up, Python prints warnings to stderr; the TUI routes them to a notification.
log = logging.getLogger("tunelab.store")

_HOLDER = re.compile(r"held in (.+?) \(PID (\d+)\)")


def _is_lock_error(error: Exception) -> bool:
    text = str(error)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


_FULL = ("No space left on device", "Disk quota exceeded")  # ENOSPC, EDQUOT in DuckDB's text


def _is_disk_full(error: Exception) -> bool:
    return any(sign in str(error) for sign in _FULL)


def _disk_full(path: Path, error: Exception) -> StoreError:
    why = next(sign for sign in _FULL if sign in str(error))
    return StoreError(
        f"cannot write to {path}: the disk is full ({why}). Nothing recorded is lost: "
        "the store keeps what it had (DuckDB finishes an interrupted write from its .wal file "
        "on the next open) and the events wait in the spool. Free space on that disk and run "
        "again.", "disk full")


def lock_holder(error: Exception) -> str:
    """Who holds the file, from DuckDB's lock message: "process 1234 (duckdb runs.duckdb)"."""
    found = _HOLDER.search(str(error))
    if not found:
        return "another process"
    program, pid = found.group(1), found.group(2)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
        words[0] = Path(words[0]).name
        command = " ".join(" ".join(w.split()) for w in words)  # one line, whatever it ran
    except (OSError, IndexError):
        command = Path(program).name
    if len(command) > 60:
        command = command[:57] + "…"
    return f"process {pid} ({command})"


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


def _version(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> int:
    """The schema version of a store; 0 for an empty file."""
    prefix = f'"{catalog}".main.' if catalog else ""
    try:
        found = con.execute(f"SELECT max(version) FROM {prefix}schema_version").fetchall()[0]
    except duckdb.CatalogException:
        return 0
    return (found[0] if found else 0) or 0


def _too_new(path: Path, version: int) -> StoreError:
    return StoreError(
        f"{path} has schema version {version}, newer than this tunelab understands "
        f"({SCHEMA_VERSION}). Upgrade tunelab (pip install -U tunelab) to use it.",
        "store is newer than tunelab",
    )


def _not_a_store(path: Path) -> StoreError:
    return StoreError(
        f"{path} is a DuckDB file without tunelab's tables (empty, or not a tunelab store). "
        "Point --store at the store `tunelab run` made, or run an experiment to fill it.",
        "not a tunelab store",
    )


def backup_path(path: Path, version: int) -> Path:
    """Where the copy of a store is kept before migrating it from `version`."""
    candidate = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.v{version}.bak.{n}")
        n += 1
    return candidate


def _migrate(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    current = _version(con)
    if current > SCHEMA_VERSION:
        raise _too_new(path, current)
    if current == SCHEMA_VERSION:
        return
    if current > 0:
        # A store from an older tunelab: keep a copy of it as it was before changing anything.
        # We hold the write lock, so nobody else changes it while it is copied; the checkpoint
        # moves any write-ahead log into the file first.
        con.execute("CHECKPOINT")
        backup = backup_path(path, current)
        shutil.copy2(path, backup)
        log.warning("tunelab: %s is from an older tunelab (schema %d); migrating it to schema %d. "
                    "The old file is kept as %s.", path, current, SCHEMA_VERSION, backup)
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    from tunelab.store.views import refresh_trial_summary

    con.execute("BEGIN")
    try:
        for version, sql in MIGRATIONS:
            if version > current:
                con.execute(sql)
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        refresh_trial_summary(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# Opening a DuckDB file the plain way (`duckdb.connect(path)`) builds a whole database instance,
# with its catalog of built-in functions: about 20 ms of CPU before the first query. tunelab
# instead keeps one in-memory instance per process, which holds no file, and ATTACHes the store
# for the length of one read or one write batch, then DETACHes it (which releases the file lock,
# after a checkpoint for a write). Same rule, nobody keeps the file open; a few ms per open.
_host: tuple[int, duckdb.DuckDBPyConnection] | None = None
_host_guard = threading.Lock()
_path_locks: dict[str, threading.RLock] = {}
_aliases: set[str] = set()


def _host_connection() -> duckdb.DuckDBPyConnection:
    """This process's in-memory instance; a forked child makes its own (threads don't fork)."""
    global _host
    with _host_guard:
        if _host is None or _host[0] != os.getpid():
            if _host is not None:  # a forked child: the parent's threads' locks are not its own
                # (on the first call there is nothing to clear, and clearing would drop the lock
                # the calling thread already holds: a second thread could attach the file too)
                _path_locks.clear()
                _aliases.clear()
            _host = (os.getpid(), duckdb.connect(":memory:"))
        return _host[1]


def _path_lock(path: Path) -> threading.RLock:
    """One attachment of a file at a time in this process (DuckDB refuses a second)."""
    key = str(path.resolve())
    with _host_guard:
        return _path_locks.setdefault(key, threading.RLock())


def _take_alias(path: Path) -> str:
    with _host_guard:
        alias = _alias(path, _aliases)
        _aliases.add(alias)
        return alias


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str, wait: float,
            read_only: bool = True, check: bool = True) -> None:
    """ATTACH a store, retrying while another process holds it, up to `wait` seconds.

    A damaged file raises StoreDamaged: a truncated one before DuckDB sees it (`check`), one
    whose headers DuckDB refuses when it attaches it.
    """
    if check:
        check_intact(path)
    literal = str(path).replace("'", "''")
    mode = " (READ_ONLY)" if read_only else ""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            con.execute(f"ATTACH '{literal}' AS \"{alias}\"{mode}")
            return
        except duckdb.Error as error:
            if is_damage(error):
                raise damaged(path, reason(error)) from error
            if _is_disk_full(error):  # attaching replays a write-ahead log, which writes
                raise _disk_full(path, error) from error
            if not isinstance(error, duckdb.IOException):
                raise
            if not _is_lock_error(error):
                raise StoreError(f"cannot open {path}: {error}") from error
            if time.monotonic() >= deadline:
                holder = lock_holder(error)
                raise StoreLocked(
                    f"{path} is held by {holder}; waited {wait:g}s. "
                    "Close that program (a duckdb shell keeps the file open) and try again.",
                    holder=holder,
                ) from error
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


@contextmanager
def held(paths: list[Path], wait: float) -> Iterator[None]:
    """Holds the files against the other threads of this process for the block: a connection of
    its own (the SQL console's, `reading_many`'s) attaches them, and DuckDB refuses a file that
    another instance of the same process has attached ("Unique file handle conflict")."""
    locks = [_path_lock(p) for p in sorted(set(paths), key=lambda p: str(p.resolve()))]
    taken: list[threading.RLock] = []
    try:
        for path_lock in locks:
            if not path_lock.acquire(timeout=max(wait, 0.001)):
                raise StoreLocked(f"a store is busy in this process (another thread is writing "
                                  f"or reading it); waited {wait:g}s.", holder="this process")
            taken.append(path_lock)
        yield
    finally:
        for path_lock in reversed(taken):
            path_lock.release()


@contextmanager
def _attached(path: Path, read_only: bool, wait: float, check: bool = True
              ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default database is the store, attached for the block only.

    DuckDB finds some damage only when it reads a damaged block: such an error, raised in the
    block, becomes StoreDamaged (its transaction rolls back; nothing is written).
    """
    lock = _path_lock(path)
    if not lock.acquire(timeout=max(wait, 0.001)):  # another thread here has it attached
        raise StoreLocked(f"{path} is busy in this process (another thread is writing or "
                          f"reading it); waited {wait:g}s.", holder="this process")
    try:
        host = _host_connection()
        alias = _take_alias(path)
        con = host.cursor()
        try:
            _attach(con, path, alias, wait, read_only, check)
            try:
                con.execute(f'USE "{alias}"')
                yield con
            except duckdb.Error as error:
                if is_damage(error):
                    raise damaged(path, reason(error)) from error
                if _is_disk_full(error):
                    raise _disk_full(path, error) from error
                raise
            finally:
                # Closing the cursor drops what the caller left behind (an unfinished result,
                # an open transaction: rolled back); then a fresh cursor detaches the file,
                # which checkpoints a written store and releases its lock.
                con.close()
                detach = host.cursor()
                try:
                    detach.execute(f'DETACH "{alias}"')
                except duckdb.Error as error:
                    if not _is_disk_full(error):
                        raise
                    # the checkpoint of a written store failed: the batch is committed in the
                    # write-ahead log, which DuckDB replays on the next open
                    raise _disk_full(path, error) from error
                finally:
                    detach.close()
        finally:
            con.close()
            with _host_guard:
                _aliases.discard(alias)
    finally:
        lock.release()


@contextmanager
def writing(path: str | Path, wait: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection to the store, created and migrated if needed, closed on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _attached(path, read_only=False, wait=wait) as con:
        _migrate(con, path)
        yield con


@contextmanager
def reading(path: str | Path, wait: float = 10.0, check: bool = True
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to an existing store, closed on exit.

    `check=False` attaches a truncated file too, to read what can still be read of it.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"no store at {path}. Run an experiment first (tunelab run FILE) "
            "or point at one with --store PATH.",
            "no store",
        )
    with _attached(path, read_only=True, wait=wait, check=check) as con:
        version = _version(con)
        if version > SCHEMA_VERSION:
            raise _too_new(path, version)
        if version == 0 and check:
            raise _not_a_store(path)
        yield con


def wait_until_readable(path: str | Path, wait: float = 1.0) -> None:
    """Returns once the store can be read. While another process holds it for writing (a duckdb
    shell, a program of the user's), says once who, and waits on until it is free (Ctrl-C
    stops): a run started then begins when the file is free, instead of ending after a few
    seconds without a word. A missing store returns at once (the first writer makes it)."""
    path = Path(path)
    said = False
    while path.exists():
        try:
            with _attached(path, read_only=True, wait=wait):
                break
        except StoreLocked as error:
            if not said:
                log.warning("tunelab: %s is held by %s; waiting until it is free (Ctrl-C to "
                            "stop). A duckdb shell keeps the file open: close it.", path,
                            error.holder)
                said, wait = True, 5.0
    if said:
        log.warning("tunelab: %s is free; going on.", path)


def _alias(path: Path, taken: set[str]) -> str:
    base = re.sub(r"[^0-9a-zA-Z_]", "_", path.stem) or "store"
    if base[0].isdigit() or base in {"main", "memory", "system", "temp"}:
        base = "store_" + base
    alias, n = base, 2
    while alias in taken:
        alias, n = f"{base}_{n}", n + 1
    return alias


@contextmanager
def reading_many(paths: list[str | Path] | list[Path], wait: float = 10.0
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
    """Several stores (or one from an older tunelab) queried as one, read-only.

    An in-memory DuckDB attaches each file read-only under its name (`box1.duckdb` → `box1`,
    so `box1.trials` is that file's table) and defines, in its own main schema, every table as
    the union of that table in all the files (`UNION ALL BY NAME`: a column an older file lacks
    is NULL) and the views of the current schema over those unions. Nothing is written to the
    files. Rows are not deduplicated across files: two machines sharing one Optuna study each
    record their own trials, and an experiment row appears once per file.
    """
    with held([Path(p) for p in paths], wait):
        yield from _reading_many([Path(p) for p in paths], wait)


def _reading_many(paths: list[Path], wait: float) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    try:
        taken: set[str] = set()
        aliases = []
        for raw in paths:
            path = Path(raw)
            if not path.exists():
                raise StoreError(f"no store at {path}.", "no store")
            alias = _alias(path, taken)
            taken.add(alias)
            _attach(con, path, alias, wait)
            try:
                version = _version(con, alias)
            except duckdb.Error as error:
                if is_damage(error):
                    raise damaged(path, reason(error)) from error
                raise
            if version > SCHEMA_VERSION:
                raise _too_new(path, version)
            aliases.append(alias)
        # The current schema, empty, in memory; then each table becomes the union of the files'.
        con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
        for _, sql in MIGRATIONS:
            con.execute(sql)
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory'").fetchall()]
        con.execute("CREATE SCHEMA _empty")
        for table in tables:
            having = [a for a in aliases if con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ? "
                "AND schema_name = 'main'", [a, table]).fetchall()[0][0]]
            if not having:
                continue  # no file has it yet: the empty table stays
            # the empty table of the current schema first, so every current column is there
            con.execute(f'CREATE TABLE _empty."{table}" AS FROM memory.main."{table}" LIMIT 0')
            union = " UNION ALL BY NAME ".join(
                [f'SELECT * FROM _empty."{table}"']
                + [f'SELECT * FROM "{a}".main."{table}"' for a in having])
            con.execute(f'DROP TABLE memory.main."{table}"')
            con.execute(f'CREATE VIEW memory.main."{table}" AS {union}')
        from tunelab.store.views import refresh_trial_summary

        refresh_trial_summary(con)
        yield con
    except duckdb.Error as error:
        if not is_damage(error):
            raise
        named = [Path(p) for p in paths if str(Path(p)) in str(error)]
        if len(paths) == 1 or len(named) == 1:
            raise damaged(named[0] if named else Path(paths[0]), reason(error)) from error
        raise StoreDamaged(f"one of {', '.join(str(p) for p in paths)} is damaged "
                           f"({reason(error)}); read each alone to find which.") from error
    finally:
        con.close()
