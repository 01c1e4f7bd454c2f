"""The parent side of a trial process: start it (forked from a server that already imported
torch), relay its progress, and turn its result, or its death, into a TrialResult.

A process that dies without sending a result is a failed trial; SIGKILL from outside is most
often the kernel's out-of-memory killer, unless the runner itself stopped the trial.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from tunelab.engine.run import child
from tunelab.engine.run.jobs import TrialJob, TrialResult, running

Progress = Callable[[str, dict[str, Any]], None]


def forkserver_context() -> BaseContext:
    """Trial processes fork from a server that imported the training stack once. The preload
    list only matters when the server starts (the first trial), so setting it again is free."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tunelab.engine.run.preload"])
    return context


def run_child(kind: str, job: TrialJob, on_progress: Progress | None = None,
              on_start: Callable[[Any], None] | None = None, context: BaseContext | None = None,
              stopped: Callable[[], bool] = lambda: False) -> TrialResult:
    """Runs one job in a fresh process; a process that dies becomes a failed result. The
    process is forked from the preloaded server unless another `context` is given; `stopped`
    says whether the runner killed it on purpose (then a SIGKILL is not an out-of-memory)."""
    ctx = context or forkserver_context()
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    log = str(Path(job.out_dir) / f"{kind}.log")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child.main, args=(kind, job, send, os.getpid(), log),  # type: ignore[attr-defined]
                          name=f"tunelab-{kind}")
    process.start()
    send.close()
    if on_start is not None:
        on_start(process)
    result: TrialResult | None = None
    try:
        while True:
            try:
                if receive.poll(0.2):
                    event, payload = receive.recv()
                    if event == "result":
                        result = payload
                    elif on_progress is not None:
                        on_progress(event, payload)
                    continue
            except EOFError:
                break
            if not process.is_alive() and not receive.poll(0) and not running(process.pid):
                break
        process.join()
    except BaseException:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
        raise
    if result is None:
        code = process.exitcode
        how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        reason = "oom" if code == -9 and not stopped() else "killed"
        return TrialResult("failed", fail_reason=reason,
                           error=f"the trial process {how}; see {log}")
    return result
