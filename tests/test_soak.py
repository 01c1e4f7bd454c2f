"""Soak (#17), not in the default run (`pytest -m soak tests/test_soak.py`): 50 tiny trials on
two workers while trial processes are killed at random and readers query the store the whole
time; then the store is checked against the Optuna study trial by trial."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.run import events as ev
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import tunelab_command

pytestmark = [pytest.mark.soak, pytest.mark.slow]  # soak: not in the default run either

TRIALS = 50

SOAK = f"""
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
logging_steps = 2
[eval]
baseline = false
samples = 0
[search]
trials = {TRIALS}
sampler = "random"
pruner = "none"
seed = 3
[search.space]
"train.learning_rate" = {{ low = 1e-3, high = 5e-3 }}
"""

STATES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
          optuna.trial.TrialState.FAIL: "failed"}


class Killer:
    """A reporter that, on a trial's training progress, now and then SIGKILLs that trial's
    process, as the kernel's out-of-memory killer would (never two trials in a row, so the
    sweep's three-failures-in-a-row stop is not what is tested)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.runner: Runner | None = None
        self.killed: list[int] = []
        self.lock = threading.Lock()

    def event(self, event: object) -> None:
        if not isinstance(event, ev.TrialProgress) or event.kind != "log" or self.runner is None:
            return
        number = event.number
        with self.lock:
            if number in self.killed or (self.killed and number - self.killed[-1] < 3):
                return
            if self.random.random() > 0.08:
                return
            process = self.runner.launcher.process(number)
            if process is None or process.pid is None:
                return
            self.killed.append(number)
        os.kill(process.pid, signal.SIGKILL)


def _read_all_the_time(store: Path, stop: threading.Event, counts: dict[str, int],
                       problems: list[str]) -> None:
    """`tunelab sql` in a subprocess and the store's read functions here, in turns."""
    turn = 0
    while not stop.is_set():
        turn += 1
        if not store.exists():
            stop.wait(0.2)
            continue
        try:
            if turn % 2:
                run = subprocess.run([*tunelab_command(), "sql", "--store", str(store),
                                      "select state, count(*) from trials group by 1"],
                                     capture_output=True, text=True, timeout=120)
                if run.returncode != 0:
                    problems.append(f"tunelab sql: {run.returncode}: {run.stderr.strip()}")
                counts["sql"] += 1
            else:
                st.list_trials(store, "tiny")
                counts["reads"] += 1
        except st.StoreError as error:  # an experiment not recorded yet is fine; the rest not
            if "no experiment" not in str(error).lower():
                problems.append(f"read: {error}")


def test_fifty_trials_with_random_kills_and_readers_match_the_study(
        tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SOAK, rows=120)
    store = tmp_path / "tunelab.duckdb"
    killer = Killer(seed=11)
    runner = Runner(load_spec(experiment), store, killer, workers=2)
    killer.runner = runner
    stop, counts, problems = threading.Event(), {"sql": 0, "reads": 0}, []
    reader = threading.Thread(target=_read_all_the_time, args=(store, stop, counts, problems))
    reader.start()
    try:
        summary = runner.run()
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert counts["sql"] >= 5 and counts["reads"] >= 5, counts
    assert len(killer.killed) >= 3, killer.killed

    journal = tmp_path / "tunelab.optuna.journal"
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert sorted(trials) == [t.number for t in study.trials]  # none missing, none extra
    values = st.evaluations(store, "tiny")
    for t in study.trials:
        row = trials[t.number]
        assert row.state == STATES[t.state], (t.number, row.state, t.state)
        assert row.params == t.params, t.number
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert row.value is not None and math.isclose(row.value, t.value), t.number
            assert any(k.startswith("test/") for k in values.get(f"trial:{t.number}", {}))
        if t.number in killer.killed:
            assert (row.state, row.fail_reason) == ("failed", "oom"), t.number
            assert "killed by signal 9" in (row.error or "")
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert complete == TRIALS
    assert len(summary.trials) == len(study.trials)
    # every trial's logged losses are in the store once (a killed trial's spool was taken in)
    dupes = st.query(store, "select trial, step, count(*) c from metrics where split = 'train' "
                            "and name = 'loss' group by 1, 2 having c > 1").rows
    assert dupes == []
    print(json.dumps({"trials": len(study.trials), "killed": killer.killed, **counts}))


