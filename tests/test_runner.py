"""The sweep runner: samplers, pruners, several objectives, workers pinned to devices, enqueued
trials, Ctrl-C, --retry-failed, confirm."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.errors import SpecError
from tunelab.engine.run import study as search
from tunelab.engine.run.devices import worker_slots
from tunelab.engine.spec import load_spec

from conftest import Quiet, tunelab, tunelab_command

SPACE = """
[search.space]
"train.learning_rate" = { low = 1e-3, high = 3e-3, step = 1e-3 }
"method.kind" = ["full", "lora"]
"""


def _exp(small_experiment, search: str, space: str = SPACE, extra: str = ""):
    return load_spec(small_experiment(f"[search]\n{search}\n{extra}{space}")).experiment


@pytest.mark.parametrize("kind", ["tpe", "random", "grid", "cmaes", "gp", "nsga2"])
def test_every_sampler_samples_the_space_seeded(small_experiment, kind: str) -> None:
    exp = _exp(small_experiment, f'sampler = "{kind}"\nseed = 7')
    drawn = []
    for _ in range(2):
        study = optuna.create_study(sampler=search.build_sampler(exp))
        drawn.append([search.sample(study.ask(), exp) for _ in range(3)])
    assert drawn[0] == drawn[1]  # seeded: the same parameters again
    for params in drawn[0]:
        assert round(params["train.learning_rate"], 6) in (1e-3, 2e-3, 3e-3)
        assert params["method.kind"] in ("full", "lora")


def test_the_grid_is_the_files_lists_and_steps(small_experiment) -> None:
    exp = _exp(small_experiment, 'sampler = "grid"')
    assert search.grid(exp) == {"train.learning_rate": [0.001, 0.002, 0.003],
                                "method.kind": ["full", "lora"]}
    assert search.grid_size(exp) == 6
    with pytest.raises(SpecError, match="grid sampler needs a list or a step"):
        _exp(small_experiment, 'sampler = "grid"',
             '[search.space]\n"train.learning_rate" = { low = 1e-3, high = 3e-3 }\n')


@pytest.mark.parametrize(("table", "kind"), [
    ('pruner = "median"', optuna.pruners.MedianPruner),
    ('pruner = { kind = "percentile", percentile = 40, startup_trials = 2 }',
     optuna.pruners.PercentilePruner),
    ('pruner = { kind = "successive_halving", min_resource = 1, reduction_factor = 2 }',
     optuna.pruners.SuccessiveHalvingPruner),
    ('pruner = { kind = "hyperband", max_resource = 4 }', optuna.pruners.HyperbandPruner),
    ('pruner = "none"', optuna.pruners.NopPruner),
])
def test_every_pruner_with_its_parameters(small_experiment, table: str, kind: type) -> None:
    assert isinstance(search.build_pruner(_exp(small_experiment, table)), kind)


def test_several_objectives(small_experiment) -> None:
    exp = _exp(small_experiment, 'sampler = "nsga2"\nobjectives = ["eval_loss", "cost"]')
    assert exp.search.objective == "eval_loss"
    assert exp.search.all_directions == ["minimize", "minimize"]
    # a front cannot be pruned
    assert isinstance(search.build_pruner(exp), optuna.pruners.NopPruner)
    assert search.objective_values(exp, 0.5, {"cost": 0.25}) == [0.5, 0.25]
    assert search.objective_values(exp, 0.5, {}) is None
    with pytest.raises(SpecError, match="takes one objective"):
        _exp(small_experiment, 'sampler = "cmaes"\nobjectives = ["eval_loss", "cost"]')
    with pytest.raises(SpecError, match="directions has 1 entries for 2 objectives"):
        _exp(small_experiment, 'objectives = ["eval_loss", "cost"]\ndirections = ["minimize"]')


def test_workers_are_pinned_one_per_device_group(small_experiment) -> None:
    exp = _exp(small_experiment, "", extra="[resources]\ndevices = [0, 1, 2, 3]\ngpus_per_trial = 2\n")
    assert worker_slots(exp, None) == ["0,1", "2,3"]
    assert worker_slots(exp, 3) == ["0,1", "2,3", "0,1"]
    exp = _exp(small_experiment, "", extra="[resources]\ndevices = [5, 6]\n")
    assert worker_slots(exp, None) == ["5", "6"]


SWEEP = """
[method]
kind = "full"
[train]
epochs = 3
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[eval]
baseline = false
samples = 0
[search]
trials = 2
sampler = "random"
pruner = "none"
[search.space]
"train.learning_rate" = [1e-3, 2e-3, 3e-3]
"""


def _validation_rows(store: Path, trial: int) -> int:
    try:
        return st.query(store, "select count(*) from metrics where split = 'validation' and "
                               f"name = 'loss' and trial = {trial}").rows[0][0]
    except st.StoreError:
        return 0


@pytest.mark.slow
def test_enqueue_ctrl_c_then_retry_failed(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP, rows=200)
    store = tmp_path / "tunelab.duckdb"
    queued = tunelab("enqueue", str(experiment), "--store", str(store),
                     "--set", "train.learning_rate=2e-3")
    assert queued.returncode == 0, queued.stderr
    refused = tunelab("enqueue", str(experiment), "--store", str(store),
                      "--set", "train.epochs=2")
    assert refused.returncode != 0 and "not in search.space" in refused.stderr

    # Ctrl-C once, after the first evaluation: the trial stops after its next one
    command = ["run", str(experiment), "--store", str(store)]
    # SIGINT as a terminal delivers it: to the whole process group (the runner, the fork server
    # and the trial), so the run gets a group of its own here. And pytest started in the
    # background by a script inherits SIGINT ignored; the run would inherit that too.
    run = subprocess.Popen([*tunelab_command(), *command], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in run.stdout:  # not a terminal: a line per evaluation, as the runner receives it
        seen.append(line)
        if line.startswith("trial 0") and "eval_loss" in line:
            break
    else:
        raise AssertionError("the run ended before trial 0's first evaluation:\n" + "".join(seen))
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 130, err
    assert "stopped by Ctrl-C" in err
    (first,) = st.list_trials(store, "tiny")
    assert first.params == {"train.learning_rate": 2e-3}  # the enqueued configuration came first
    assert (first.state, first.fail_reason) == ("failed", "interrupted")
    evaluations = _validation_rows(store, 0)
    assert evaluations >= 1  # what it evaluated before it stopped is kept
    # once is not twice: the terminal's SIGINT and the runner's SIGUSR1 are one request, and the
    # trial ended after an evaluation, not in the middle of a step (a Ctrl-C used to kill it)
    log = (Path(first.artifact_dir or "") / "trial.log").read_text()
    assert "KeyboardInterrupt" not in log, log[-3000:]

    again = tunelab(*command, "--retry-failed")
    assert again.returncode == 0, again.stderr
    assert "trial 0 failed: queued again with the same parameters" in again.stdout
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert trials[0].state == "failed" and _validation_rows(store, 0) == evaluations
    assert trials[1].params == trials[0].params and trials[1].state == "complete"
    assert sum(t.state == "complete" for t in trials.values()) == 2


@pytest.mark.slow
def test_two_objectives_then_confirm(tmp_path: Path, small_experiment) -> None:
    body = SWEEP.replace("epochs = 3", "epochs = 1").replace(
        'sampler = "random"', 'sampler = "nsga2"\nobjectives = ["eval_loss", "duration_s"]')
    experiment = small_experiment(body, rows=160)
    store = tmp_path / "tunelab.duckdb"
    done = tunelab("run", str(experiment), "--store", str(store))
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=search.open_storage(
        str(tmp_path / "tunelab.optuna.journal")))
    assert len(study.directions) == 2
    assert all(len(t.values) == 2 for t in study.trials)
    assert study.best_trials  # the Pareto front

    shown = tunelab("trials", "tiny", "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    assert "◆ Pareto front" in shown.stdout and "duration_s" in shown.stdout
    front = {t.number for t in study.best_trials}
    for line in shown.stdout.splitlines():  # the rows marked ◆ are the study's front
        cells = line.replace("│", " ").split()
        if cells and cells[0].lstrip("◆").isdigit():
            assert cells[0].startswith("◆") == (int(cells[0].lstrip("◆")) in front)

    confirm = tunelab("confirm", "tiny", "--top", "1", "--seeds", "1", "--store", str(store))
    assert confirm.returncode == 0, confirm.stderr
    assert "spread (sd)" in confirm.stdout
    trials = st.list_trials(store, "tiny")
    rerun = [t for t in trials if "train.seed" in t.params]
    assert len(rerun) == 1 and rerun[0].state == "complete"


@pytest.mark.slow
def test_a_grid_sweep_runs_every_point_and_ends(tmp_path: Path, small_experiment) -> None:
    """The grid sampler calls study.stop() after its last point, which Optuna refuses outside
    optimize(): the last trial's tell raised and the run ended in a traceback."""
    from tunelab.engine.run.runner import Runner

    experiment = small_experiment(
        '[method]\nkind = "full"\n[train]\nepochs = 1\nbatch_size = 16\n'
        '[search]\ntrials = 5\nsampler = "grid"\n'
        '[search.space]\n"train.learning_rate" = [1e-3, 3e-3]\n'
        '[eval]\nbaseline = false\nsamples = 0\n', rows=120)
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(experiment), store, Quiet()).run()
    trials = st.list_trials(store, "tiny")
    assert sorted(t.params["train.learning_rate"] for t in trials) == [1e-3, 3e-3]
    assert {t.state for t in trials} == {"complete"}
