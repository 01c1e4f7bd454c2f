"""A sweep survives `kill -9`: running it again finishes the study, loses nothing recorded and
duplicates nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tunelab import store as st

from conftest import tunelab_command

SWEEP = """
[method]
kind = "full"
[train]
epochs = 3
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[search]
trials = 3
sampler = "random"
pruner = "none"
[search.space]
"train.learning_rate" = [3e-3, 1e-3]
"""


def _metric_rows(store: Path, trial: int) -> int:
    try:
        return st.query(store, f"select count(*) from metrics where trial = {trial}").rows[0][0]
    except st.StoreError:
        return 0


def _alive(pid: int) -> bool:
    """Running, not exited: an orphan that exited stays a zombie until init reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_in_the_middle_of_a_trial_then_run_again(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP)
    store = tmp_path / "tunelab.duckdb"
    command = [*tunelab_command(), "run", str(experiment), "--store", str(store)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _metric_rows(store, 1) < 3:  # the second trial is training
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.3)
    children = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True)
    run.send_signal(signal.SIGKILL)
    run.wait()
    # the trial process notices its runner is gone and stops (it checks every second)
    for pid in [int(p) for p in children.stdout.split()]:
        gone = time.time() + 120  # a deadline for a busy machine; it is normally a second
        while _alive(pid):
            assert time.time() < gone, f"trial process {pid} outlived its runner"
            time.sleep(0.1)
    before = st.query(store, "select trial, step, split, name, value from metrics").rows

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "trial 1 was left running by a stopped run: marked failed" in again.stdout

    trials = st.list_trials(store, "tiny")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    states = {t.number: t.state for t in trials}
    assert states[1] == "failed"
    assert [t for t in trials if t.number == 1][0].fail_reason == "killed"
    assert sum(s == "complete" for s in states.values()) == 3
    after = set(st.query(store, "select trial, step, split, name, value from metrics").rows)
    assert set(before) <= after  # every metric row recorded before the kill is still there
    assert st.query(store, "select count(*) from (select trial, step, split, name, count(*) n "
                           "from metrics group by all having n > 1)").rows[0][0] == 0
