"""How the runner takes a scheduler's SIGTERM: as the Ctrl-C it already handles, so a sweep
stopped by Slurm, systemd or `kill` records its running trials as interrupted instead of dying
with them unrecorded."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """A scheduler's SIGTERM (Slurm's time limit, systemd, `kill`) behaves as Ctrl-C: no new
    trial, the running ones stop after their current evaluation and are recorded interrupted; a
    second SIGTERM (or Ctrl-C) stops them now. Signals can only be set in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
