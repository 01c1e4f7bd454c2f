"""What the runner hands a trial process, and what comes back. Plain, picklable values."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Set in a trial process by the first Ctrl-C: the trial stops after its current evaluation.
STOP_AFTER_EVALUATION = threading.Event()


@dataclass(frozen=True)
class TrialJob:
    store: str
    experiment: dict[str, Any]  # the resolved Experiment of this trial (model_dump)
    number: int | None  # the Optuna trial number; None for the baseline
    trial_id: int | None
    study_name: str
    storage: str  # Optuna journal file
    base: str  # hub id or folder of the base model
    data: dict[str, str]  # split -> prepared JSONL file
    out_dir: str
    spec_path: str | None = None  # the experiment file, for the manifest's git commit
    devices: str | None = None  # CUDA_VISIBLE_DEVICES of the trial process (None: as inherited)
    threads: int | None = None  # torch CPU threads (several trials at once share the cores)
    parent: str | None = None  # a dpo stage on an adapter parent: the adapter it goes on training

    @property
    def stage(self) -> str:
        """method.stage: which recipe runs the trial and its baseline (engine.train.stages)."""
        return str(self.experiment.get("method", {}).get("stage", "sft"))

    @property
    def head(self) -> str:
        """lm or classification: a classification trial runs engine.train.classify."""
        return str(self.experiment.get("method", {}).get("head", "lm"))


@dataclass(frozen=True)
class TrialResult:
    state: str  # complete | pruned | failed
    value: float | None = None
    fail_reason: str | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def failure(result: TrialResult) -> str:
    """Why a process failed, in one line: a full disk said so, else its error's last line."""
    text = result.error or result.fail_reason or "no reason given"
    full = next((sign for sign in ("No space left on device", "Disk quota exceeded")
                 if sign in text), None)
    if full:
        return f"the disk is full ({full}); free space and run again"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def exit_when_gone(pid: int) -> None:
    """Runs in a daemon thread of a trial process: ends the process when `pid` (the runner, or
    torchrun's parent trial) is gone, so no orphan trains on after its sweep died."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(3)


def running(pid: int | None) -> bool:
    """Whether a process runs (a zombie does not). The one check for a trial process, a stale
    run's process and a training process's CPU share. Asked of /proc because a trial's
    `is_alive()` can be wrong: its exit code comes through the fork server, and when the server
    dies first (the same `kill -TERM -PGID` reaches it) the trial reads as exited with code 255
    while it is still finishing its evaluation, and its result would be lost."""
    if pid is None or pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (macOS): whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process under a reused pid: count it
            return True
        return True
    return state not in ("Z", "X")

