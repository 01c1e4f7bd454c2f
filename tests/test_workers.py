"""Several trials at once on one machine: two workers take trials from one study; none is lost
or run twice, and every result is in the store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest

from tunelab import store as st

from conftest import tunelab_command

pytestmark = pytest.mark.slow  # two workers train one sweep

SWEEP = """
[method]
kind = "full"
[train]
epochs = 2
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[eval]
baseline = false
samples = 0  # no generated samples: nothing here reads them
[search]
trials = 4
sampler = "random"
pruner = "none"
[search.space]
"train.learning_rate" = { low = 1e-3, high = 5e-3, log = true }
"""


def test_two_workers_at_once_lose_no_trial_and_run_none_twice(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP, rows=200)
    store = tmp_path / "tunelab.duckdb"
    done = subprocess.run([*tunelab_command(), "run", str(experiment), "--store", str(store),
                           "--workers", "2"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "4 trials to run, 2 at a time" in done.stdout

    trials = st.list_trials(store, "tiny")
    numbers = [t.number for t in trials]
    assert sorted(numbers) == [0, 1, 2, 3]  # each once, none lost
    assert all(t.state == "complete" and t.value is not None for t in trials)
    # every trial logged its own metrics and its evaluations
    per_trial = dict(st.query(store, "select trial, count(*) from metrics group by 1").rows)
    assert set(per_trial) == {0, 1, 2, 3}
    # the study agrees with the store: 4 complete trials, each with its own parameters
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "tunelab.optuna.journal"))))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in trials:
        assert json.loads(json.dumps(t.params)) == study.trials[t.number].params
    # two at once: some trial started before another had finished
    spans = sorted((t.started_at, t.finished_at) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
