"""Faults while a sweep runs (#17): the warnings every run printed, a scheduler's SIGTERM, a hung
trial, the store deleted under a running sweep. Each checks the message and that nothing
recorded is lost."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.run import events as ev
from tunelab.engine.run import records
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import tunelab_command

pytestmark = pytest.mark.slow  # real sweeps, with their faults

SWEEP = """
[method]
kind = "full"
[train]
epochs = {epochs}
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[eval]
baseline = false
samples = 0
[search]
trials = {trials}
sampler = "random"
pruner = "none"
{extra}
[search.space]
"train.learning_rate" = {space}
"""


def _sweep(small_experiment, epochs: int = 1, trials: int = 2, extra: str = "",
           rows: int = 160, space: str = "[1e-3, 2e-3, 3e-3]") -> Path:
    return small_experiment(SWEEP.format(epochs=epochs, trials=trials, extra=extra, space=space),
                            rows=rows)


def _study(store: Path, name: str = "tiny") -> optuna.Study:
    journal = store.parent / f"{store.stem}.optuna.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=name, storage=storage)


def _validation_rows(store: Path, trial: int) -> int:
    return st.query(store, "select count(*) from metrics where split = 'validation' and "
                           f"name = 'loss' and trial = {trial}").rows[0][0]


class Hooks:
    """A reporter that runs a hook on one event (the tests read the store for the rest)."""

    def __init__(self, hooks: dict[type, Any]) -> None:
        self.hooks = hooks
        self.seen: list[object] = []

    def event(self, event: object) -> None:
        self.seen.append(event)
        hook = self.hooks.get(type(event))
        if hook is not None:
            hook(event)


# -- the two warnings every run printed

def test_a_run_prints_neither_the_bitsandbytes_nor_the_tied_head_warning(
        tmp_path: Path, small_experiment) -> None:
    experiment = _sweep(small_experiment, trials=1)
    store = tmp_path / "tunelab.duckdb"
    run = subprocess.run([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "gemm_4bit_forward" not in run.stderr + run.stdout
    (trial,) = st.list_trials(store, "tiny")
    log = (Path(trial.artifact_dir or "") / "trial.log").read_text()
    assert "missing keys" not in log  # the best checkpoint was loaded (load_best_model_at_end)
    assert trial.state == "complete" and _validation_rows(store, 0) >= 1


def test_the_tied_head_missing_from_a_checkpoint_is_the_loaded_embeddings(tmp_path: Path) -> None:
    """Why the dropped warning is harmless: what the Trainer does when it loads the best
    checkpoint (load_state_dict(strict=False) of model.safetensors) leaves a tied head equal to
    the loaded embeddings."""
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
    saved = LlamaForCausalLM(config)
    saved.save_pretrained(tmp_path, safe_serialization=True)
    state = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in state  # stored once, under the embeddings' name

    torch.manual_seed(1)
    model = LlamaForCausalLM(config)  # other random weights, as before loading the best
    loaded = model.load_state_dict(state, strict=False)
    assert loaded.missing_keys == ["lm_head.weight"]
    assert torch.equal(model.lm_head.weight, state["model.embed_tokens.weight"])
    assert torch.equal(model.lm_head.weight, saved.lm_head.weight)

    from tunelab.engine.run import quiet
    assert str(loaded.missing_keys) in quiet.TIED_HEAD_MISSING  # exactly what is dropped


# -- SIGTERM

def test_sigterm_to_the_whole_job_behaves_as_ctrl_c(tmp_path: Path, small_experiment) -> None:
    """A scheduler sends SIGTERM to every process of the job (runner, fork server, trials):
    the running trial stops after its current evaluation and is recorded interrupted."""
    experiment = _sweep(small_experiment, epochs=3, rows=200)
    store = tmp_path / "tunelab.duckdb"
    command = [*tunelab_command(), "run", str(experiment), "--store", str(store)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    seen = []
    assert run.stdout is not None
    for line in run.stdout:
        seen.append(line)
        if line.startswith("trial 0") and "eval_loss" in line:
            break
    else:
        raise AssertionError("the run ended before trial 0's first evaluation:\n" + "".join(seen))
    os.killpg(run.pid, signal.SIGTERM)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 130, err
    assert "finished trials are kept" in err and "Traceback" not in err
    (first,) = st.list_trials(store, "tiny")
    assert (first.state, first.fail_reason) == ("failed", "interrupted")
    assert _validation_rows(store, 0) >= 1  # what it evaluated before it stopped is kept
    assert [t.state for t in _study(store).trials] == [optuna.trial.TrialState.FAIL]


# -- a hung trial

def test_a_hung_trial_is_killed_by_trial_timeout_and_the_next_runs(
        tmp_path: Path, small_experiment) -> None:
    # one finished trial asked: the hung trial fails, so the worker takes the next one. The hang
    # costs the whole timeout: 15 s, a few times what one trial of this sweep takes
    experiment = _sweep(small_experiment, trials=1, extra="trial_timeout = 15")
    store = tmp_path / "tunelab.duckdb"
    runner: Runner

    def hang(event: ev.TrialProgress) -> None:
        if event.number == 0 and event.kind == "log" and not hung:
            # a real hang: a stopped process answers nothing but SIGKILL
            os.kill(runner.launcher.process(0).pid, signal.SIGSTOP)
            hung.append(0)

    hung: list[int] = []
    reporter = Hooks({ev.TrialProgress: hang})
    runner = Runner(load_spec(experiment), store, reporter)
    summary = runner.run()
    assert hung == [0]
    assert ev.TrialTimeout(number=0, seconds=15.0) in reporter.seen
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert (trials[0].state, trials[0].fail_reason) == ("failed", "timeout")
    assert "longer than search.trial_timeout = 15 s and was killed" in (trials[0].error or "")
    assert trials[1].state == "complete"
    assert [o.result.state for o in summary.trials] == ["failed", "complete"]
    states = [t.state for t in _study(store).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


# -- the store deleted while the sweep runs


def test_the_store_deleted_mid_trial_lets_it_finish_into_the_spool_and_says_so_once(
        tmp_path: Path, small_experiment, caplog: pytest.LogCaptureFixture) -> None:
    experiment = _sweep(small_experiment, trials=2, space="{ low = 1e-3, high = 5e-3 }")
    store = tmp_path / "tunelab.duckdb"
    deleted: list[int] = []

    def delete(event: ev.TrialProgress) -> None:
        if event.number == 0 and event.kind == "log" and not deleted:  # trial 0 is training
            store.unlink()
            deleted.append(event.number)

    runner = Runner(load_spec(experiment), store, Hooks({ev.TrialProgress: delete}))
    with pytest.raises(st.StoreGone) as gone:
        runner.run()
    said = gone.value.message
    assert f"{store} was deleted while the sweep ran: trial 0, running then, finished" in said
    assert "No new trial was started" in said
    assert "put the file back and run the same command again" in said
    assert "Or run it again as it is: a new tunelab.duckdb starts there" in said
    # said once: no other line about the store (neither the runner's spool nor the trial's)
    assert not [r for r in caplog.records if "tunelab.duckdb" in r.getMessage()]
    study = _study(store)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert not store.exists()  # nothing started a new store behind the person's back

    # run again as it is: a new store takes in what waited, and the sweep goes on
    Runner(load_spec(experiment), store, Hooks({})).run()
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    study = _study(store)
    assert sorted(trials) == [0, 1] and [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE] * 2
    assert trials[0].state == "complete" and trials[0].value == pytest.approx(study.trials[0].value)
    assert _validation_rows(store, 0) >= 1  # trial 0's evaluation, logged after the delete
    assert trials[0].params != trials[1].params


# -- a store held by another program


# The person opens the file when the sweep is not in the middle of a write (a writer holds the
# lock for a moment at a time: the shell is tried again until it gets it, as a person would)
HOLDER = """
import sys, time, duckdb
deadline = time.monotonic() + 120
while True:
    try:
        con = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
