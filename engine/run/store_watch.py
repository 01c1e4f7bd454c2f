"""What a sweep does about its store while trials run: a store held by another process is said
(who holds it) and the results wait in the spool; a store deleted or replaced under the sweep
lets the running trials finish into the spool, starts no new trial, and ends the run with one
message that says what became of the trials and the two ways on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunelab.store import Spool, StoreError

LOOK_EVERY_S = 5.0  # while trials run, how often the runner looks at the store


class StoreWatch:
    def __init__(self, spool: Spool, runs: Path) -> None:
        self.spool = spool
        self.runs = runs  # the experiment's run folder, named in the message
        self._looked = time.monotonic()
        self._ended: list[int] = []  # trials that ended once the store was gone

    @property
    def gone(self) -> bool:
        return self.spool.gone is not None

    def look(self) -> None:
        """While trials run, the runner writes nothing and would not notice a store that is held
        or gone until a trial ends. Every few seconds a try at taking in what waits says who
        holds it (once, after a few seconds: Spool.ingest) or finds it gone (no new trial)."""
        if time.monotonic() - self._looked < LOOK_EVERY_S:
            return
        self._looked = time.monotonic()
        try:
            self.spool.ingest(wait=0.2)
        except StoreError:
            pass  # damaged, or the disk full: said by the write that meets it

    def ended(self, number: int) -> None:
        """A trial ended: one of those that finished after the store went, if it did."""
        if self.gone:
            self._ended.append(number)

    def keep(self, rows: list[Any]) -> None:
        """Rows written to the spool only, when the store already refused a write: they wait
        there for the next writer of a healthy store."""
        try:
            self.spool.write(rows, ingest=False)
        except StoreError:
            pass  # the spool itself cannot be written (full disk): said by the first error

    def words(self) -> str:
        """The one message of a store that went away under the sweep."""
        store = self.spool.store
        what = "deleted" if not store.exists() else "replaced by another file"
        ran = self._ended
        trials = (f"trial{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))}, running "
                  "then, finished" if ran else "no trial was running")
        return (f"{store} was {what} while the sweep ran: {trials}; what the store had not taken "
                f"in waits in {self.spool.path.parent}. No new trial was started.\n"
                "To go on with the trials recorded in it, put the file back and run the same "
                "command again: the waiting results go in and the sweep goes on. Or run it again "
                f"as it is: a new {store.name} starts there with what waited, and the earlier "
                "trials' rows are recorded again from the study (their curves and samples were "
                f"in the old file; their folders stay in {self.runs}).")
