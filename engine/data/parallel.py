"""All cores for the per-row work of a preparation: a function over chunks of a list, in forked
worker processes, results in order.

Fork, not spawn: the workers inherit the rows and the tokenizer instead of receiving them
pickled, and start in milliseconds rather than re-importing transformers. Fork is only safe from
a process with one working thread (a forked thread pool holds locks that never come free), so
from a threaded caller (the TUI, a trainer) and for small inputs the chunks run here, one by one.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

PARALLEL_MIN = 20_000  # fewer items than this are not worth the workers' start
_JOB: tuple[Callable[[Sequence[Any]], Any], Sequence[Any], int] | None = None  # in a worker only


def cores() -> int:
    """The cores this process may use (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def _single_threaded() -> bool:
    """Called from the main thread, with no other thread doing work. Daemon helper threads (tqdm's
    monitor, left by datasets) only sleep on an event, so they hold no lock a child could need."""
    main = threading.main_thread()
    return threading.current_thread() is main and not any(
        t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main)


def _start(fn: Callable[[Sequence[Any]], Any], items: Sequence[Any], size: int) -> None:
    global _JOB  # noqa: PLW0603 - the worker's one job, inherited through fork
    _JOB = (fn, items, size)


def _chunk(n: int) -> Any:
    assert _JOB is not None
    fn, items, size = _JOB
    return fn(items[n * size:(n + 1) * size])


def chunks(fn: Callable[[Sequence[Any]], Any], items: Sequence[Any], size: int) -> Iterator[Any]:
    """fn of each chunk of `size` items, in order; on all cores when it pays."""
    count = (len(items) + size - 1) // size
    workers = min(cores(), count)
    if (workers < 2 or len(items) < PARALLEL_MIN or not _single_threaded()
            or "fork" not in multiprocessing.get_all_start_methods()):
        for n in range(count):
            yield fn(items[n * size:(n + 1) * size])
        return
    # the tokenizers library warns in every child when it was used before the fork; told
    # explicitly, the children run it on one thread each (the cores are taken by the workers)
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # the objects that exist now move out of the collector's sight, so that a collection in a
    # worker does not write to every one of them and copy all the parent's pages (copy-on-write)
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers, _start, (fn, items, size)) as pool:
            yield from pool.imap(_chunk, range(count))
    finally:
        gc.unfreeze()
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved
