"""Moves a trial's spool into the store on a thread of its own, off the training loop.

A trial writes every logged number to its spool at once (fsynced: recorded) and asks for an
ingest into DuckDB every few seconds and at each evaluation. Done on the training thread, each
ingest (open the store, insert, commit, close: ~0.1 s, mostly waiting on the disk) stopped
training: py-spy on bench/bench_trial.py put 2.2-2.7 % of a quickstart trial's training time
there, the whole of its gap to plain TRL. Here the training thread only asks; this thread
ingests. The spool's own lock keeps its writes and ingests apart, and the trial's final
ingest (`Spool.close`) still runs on the training thread, after this one's last.

A fault of the store (gone, damaged, a full disk) still stops the trial with its words: it is
raised on the training thread at the next request or at `close`.
"""

from __future__ import annotations

import threading
from typing import Any


class Ingester:
    def __init__(self, spool: Any) -> None:
        self._spool = spool
        self._due = threading.Event()  # a request or close is waiting for the thread
        self._requested = False
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="tunelab-ingest", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ingest soon; raises here the fault an earlier ingest met."""
        self._raise()
        self._requested = True
        self._due.set()

    def close(self) -> None:
        """Waits for the ingest under way or asked for; raises a fault it met."""
        self._closing = True
        self._due.set()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        ingest = getattr(self._spool, "ingest", None)  # ranks other than 0 write no spool
        while True:
            self._due.wait()
            self._due.clear()
            if self._requested and ingest is not None and self._error is None:
                self._requested = False
                try:
                    ingest(wait=0.2)  # a locked store: the events wait in the spool, as before
                except Exception as error:  # noqa: BLE001 - handed to the training thread
                    self._error = error
            if self._closing:
                return
