"""The entry of a trial process. Light to import: the runner pickles `main` by reference.

The process writes its own output to a log file in the trial folder, sends
progress and its result to the runner through a pipe, and ends itself if the
runner is gone (a killed `tunelab run` leaves no training behind).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from tunelab.engine.run import threads
from tunelab.engine.run.jobs import TrialJob, TrialResult, exit_when_gone
from tunelab.store.errors import TunelabError


def _classify(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = f"{type(error).__name__}: {error}"
    if "out of memory" in text.lower() or type(error).__name__ == "OutOfMemoryError":
        return "oom"
    return "exception"


def _pin(job: TrialJob) -> int:
    """The worker's device(s), before anything touches CUDA; its share of the CPU cores (the
    runner's cores / workers, less when other trainings run on this machine), logged."""
    if job.devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = job.devices
    threads.quiet_openmp()  # for processes this one starts (torchrun ranks, tokenizers)
    threads.enter()
    taken = threads.take_share(job.threads)
    print(f"tunelab: {taken} CPU thread(s) of {threads.cores()} cores "
          f"({threads.running()} training process(es) on this machine)", flush=True)
    return taken


def _stop_on_ctrl_c() -> None:
    """Ctrl-C once (the terminal sends it to the whole process group), or SIGUSR1 from the
    runner: finish the current evaluation, then stop. Ctrl-C twice: stop now."""
    from tunelab.engine.run.jobs import STOP_AFTER_EVALUATION

    seen: set[int] = set()

    def once(signum: int, frame: Any) -> None:
        # One request can arrive as two signals: `kill -TERM -PGID` reaches this process and
        # the runner, which relays it as SIGUSR1. Python runs pending handlers in signal-number
        # order (SIGUSR1 10 before SIGTERM 15), so a SIGTERM after a SIGUSR1 alone is that same
        # request, not a second one; a SIGINT after any of them is the runner's "stop now".
        # a copy: `seen` itself would hold this very signal once added below, and a terminal's
        # one Ctrl-C (its SIGINT reaches this process too) then stopped the trial at once
        earlier = set(seen) if signum == signal.SIGINT else seen - {signal.SIGUSR1}
        seen.add(signum)
        if signum in (signal.SIGINT, signal.SIGTERM) and earlier:
            raise KeyboardInterrupt
        STOP_AFTER_EVALUATION.set()

    signal.signal(signal.SIGINT, once)
    signal.signal(signal.SIGUSR1, once)
    # a scheduler (Slurm's scancel, systemd, kill -TERM -PGID) may send SIGTERM to every process
    # of the job: it counts as a Ctrl-C, so the trial still ends recorded as interrupted
    signal.signal(signal.SIGTERM, once)


def main(kind: str, job: TrialJob, conn: Any, runner_pid: int, log_path: str) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    threading.Thread(target=exit_when_gone, args=(runner_pid,), daemon=True).start()
    taken = _pin(job)
    _stop_on_ctrl_c()

    def progress(event: str, data: dict[str, Any]) -> None:
        try:
            conn.send((event, data))
        except (BrokenPipeError, OSError):
            os._exit(3)

    try:
        processes = int(job.experiment.get("resources", {}).get("gpus_per_trial", 1) or 1)
        if kind == "trial" and processes > 1:
            from tunelab.engine.run.distributed import launch

            result = launch(job, progress, processes)
        elif kind == "baseline" and job.stage == "sft":
            from tunelab.engine.run.baseline import run_baseline

            result = run_baseline(job, progress)
        elif kind in ("trial", "baseline"):  # the stage's recipe (engine.train.stages)
            from tunelab.engine.train import stages

            run = (stages.trial(job.stage, job.head) if kind == "trial"
                   else stages.baseline(job.stage))
            result = run(job, progress)
        elif kind == "ready":  # a trial process's start-up alone (bench/bench_runner.py)
            import tunelab.engine.run.preload  # noqa: F401 - what a trial needs before it trains

            result = TrialResult("complete", info={
                "ready_at": time.time(), "openmp_spin": os.environ.get("GOMP_SPINCOUNT")})
        elif kind == "base":
            from pathlib import Path

            from tunelab.engine.data.prepare import read_rows
            from tunelab.engine.spec import Experiment
            from tunelab.engine.train.model import build_scratch_base

            exp = Experiment.model_validate(job.experiment)
            build_scratch_base(exp, read_rows(job.data["train"]), Path(job.base))
            result = TrialResult("complete")
        else:
            raise ValueError(f"unknown job kind {kind!r}")
    except BaseException as error:  # noqa: BLE001 - every failure becomes a recorded reason
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl-C must not lose the result
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        traceback.print_exc()
        tail = "".join(traceback.format_exception(error)[-6:])
        if isinstance(error, TunelabError):  # said in words already: the words, not a trace
            tail = f"{error.title}: {error.message}"
        result = TrialResult("failed", fail_reason=_classify(error), error=tail[-4000:])
    threads.leave()
    result.info.setdefault("threads", taken)
    try:
        conn.send(("result", result))
    finally:
        conn.close()
        log.flush()