print("holding", flush=True)
sys.stdin.readline()
con.close()
"""


def _hold(store: Path) -> subprocess.Popen:
    """A person's `duckdb FILE` shell: holds the store for writing until told to let go."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_store_held_while_trials_run_is_said_once_and_not_counted_in_their_durations(
        tmp_path: Path, small_experiment, caplog: pytest.LogCaptureFixture) -> None:
    experiment = _sweep(small_experiment, trials=2)
    store = tmp_path / "tunelab.duckdb"
    holders: list[subprocess.Popen] = []

    def hold(event: ev.TrialProgress) -> None:
        if event.number == 0 and event.kind == "log" and not holders:
            holders.append(_hold(store))

    class LetGo(logging.Handler):
        """The person closes the shell once the run has said who holds the file."""

        def emit(self, record: logging.LogRecord) -> None:
            if "is held by" in record.getMessage() and holders:
                holders[0].communicate("let go\n", timeout=60)

    let_go = LetGo(logging.WARNING)
    logging.getLogger("tunelab").addHandler(let_go)
    try:
        summary = Runner(load_spec(experiment), store, Hooks({ev.TrialProgress: hold})).run()
    finally:
        logging.getLogger("tunelab").removeHandler(let_go)
        for holder in holders:
            if holder.poll() is None:
                holder.communicate("let go\n", timeout=60)
    held = [r.getMessage() for r in caplog.records if "is held by" in r.getMessage()]
    assert len(held) == 1 and f"process {holders[0].pid}" in held[0], held
    # a trial's duration is its own: the old trial process waited 30 s for the lock at its end
    durations = {o.number: o.duration_s for o in summary.trials}
    assert all(d < 30 for d in durations.values()), durations
    trials = st.list_trials(store, "tiny")  # everything went in once the store was free
    assert [t.state for t in trials] == ["complete", "complete"]
    assert all(t.duration_s is not None and t.duration_s < 30 for t in trials)
    assert _validation_rows(store, 0) >= 1 and _validation_rows(store, 1) >= 1


def test_a_run_started_on_a_held_store_says_who_holds_it_and_waits(
        tmp_path: Path, small_experiment) -> None:
    experiment = _sweep(small_experiment, trials=1)
    store = tmp_path / "tunelab.duckdb"
    with st.Spool(store, tag="test") as spool:  # an existing store, as after an earlier run
        spool.write([records.experiment_row(load_spec(experiment))])
    holder = _hold(store)
    run = subprocess.Popen([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stderr is not None
        said = next((line for line in run.stderr if "is held by" in line), "")  # however long
        assert f"{store} is held by process {holder.pid}" in said
        assert "waiting until it is free (Ctrl-C to stop)" in said
        assert run.poll() is None  # still waiting, not gone
    finally:
        holder.communicate("let go\n", timeout=60)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "is free; going on" in err and "Traceback" not in err
    (trial,) = st.list_trials(store, "tiny")
    assert trial.state == "complete"
