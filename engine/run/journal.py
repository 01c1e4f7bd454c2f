"""The Optuna journal file, made safe against the faults a sweep meets: a process killed while it
writes a line, a file cut short by a copy or a full disk, a line damaged by hand.

What Optuna 5.1's `JournalFileBackend` does with them (optuna/storages/journal/_file.py):
- a last line without its newline (a writer killed mid-write) is skipped by every reader, and
  the next `append_logs` writes after it: the two glue into one unreadable line, and every later
  read raises `JSONDecodeError` for good;
- an unreadable line is remembered and raised when the next line is read: a study whose journal
  has one in the middle cannot be opened, and one at the end poisons the next append;
- its lock is a symlink that a killed writer leaves behind: the next writer waits 30 s for it.

So tunelab's journal (`Journal`) locks with `flock`, which the kernel drops with its holder; sets
a torn tail aside before it appends (kept in `<journal>.torn`, never written after); and turns an
unreadable line into `JournalDamaged`, which says what to do. `repair`, run when a command opens
the study, keeps every line Optuna can read: a whole copy of the file is kept first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import signal
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock

from tunelab.engine.errors import TunelabError

log = logging.getLogger("tunelab.run")

# Optuna's operation codes (JournalOperation): which ones name a study, create a trial, name one
_CREATE_STUDY, _DELETE_STUDY, _CREATE_TRIAL = 0, 1, 4
_STUDY_OPS = {1, 2, 3}
_TRIAL_OPS = {5, 6, 7, 8, 9}


class JournalDamaged(TunelabError):
    title = "journal damaged"


class JournalLock(BaseJournalFileLock):
    """An exclusive `flock` on `<journal>.flock`, held while a line is written. Unlike Optuna's
    symlink lock, a writer killed while it holds it leaves nothing behind."""

    def __init__(self, journal: str) -> None:
        self._path = journal + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops its flock

    def __enter__(self) -> JournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Journal(JournalFileBackend):
    """Optuna's journal file with tunelab's lock, a torn tail set aside before every append, and
    words instead of a `JSONDecodeError` for an unreadable line."""

    def __init__(self, path: str) -> None:
        super().__init__(path, lock_obj=JournalLock(path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        with self._lock_held():
            cut = cut_torn_tail(Path(self._file_path))
            if cut:
                log.warning("tunelab: %s ended in a torn line (a process was killed while "
                            "writing it); its %d bytes are set aside in %s and the study goes on "
                            "without them.", self._file_path, cut, torn_path(self._file_path))
            with open(self._file_path, "ab") as f:
                _cut_short_if_asked(f, data.encode("utf-8"))
                f.write(data.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def _lock_held(self) -> JournalLock:
        assert isinstance(self._lock, JournalLock)
        return self._lock

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError as error:  # JSONDecodeError, or Optuna's "Invalid log format."
            raise JournalDamaged(
                f"{self._file_path} has a line Optuna cannot read ({error}). `tunelab run FILE` "
                "(or enqueue, rerun, confirm) repairs it: it sets the damaged lines aside, keeps "
                "a copy of the file, and goes on with every line it can read.") from None


# Fault injection for the soak (tests/test_soak.py): the chance that a journal write is cut at a
# random byte and its process killed with SIGKILL, as a crash in the middle of a write would.
FAULT_KILL = "TUNELAB_FAULT_JOURNAL_KILL"


def _cut_short_if_asked(f: Any, data: bytes) -> None:
    chance = float(os.environ.get(FAULT_KILL) or 0)
    draw = random.SystemRandom()  # not `random`: forked trial processes share its state
    if chance and draw.random() < chance:
        f.write(data[:draw.randrange(1, len(data))])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


def torn_path(journal: str | Path) -> Path:
    return Path(f"{journal}.torn")


def cut_torn_tail(path: Path) -> int:
    """Sets aside the bytes after the last newline (a line whose writer died mid-write): they are
    appended to `<journal>.torn` as one line, then cut from the journal. The caller holds the
    journal's lock, so no live writer is in the middle of that line. Returns the bytes cut."""
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return 0
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        start = _last_line_start(f, size)
        f.seek(start)
        tail = f.read()
        with torn_path(path).open("ab") as aside:
            aside.write(tail + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
        return len(tail)


def _last_line_start(f: Any, size: int) -> int:
    """Where the last line of an open file of `size` bytes begins."""
    end = size
    while end > 0:
        begin = max(0, end - 65536)
        f.seek(begin)
        found = f.read(end - begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


# -------------------------------------------------------------- repairing a damaged journal


@dataclass(frozen=True)
class Repair:
    """What `repair` did to a journal: which lines it set aside, and where the old file is."""

    journal: Path
    copy: Path  # the journal as it was, whole
    kept: int  # lines kept
    set_aside: list[int] = field(default_factory=list)  # 1-based numbers of the lines set aside
    torn_tail: bool = False  # the last line had no newline (a write cut short)
    cut_after: int | None = None  # lines after a damaged one, dropped because they depend on it

    def words(self) -> str:
        """What happened and what was done, for the person who runs the command."""
        count = len(self.set_aside)
        numbers = ", ".join(str(n) for n in self.set_aside[:5]) + (
            f" and {count - 5} more" if count > 5 else "")
        if self.torn_tail and count == 1:
            what = ("its last line was cut short (a process was killed while writing it, or the "
                    "file was cut)")
        else:
            what = f"line{'s' if count > 1 else ''} {numbers} could not be read"
        text = (f"{self.journal.name} was damaged: {what}. tunelab set "
                f"{'them' if count > 1 else 'it'} aside and goes on with the {self.kept} lines "
                f"Optuna can read; the file as it was is kept in {self.copy.name}.")
        if self.cut_after:
            text += (f" The {self.cut_after} readable lines after the first damaged one refer "
                     "to it and were set aside too.")
        return text


def needs_repair(path: Path) -> bool:
    """A cheap look at the end of the file: a torn or unreadable last line. A damaged line further
    up is found by Optuna when it reads the file (JournalDamaged)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return False
            f.seek(size - 1)
            if f.read(1) != b"\n":
                return True
            start = _last_line_start(f, size - 1)
            f.seek(start)
            return _operation(f.read(size - start)) is None
    except FileNotFoundError:
        return False


def repair(path: Path) -> Repair | None:
    """Sets aside the lines of the journal that Optuna cannot read, under its lock; None when
    there were none. A line glued to a torn one keeps its readable part. When dropping the
    damaged lines would shift what later lines refer to (a lost `create trial`), everything from
    the first damaged line on is set aside instead: the file then ends where Optuna stopped."""
    with JournalLock(str(path)):
        data = path.read_bytes() if path.exists() else b""
        *complete, tail = data.split(b"\n")  # tail: what follows the last newline (b"": none)
        kept: list[bytes] = []
        operations: list[dict[str, Any]] = []
        aside: list[int] = []
        first_bad: int | None = None  # how many lines were kept before the first damaged one
        for number, line in enumerate(complete, start=1):
            readable = _readable(line)
            if readable is None:
                aside.append(number)
                first_bad = len(kept) if first_bad is None else first_bad
                continue
            if readable is not line:
                aside.append(number)  # its torn front part; the readable rest is kept
            kept.append(readable)
            operations.append(json.loads(readable))
        if tail:
            aside.append(len(complete) + 1)
        if not aside:
            return None
        cut_after = None
        if first_bad is not None and not _consistent(operations):
            cut_after, kept = len(kept) - first_bad, kept[:first_bad]
        copy = _free_name(path.with_name(f"{path.name}.before-repair-"
                                         f"{time.strftime('%Y%m%d-%H%M%S')}"))
        copy.write_bytes(data)
        fresh = path.with_name(f".{path.name}.repairing")
        with fresh.open("wb") as f:
            f.write(b"".join(line + b"\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(fresh, path)
        return Repair(path, copy, len(kept), aside, torn_tail=bool(tail), cut_after=cut_after)


def _free_name(path: Path) -> Path:
    found, n = path, 1
    while found.exists():
        found, n = path.with_name(f"{path.name}.{n}"), n + 1
    return found


def _operation(line: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("op_code"), int) else None


def _readable(line: bytes) -> bytes | None:
    """The line, or its readable end when a write was glued to a torn one, or None."""
    if _operation(line) is not None:
        return line
    start = line.find(b'{"op_code":', 1)
    while start > 0:
        if _operation(line[start:]) is not None:
            return line[start:]
        start = line.find(b'{"op_code":', start + 1)
    return None


def _consistent(operations: list[dict[str, Any]]) -> bool:
    """Whether every operation refers to a study and a trial that exist when it is replayed, as
    Optuna numbers them (studies and trials in the order they were created)."""
    names: dict[str, int] = {}  # live studies: name -> id
    next_study = trials = 0
    for op in operations:
        code = op["op_code"]
        if code == _CREATE_STUDY:
            if op.get("study_name") not in names:
                names[op.get("study_name", "")] = next_study
                next_study += 1
        elif code == _CREATE_TRIAL or code in _STUDY_OPS:
            if op.get("study_id") not in names.values():
                return False
            if code == _CREATE_TRIAL:
                trials += 1
            elif code == _DELETE_STUDY:
                names = {k: v for k, v in names.items() if v != op["study_id"]}
        elif code in _TRIAL_OPS and not (isinstance(op.get("trial_id"), int)
                                         and op["trial_id"] < trials):
            return False
    return True
