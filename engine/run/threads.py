"""Each process that trains or generates on the CPU takes its share of the cores, set where it starts.

Two processes whose OpenMP threads spin on the same cores make each other tens of times
slower, not twice: libgomp's default wait policy busy-waits for up to ~3 ms between parallel
regions, so a thread that lost its core keeps the other process's threads from running
(measured on 2 cores: a quickstart-sized training step took 3.0 s with spinning threads beside
other trainings, 0.17 s with OMP_WAIT_POLICY=PASSIVE). Waiting passively costs a process alone
on its cores dearly, though: waking a sleeping thread at each of a small model's thousands of
parallel regions a step made a DPO-sized step 1.4x slower than spinning (125 ms against 90 ms,
quiet, 2 cores). So:

- OpenMP threads spin briefly (GOMP_SPINCOUNT, ~0.1 ms: 94-97 ms that step) and then sleep, in
  every process tunelab starts (libgomp reads it once, when torch loads it: `quiet_openmp` must
  run before `import torch`, as preload.py does for the server every trial process is forked
  from); an OMP_WAIT_POLICY or GOMP_SPINCOUNT the person set is kept;
- a process takes cores / (processes that train at once): the runner's workers, and every trial
  process of this user on this machine (other `tunelab run`s), counted in a folder of
  pid files; a running trial takes its new share when that count changes (`take_share`);
- and it leaves the cores that other processes keep busy (a chat in the TUI, a compile, a test
  run, another user's job: measured from /proc/stat between two `take_share`s; every `tunelab`
  command spins briefly too, tui/cli): with one thread a process
  has no OpenMP threads to spin against anyone (under such load, one thread ran that step in
  150-220 ms, two briefly spinning ones in 390-470 ms).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from tunelab.engine.run.jobs import running as process_runs

_LIMITS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
FIXED = "TUNELAB_THREADS"  # a fixed thread count per trial process instead of the share
SPIN = "10000"  # GOMP_SPINCOUNT: about 0.1 ms of spinning (libgomp's default: 300000, ~3 ms)
BUSY = 0.5  # cores' worth of other processes' work that takes a core from this one


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
    """Idle OpenMP threads spin briefly, then sleep (see the module). Only has an effect before
    torch is imported; a wait policy or spin count the person set is theirs."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN)


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


class _Load:
    """Other processes' work on this process's cores, between two looks: the cores' busy time
    (/proc/stat, the CPUs this process may run on) less this process's own CPU time."""

    def __init__(self) -> None:
        self.last: tuple[float, float, float] | None = None
        self.pid = os.getpid()

    def others(self) -> float:
        """Cores' worth kept busy by other processes since the last look (0.0 at the first
        look, or where /proc/stat cannot be read: macOS)."""
        busy = _busy_seconds()
        if busy is None:
            return 0.0
        own = sum(os.times()[:2])  # this process's threads, user and system
        now = (time.monotonic(), busy, own)
        last, self.last = self.last, now
        if self.pid != os.getpid():  # a forked child: its own CPU time started again at 0
            last, self.pid = None, os.getpid()
        if last is None or now[0] - last[0] < 0.5:  # too short a window to say
            return 0.0
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])


def _busy_seconds() -> float | None:
    """Seconds the CPUs this process may run on have worked since boot (all processes)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
        mine = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    except (OSError, AttributeError):
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name in mine:  # user nice system idle iowait irq softirq steal ...
            values = [int(f) for f in fields[:8]]
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


_LOAD = _Load()


def free_cores(others: float) -> int:
    """The cores left to this process when other processes keep `others` cores' worth busy:
    a core counts as taken from half a core's work on (at least one is always left)."""
    return max(1, cores() - int(others + (1 - BUSY)))


def take_share(at_most: int | None = None) -> int:
    """Takes this process's share of the cores now (at most `at_most`, the runner's cores /
    workers); called where the process starts and again between training steps, so a trial
    gives back half its cores when a second one starts beside it, or a core that another
    process keeps busy, and takes them back after. A process that did not `enter` counts
    itself too."""
    return limit(wanted(at_most, _LOAD.others()))


def wanted(at_most: int | None = None, others: float = 0.0) -> int:
    """The threads `take_share` takes when other processes keep `others` cores' worth busy."""
    fixed = os.environ.get(FIXED, "")
    if fixed.isdigit() and int(fixed) > 0:  # the person running tunelab decided
        return int(fixed)
    me = (_folder() / str(os.getpid())).exists()
    return min(at_most or cores(), share(running() + (0 if me else 1)), free_cores(others))
