"""The trial processes of a run: each started from the fork server (engine.run.pipe), killed when
it runs past search.trial_timeout, told of Ctrl-C, and its end named: a process the runner killed
on purpose was interrupted or overdue, not out of memory.

The runner decides what runs and records what happened; this keeps which processes run now.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from tunelab.engine.run.events import Event, TrialTimeout
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.run.pipe import run_child


class Launcher:
    def __init__(self, trial_timeout: float | None, event: Callable[[Event], None]) -> None:
        self.trial_timeout = trial_timeout
        self._event = event
        self._lock = threading.Lock()
        self._children: dict[int, Any] = {}  # trial number -> its process
        self._jobs: dict[int, TrialJob] = {}
        self._interrupted: set[str] = set()  # out_dirs of trials stopped on purpose (Ctrl-C twice)
        self._overdue: set[str] = set()  # out_dirs of trials killed by search.trial_timeout

    def running(self) -> list[int]:
        """The numbers of the trials whose processes run now."""
        with self._lock:
            return sorted(self._children)

    def process(self, number: int) -> Any:
        """Trial `number`'s process while it runs, else None."""
        with self._lock:
            return self._children.get(number)

    def signal_all(self, how: int, now: bool = False) -> None:
        """Sends `how` to every running trial; `now`: they are stopped on purpose (their death
        is an interruption, not a failure of their own)."""
        with self._lock:
            children = dict(self._children)
            if now:
                self._interrupted.update(j.out_dir for j in self._jobs.values())
        for process in children.values():
            try:
                os.kill(process.pid, how)
            except (ProcessLookupError, TypeError):
                pass

    def kill_all(self) -> None:
        """The trial processes do not answer: they end now."""
        with self._lock:
            children = list(self._children.values())
        for process in children:
            process.kill()

    def run(self, kind: str, number: int, job: TrialJob,
            on_progress: Callable[[str, dict[str, Any]], None]) -> TrialResult:
        """Runs one trial's process to its end; a process killed on purpose ends as interrupted
        (Ctrl-C twice) or as a timeout (search.trial_timeout), with what it had recorded."""
        with self._lock:
            self._jobs[number] = job
        timer: threading.Timer | None = None

        def started(process: Any) -> None:
            nonlocal timer
            with self._lock:
                self._children[number] = process
            if self.trial_timeout:
                timer = threading.Timer(self.trial_timeout, self._overrun,
                                        args=(number, job, process, self.trial_timeout))
                timer.daemon = True
                timer.start()

        try:
            result = run_child(kind, job, on_progress, started, stopped=lambda: self._stopped(job))
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._children.pop(number, None)
                self._jobs.pop(number, None)
        with self._lock:
            overdue = job.out_dir in self._overdue
        if result.state == "failed" and overdue:
            return TrialResult("failed", fail_reason="timeout", info=result.info,
                               error=f"the trial ran longer than search.trial_timeout = "
                                     f"{self.trial_timeout:g} s and was killed; "
                                     f"see {job.out_dir}/trial.log")
        if result.state == "failed" and result.fail_reason == "killed" and self._stopped(job):
            return TrialResult("failed", fail_reason="interrupted", info=result.info,
                               error="stopped by Ctrl-C (twice)")
        return result

    def _stopped(self, job: TrialJob) -> bool:
        with self._lock:
            return job.out_dir in self._interrupted or job.out_dir in self._overdue

    def _overrun(self, number: int, job: TrialJob, process: Any, seconds: float) -> None:
        """search.trial_timeout passed: the trial is killed, not asked, because a hung trial (a
        dead-locked collective, a stuck data loader) answers no signal it could catch."""
        with self._lock:
            if process.exitcode is not None:
                return
            self._overdue.add(job.out_dir)
        self._event(TrialTimeout(number=number, seconds=seconds))
        try:
            process.kill()
        except (ProcessLookupError, AttributeError):
            pass