# -- kill -9 in the middle of journal writes (#31)

JOURNAL_TRIALS = 20


def test_kill_9_in_the_middle_of_journal_writes_thirty_times_loses_nothing(
        tmp_path: Path, small_experiment) -> None:
    """Every write to the Optuna journal, by the runner or a trial process, is cut at a random
    byte and its process killed, with a small chance, until 30 kills have happened; each time
    the runner died, `tunelab run` is run again, as a person would. Then the store must match the
    study trial by trial, the journal read whole by plain Optuna, no configuration twice."""
    from tunelab.engine.run.journal import FAULT_KILL

    experiment = small_experiment(SOAK, rows=120)
    store = tmp_path / "tunelab.duckdb"
    counts = {"runs": 0, "runner killed": 0, "stopped after 3 failures": 0}
    faults = {**os.environ, FAULT_KILL: "0.06"}
    target = JOURNAL_TRIALS
    while True:
        killed = counts["runner killed"] + _trials_killed(store)
        command = [*tunelab_command(), "run", str(experiment), "--store", str(store),
                   "--set", f"search.trials={target}"]  # the budget may grow between runs
        run = subprocess.run(command, capture_output=True, text=True, timeout=900,
                             env=faults if killed < 30 else dict(os.environ))
        counts["runs"] += 1
        assert "Traceback" not in run.stderr, run.stderr
        if run.returncode == 0 and killed >= 30:
            break
        if run.returncode == 0:  # done before 30 kills: a bigger budget, and on
            target += 10
            continue
        if run.returncode == -signal.SIGKILL:
            counts["runner killed"] += 1
        else:  # the trial processes killed three times in a row: the sweep stops, as it should
            assert run.returncode == 1 and "trials in a row failed" in run.stderr, run.stderr
            counts["stopped after 3 failures"] += 1
        assert counts["runs"] < 200, counts

    journal = tmp_path / "tunelab.optuna.journal"
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))  # plain Optuna reads it whole
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert sorted(trials) == [t.number for t in study.trials]  # none missing, none extra
    for t in study.trials:
        row = trials[t.number]
        assert row.state == STATES[t.state], (t.number, row.state, t.state)
        assert row.params == t.params, t.number
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert row.value is not None and math.isclose(row.value, t.value), t.number
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == target
    tried = [json.dumps(t.params, sort_keys=True) for t in study.trials if t.params]
    assert len(tried) == len(set(tried))
    dupes = st.query(store, "select trial, step, count(*) c from metrics where split = 'train' "
                            "and name = 'loss' group by 1, 2 having c > 1").rows
    assert dupes == []
    counts["trials killed"] = _trials_killed(store)
    counts["kills"] = counts["runner killed"] + counts["trials killed"]
    assert counts["kills"] >= 30, counts
    torn = tmp_path / "tunelab.optuna.journal.torn"
    counts["torn tails set aside while running"] = (
        len(torn.read_bytes().splitlines()) if torn.exists() else 0)
    counts["repairs when a command opened the study"] = len(
        list(tmp_path.glob("tunelab.optuna.journal.before-repair-*")))
    counts["trials"], counts["complete"] = len(study.trials), len(complete)
    counts["failed"] = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    print(json.dumps(counts))


def _trials_killed(store: Path) -> int:
    """Trial processes killed by the fault (the runner records them failed: signal 9)."""
    if not store.exists():
        return 0
    return sum("signal 9" in (t.error or "") for t in st.list_trials(store, "tiny"))
