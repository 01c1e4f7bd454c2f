"""Each process that trains or generates on the CPU takes its share of the cores, set where it starts.

Two processes whose OpenMP threads spin on the same cores make each other tens of times
slower, not twice: libgomp's default wait policy busy-waits between parallel regions, so a
thread that lost its core keeps the other process's threads from running (measured on 2
cores: a quickstart-sized training step took 3.0 s with spinning threads beside other
trainings, 0.17 s with OMP_WAIT_POLICY=PASSIVE). So:

- the wait policy is passive in every process tunelab starts (libgomp reads it once, when torch
  loads it: `quiet_openmp` must run before `import torch`, as preload.py does for the server
  every trial process is forked from);
- a process takes cores / (processes that train at once): the runner's workers, and every trial
  process of this user on this machine (other `tunelab run`s, a chat), counted in a folder of
  pid files; a running trial takes its new share when that count changes (`take_share`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tunelab.engine.run.jobs import running as process_runs

_LIMITS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
FIXED = "TUNELAB_THREADS"  # a fixed thread count per trial process instead of the share


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def share(processes: int) -> int:
    """Threads for one of `processes` processes training at once: at least one."""
    return max(1, cores() // max(1, processes))


def quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning. Only has an effect before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def limit(threads: int) -> int:
    """This process's intra-op threads: torch's pool now, and the environment its children inherit."""
    for name in _LIMITS:
        os.environ[name] = str(threads)
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"tunelab-cpu-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _pid_files() -> list[Path]:
    return [f for f in _folder().iterdir() if f.name.isdigit()]


def enter() -> None:
    """Counts this process among those training on the machine's cores until `leave`."""
    (_folder() / str(os.getpid())).touch()


def leave() -> None:
    (_folder() / str(os.getpid())).unlink(missing_ok=True)


def running() -> int:
    """Processes of this user that train now; a process that died without leaving is dropped
    here (its pid is checked)."""
    count = 0
    for file in _pid_files():
        if process_runs(int(file.name)):
            count += 1
        else:
            file.unlink(missing_ok=True)
    return count


def take_share(at_most: int | None = None) -> int:
    """Takes this process's share of the cores now (at most `at_most`, the runner's cores /
    workers); called where the process starts and again between training steps, so a trial
    gives back half its cores when a second one starts beside it, and takes them back after.
    A process that did not `enter` counts itself too."""
    fixed = os.environ.get(FIXED, "")
    if fixed.isdigit() and int(fixed) > 0:  # the person running tunelab decided
        return limit(int(fixed))
    me = (_folder() / str(os.getpid())).exists()
    threads = min(at_most or cores(), share(running() + (0 if me else 1)))
    return limit(threads)
