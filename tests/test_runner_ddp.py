"""A trial on several devices goes through torchrun (DDP through the trainer); on a CPU machine
the same path runs its processes with the gloo backend."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tunelab import store as st

from conftest import tunelab_command

pytestmark = pytest.mark.slow  # a two-process DDP trial trains

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
[search]
trials = 1
pruner = "none"
[resources]
gpus_per_trial = 2      # on a CPU machine: two processes
"""


def test_a_two_process_trial_trains_with_ddp_on_gloo(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP, rows=160)
    store = tmp_path / "tunelab.duckdb"
    done = subprocess.run([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    (trial,) = st.list_trials(store, "tiny")
    assert trial.state == "complete" and trial.value is not None
    log = (Path(trial.artifact_dir) / "trial.log").read_text()
    for rank in (0, 1):
        assert f"tunelab: rank {rank} of 2" in log
        assert f"tunelab: rank {rank} trained with the gloo backend" in log
    # rank 0 alone recorded: one row per logged step, both evaluations, the best checkpoint
    evals = st.query(store, "select count(*) from metrics where split = 'validation' and "
                            "name = 'loss'").rows[0][0]
    assert evals == 2
    assert (Path(trial.artifact_dir) / "best" / "config.json").exists()
