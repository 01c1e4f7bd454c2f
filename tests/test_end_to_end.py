"""A tiny sweep through the real command: spec -> data -> Optuna -> training -> DuckDB -> CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tunelab import store as st

from conftest import EXPERIMENTS, tunelab, tunelab_command

pytestmark = pytest.mark.slow  # real sweeps through the command

SWEEP = """
[method]
kind = "full"
[train]
epochs = 2
batch_size = 16
logging_steps = 5
[search]
trials = 4
sampler = "random"
seed = 2  # samples full 5e-3 first, then 1e-6: a trial the pruner must stop
pruner = { kind = "median", startup_trials = 1 }
[eval]
samples = 0  # the baseline is read, the generated samples are not
[search.space]
"train.learning_rate" = [5e-3, 1e-6]
"method.kind" = ["full", "lora"]
"""


def test_a_tiny_sweep_trains_prunes_and_lands_in_the_store(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP)
    store = tmp_path / "out" / "tunelab.duckdb"
    run = subprocess.Popen([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # While the sweep runs, SQL from another process (this one) answers (it may wait, it never
    # fails).
    answered = 0
    while run.poll() is None:
        if store.exists():
            probe = tunelab("sql", "select count(*) from metrics", "--store", str(store),
                            "--format", "json")
            assert probe.returncode == 0, probe.stderr
            answered += 1
        time.sleep(0.5)
    out, err = run.communicate()
    assert run.returncode == 0, err + out
    assert answered >= 1
    assert "baseline" in out and "best: trial" in out and "tunelab trials tiny" in out

    trials = st.list_trials(store, "tiny")
    assert len({t.number for t in trials}) == len(trials)
    states = [t.state for t in trials]
    assert states.count("complete") + states.count("pruned") == 4
    assert "complete" in states and "pruned" in states

    # every trial logged training loss per logging step, and validation loss per evaluation
    for t in trials:
        rows = st.query(store, "select split, count(*) from metrics where trial = "
                               f"{t.number} and name = 'loss' group by 1").rows
        counts = dict(rows)
        assert counts.get("train", 0) >= 2 and counts.get("validation", 0) >= 1, (t, counts)

    # the best trial's validation loss is clearly below its first evaluation and the baseline
    best = min((t for t in trials if t.state == "complete"), key=lambda t: t.value)
    first = st.query(store, "select value from metrics where split = 'validation' and "
                            f"name = 'loss' and trial = {best.number} order by step limit 1").rows[0][0]
    baseline = st.evaluations(store, "tiny")["base"]["validation/loss"]
    assert best.value < first * 0.95 and best.value < baseline * 0.7
    assert (Path(best.artifact_dir) / "best" / "model.safetensors").exists() or \
        (Path(best.artifact_dir) / "best" / "adapter_model.safetensors").exists()

    # pruned trials stopped before the last epoch
    for t in trials:
        if t.state == "pruned":
            assert st.query(store, "select max(epoch) from metrics where trial = "
                                   f"{t.number}").rows[0][0] < 2

    listing = tunelab("trials", "tiny", "--store", str(store))
    assert listing.returncode == 0 and "★" in listing.stdout and "pruned" in listing.stdout
    as_json = tunelab("sql", "select state, count(*) as n from trials group by 1 order by 1",
                      "--store", str(store), "--format", "json")
    assert {r["state"] for r in json.loads(as_json.stdout)} == {"complete", "pruned"}

    # running the finished experiment again resumes it: nothing to do, nothing duplicated
    again = tunelab("run", str(experiment), "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert "0 trials to run" in again.stdout
    assert len(st.list_trials(store, "tiny")) == len(trials)

    # a changed file is refused against the old study, and --new-study starts one beside it
    changed = tunelab("run", str(experiment), "--store", str(store), "--set", "train.epochs=1")
    assert changed.returncode == 2 and "--new-study" in changed.stderr
    assert "Traceback" not in changed.stderr
    sibling = tunelab("run", str(experiment), "--store", str(store), "--set", "train.epochs=1",
                      "--set", "search.trials=1", "--new-study")
    assert sibling.returncode == 0, sibling.stderr
    assert len(st.list_trials(store, "tiny-v2")) == 1
    assert len(st.list_trials(store, "tiny")) == len(trials)


def test_smoke_runs_every_stage_in_a_separate_study(tmp_path: Path) -> None:
    store = tmp_path / "tunelab.duckdb"
    done = tunelab("run", str(EXPERIMENTS / "quickstart.toml"), "--smoke", "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "smoke run passed" in done.stdout
    assert [e.name for e in st.list_experiments(store)] == ["quickstart-smoke"]
    trials = st.list_trials(store, "quickstart-smoke")
    assert len(trials) == 2 and all(t.state == "complete" for t in trials)
    assert "trial:0" in st.evaluations(store, "quickstart-smoke")


def test_a_bad_query_exits_nonzero_with_duckdbs_message(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    with st.writing(store):
        pass
    done = tunelab("sql", "selec 1", "--store", str(store))
    assert done.returncode == 1
    assert "syntax error" in done.stderr and "Traceback" not in done.stderr
    write = tunelab("sql", "delete from trials", "--store", str(store))
    assert write.returncode == 1 and "read-only" in write.stderr
