"""Spool first, then DuckDB: an event counts as recorded once it is fsynced here.

Each writing process owns one spool file (JSON lines) in `<store>.spool/` and
holds an exclusive `flock` on it while it lives. After each batch it tries to
move its spool into the store; when the store is locked the events wait in the
spool and the next batch tries again. Any writer that gets the store also
ingests spool files whose lock it can take: their owner is gone (exited or
killed), so nothing a dead process acknowledged is ever lost.

Faults stop the writer with words and lose nothing already recorded: a spool write that fails
(a full disk) is cut back to the last whole batch and raises StoreError; a store that is damaged
(StoreDamaged), deleted or replaced (StoreGone) or cannot be written (a full disk: StoreError)
leaves the events in the spool, where the next writer of a healthy store takes them in.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunelab.store import connection
from tunelab.store.connection import log
from tunelab.store.errors import StoreDamaged, StoreError, StoreGone, StoreLocked
from tunelab.store.ingest import RULES, ingest_file
from tunelab.store.rows import Row


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def spool_dir(store: str | Path) -> Path:
    store = Path(store)
    return store.with_name(store.name + ".spool")


def ingest_orphans(con: Any, store: str | Path, skip: Path | None = None) -> int:
    """Ingests and removes spool files nobody holds. Needs an open write connection."""
    folder = spool_dir(store)
    if not folder.is_dir():
        return 0
    moved = 0
    for path in sorted(folder.glob("*.jsonl")):
        if skip is not None and path == skip:
            continue
        try:
            f = path.open("rb")
        except FileNotFoundError:
            continue
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive and will ingest it
            if not path.exists():
                continue  # another ingester took it between our open and our lock
            moved += ingest_file(con, path)
            path.unlink(missing_ok=True)
    return moved


def flush_orphans(store: str | Path, wait: float = 0.5) -> bool:
    """Best effort: move spools of finished processes into the store. False if it was locked."""
    folder = spool_dir(store)
    if not folder.is_dir() or not any(folder.glob("*.jsonl")):
        return True
    try:
        with connection.writing(store, wait=wait) as con:
            ingest_orphans(con, store)
        return True
    except (StoreLocked, StoreDamaged):
        return False  # the spools wait; a damaged store is reported by the read that follows


class Spool:
    """One process's spool. `write()` returns once the events are on disk."""

    def __init__(self, store: str | Path, tag: str = "", say_locked_after: float = 5.0,
                 keep_when_gone: bool = False, final_wait: float = 30.0) -> None:
        """`keep_when_gone`: a store deleted or replaced under this writer does not stop it
        (StoreGone): its events stay in the spool, `gone` says what happened, and the writer
        decides what to tell (a sweep's running trials finish into the spool). `final_wait`:
        how long `close` waits for a held store; a trial process waits briefly, because its
        runner takes in what it leaves (a trial's duration must not count someone's lock)."""
        self.store = Path(store)
        folder = spool_dir(self.store)
        name = f"{socket.gethostname()}-{os.getpid()}-{tag or 'w'}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a write that fails leaves no bytes in a buffer to be written later,
            # after the cut below, in the middle of the next batch.
            self._file = self.path.open("ab", buffering=0)
        except OSError as error:
            raise StoreError(f"cannot create the spool {self.path}: {error.strerror or error}. "
                             "Nothing was recorded.", "cannot record") from error
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The store file this spool writes to, once known: if another file takes its place
        # (deleted, replaced) the spool keeps its events instead of starting a new store there.
        self._identity = _identity(self.store)
        self._lock = threading.Lock()
        self._pending = 0
        self._tables: set[str] = set()  # what the spool holds now: one reader pass per table
        self._said_locked = False
        self._locked_since: float | None = None
        self.say_locked_after = say_locked_after  # seconds of lock before the user is told
        self._backoff = 0.0  # while the store is locked, ingest is tried at growing intervals
        self._retry_at: float | None = None
        self.keep_when_gone = keep_when_gone
        self.final_wait = final_wait
        self.gone: StoreGone | None = None  # set when the store went away (keep_when_gone)

    def write(self, events: Iterable[Row | Mapping[str, Any]], ingest: bool = True) -> None:
        """Appends rows (or ready events) to the spool, fsynced; then tries to ingest."""
        ready: list[Mapping[str, Any]] = [e.event() if isinstance(e, Row) else e for e in events]
        tables = {e.get("table") for e in ready}
        unknown = [t for t in tables if t not in RULES]
        if unknown:  # refused here, where the bad event is made, not later in every ingest
            raise StoreError(f"unknown table in event: {unknown[0]!r}")
        data = b"".join(
            json.dumps(e, separators=(",", ":"), default=str).encode() + b"\n" for e in ready
        )
        with self._lock:
            self._append(data, len(ready))
            self._tables |= tables  # type: ignore[arg-type]
            self._pending += 1
        if ingest:
            self.ingest(wait=0.2)

    def _append(self, data: bytes, count: int) -> None:
        """Appends whole lines and fsyncs; on failure cuts the file back to the last whole batch,
        so a torn line never glues itself to the next batch's first event."""
        fd = self._file.fileno()
        whole = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0:]
            os.fsync(fd)
        except OSError as error:
            try:
                os.ftruncate(fd, whole)
            except OSError:
                pass  # a torn last line is left out by every reader anyway
            raise StoreError(
                f"cannot write to the spool {self.path}: {error.strerror or error}. "
                f"The {count} events of this batch are not recorded; everything recorded before "
                f"is kept (in {self.store} and in the spool). Free space on that disk and run "
                "again: tunelab run resumes the sweep.", "cannot record") from error

    def _check_same_store(self) -> None:
        """Raises StoreGone if the store file this spool wrote to was deleted or replaced."""
        if self._identity is None or _identity(self.store) == self._identity:
            return
        state = "deleted" if not self.store.exists() else "replaced by another file"
        raise StoreGone(
            f"{self.store} was {state} while tunelab was writing to it. The results not yet in "
            f"it are kept in {self.path}. To keep them, put the store back; to start a new "
            f"store there, run again: the next writer takes in the waiting events.",
            "store gone")

    def ingest(self, wait: float = 0.2, final: bool = False) -> bool:
        """Moves this spool (and orphans) into the store. False when the store stayed locked.

        When the lock lasts longer than a moment (or at the final ingest) the user is told
        once who holds the file; the events stay safe in the spool meanwhile.
        """
        with self._lock:
            if self._pending == 0 and not any(
                p != self.path for p in spool_dir(self.store).glob("*.jsonl")
            ):
                return True
            now = time.monotonic()
            if not final and self._retry_at is not None and now < self._retry_at:
                return False  # locked a moment ago: don't slow the writer down with another wait
            try:
                self._check_same_store()
            except StoreGone as error:
                if not self.keep_when_gone:
                    raise
                self.gone = self.gone or error
                return False  # the events stay here; the next writer of a healthy store takes them
            try:
                self._ingest_all(wait, final)
            except StoreLocked as error:
                now = time.monotonic()
                self._locked_since = self._locked_since or now
                self._backoff = min(self._backoff * 2, 10.0) if self._backoff else 0.5
                self._retry_at = now + self._backoff
                if not self._said_locked and (
                        final or now - self._locked_since > self.say_locked_after):
                    self._say_held(error)
                return False
            if self._said_locked and self._locked_since is not None:
                log.warning("tunelab: %s is free again; the kept results are in it.", self.store)
            self._locked_since = None
            self._backoff = 0.0
            self._retry_at = None
            self._identity = _identity(self.store)
            self._file.truncate(0)
            self._file.seek(0)
            self._pending = 0
            self._tables = set()
            return True

    def _ingest_all(self, wait: float, final: bool) -> None:
        """This spool and the orphans into the store. A final ingest that has to wait for a
        held store says first who holds it, and then waits: the writer is not silent while it
        waits at its end."""
        first = min(wait, 0.5) if final and not self._said_locked else wait
        try:
            with connection.writing(self.store, wait=first) as con:
                ingest_file(con, self.path, self._tables)
                ingest_orphans(con, self.store, skip=self.path)
            return
        except StoreLocked as error:
            if first >= wait:
                raise
            self._locked_since = self._locked_since or time.monotonic()
            self._say_held(error)
        with connection.writing(self.store, wait=wait - first) as con:
            ingest_file(con, self.path, self._tables)
            ingest_orphans(con, self.store, skip=self.path)

    def _say_held(self, error: StoreLocked) -> None:
        log.warning("tunelab: %s is held by %s. Results are kept in %s and moved in when it is "
                    "free.", self.store, error.holder, self.path.parent)
        self._said_locked = True

    def close(self, wait: float | None = None) -> bool:
        """Final ingest; if the store stays locked the spool file stays for the next writer."""
        if self._file.closed:
            return True
        try:
            done = self.ingest(wait=self.final_wait if wait is None else wait, final=True)
        except StoreError:  # damaged or gone: said by the write that found it; the events stay
            log.warning("tunelab: %s could not take the results; they are kept in %s.",
                        self.store, self.path)
            done = False
        self._file.close()  # releases the flock: any writer may now ingest what is left
        if done:
            self.path.unlink(missing_ok=True)
        return done

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
