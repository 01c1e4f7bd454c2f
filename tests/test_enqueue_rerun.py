"""`tunelab enqueue` queues only what a trial of the sweep would run, checked as the run will
check it; `tunelab rerun` runs the trial's own recorded configuration and changes nothing of
the study it re-runs (its spec hash, a configuration waiting in the queue)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import EXPERIMENTS, Quiet, tunelab_command

pytestmark = pytest.mark.slow  # a real two-trial sweep, then real re-runs

FILE = '''name = "sweep"
[model]
scratch = { hidden_size = 32, layers = 1, heads = 2, vocab_size = 128 }
[data]
train = "data.jsonl"
[method]
kind = "full"
[train]
epochs = 3
batch_size = 16
[search]
trials = 1
sampler = "random"
[search.space]
"train.learning_rate" = { low = 2e-3, high = 4e-3, log = true }
"method.kind" = ["full", "lora"]
[eval]
baseline = false
samples = 0
metrics = ["perplexity"]
'''


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trial of a two-key sweep, run with `--set train.epochs=1` (the file says 3)."""
    folder = tmp_path_factory.mktemp("sweep")
    rows = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:160]
    (folder / "data.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "sweep.toml").write_text(FILE)
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / "sweep.toml", ["train.epochs=1"]), store, Quiet()).run()
    return store


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tunelab_command(), *args, "--store", str(store)], capture_output=True,
                          text=True, timeout=600, cwd=store.parent)


def _study(store: Path) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = store.parent / "tunelab.optuna.journal"
    return optuna.load_study(study_name="sweep", storage=JournalStorage(JournalFileBackend(str(journal))))


@pytest.mark.parametrize(("value", "said"), [
    ("train.learning_rate=5", "train.learning_rate is searched over 0.002 … 0.004, and 5 is not "
                              "one of its values"),
    ("train.learning_rate=abc", '"abc" is not a number'),
    ("train.learning_rate=nan", "nan is not a number"),
    ("method.kind=qlora", "method.kind is searched over {full, lora}"),
    ("train.epochs=2", "train.epochs is not in search.space of sweep"),
])
def test_enqueue_refuses_a_configuration_no_trial_would_run(sweep: Path, value: str,
                                                            said: str) -> None:
    before = len(_study(sweep).trials)
    done = _cli(sweep, "enqueue", "sweep", "--set", value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot queue" in done.stderr and said in done.stderr, done.stderr
    assert f"--set {value}: " in done.stderr and "Traceback" not in done.stderr
    assert len(_study(sweep).trials) == before  # nothing queued


def test_rerun_runs_the_recorded_configuration_and_leaves_the_queue_and_hash(sweep: Path) -> None:
    """Before: rerun took the queued trial instead (its learning rate) with the file's 3 epochs,
    and rewrote the experiment's spec hash, so the original command was refused after."""
    hash_before = st.get_experiment(sweep, "sweep").spec_hash
    first = st.list_trials(sweep, "sweep")[0]
    queued = _cli(sweep, "enqueue", "sweep", "--set", "train.learning_rate=0.0026", "--set",
                  "method.kind=lora")
    assert queued.returncode == 0, queued.stderr
    done = _cli(sweep, "rerun", "sweep", str(first.number))
    assert done.returncode == 0, done.stdout + done.stderr
    trials = {t.number: t for t in st.list_trials(sweep, "sweep")}
    again = trials[max(trials)]
    assert f"trial {again.number} re-ran trial {first.number}" in done.stdout
    assert again.params == first.params  # not the queued 0.0026 / lora
    steps = st.query(sweep, "SELECT trial, max(step) FROM metrics WHERE split = 'train' "
                            "GROUP BY trial").rows
    by_trial = dict(steps)
    assert by_trial[again.number] == by_trial[first.number]  # one epoch, as recorded, not three
    assert st.get_experiment(sweep, "sweep").spec_hash == hash_before
    waiting = [t for t in _study(sweep).trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        {"train.learning_rate": 0.0026, "method.kind": "lora"}]
