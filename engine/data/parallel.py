"""All cores for the per-row work of a preparation: a function over chunks of a list, in forked
worker processes, results in order; and two jobs at once (`beside`: the reading of the rows in
a child while this process loads the tokenizer).

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
from typing import Any, TypeVar

from tunelab.engine.errors import DataError

T = TypeVar("T")
U = TypeVar("U")

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


def can_fork() -> bool:
    """Whether work may go to forked processes from here: two cores or more, and no other thread
    that a child could inherit in the middle of its work."""
    return cores() >= 2 and _single_threaded() and "fork" in multiprocessing.get_all_start_methods()


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
    if workers < 2 or len(items) < PARALLEL_MIN or not can_fork():
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


def _send(fn: Callable[[], Any], out: Any) -> None:
    try:
        result: tuple[bool, Any] = (True, fn())
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        result = (False, error)
    out.send(result)
    out.close()


def beside(there: Callable[[], T], here: Callable[[], U]) -> tuple[T, U]:
    """`there` in a forked child process while `here` runs in this one, on two cores: both
    results (`there`'s pickled back). A failure of `there` is raised first, as if it had run
    first; Ctrl-C stops both. Where forking is not safe (see chunks), one after the other."""
    if not can_fork():
        return there(), here()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_send, args=(there, send), daemon=True)
    child.start()
    send.close()
    try:
        try:
            mine: Any = (True, here())
        except Exception as error:  # noqa: BLE001 - raised below, after there's own failure
            mine = (False, error)
        ok, theirs = receive.recv()
    except EOFError:  # the child is gone without a word (killed: out of memory, say)
        child.join()
        raise DataError(f"the preparation's reading process ended unexpectedly (exit code "
                        f"{child.exitcode}); run it again, or with less data") from None
    except BaseException:  # Ctrl-C
        child.terminate()
        raise
    finally:
        receive.close()
        child.join()
    if not ok:
        raise theirs
    if not mine[0]:
        raise mine[1]
    return theirs, mine[1]
