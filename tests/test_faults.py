"""Faults while a sweep runs (#17): the warnings every run printed, a scheduler's SIGTERM, a hung
trial, the store deleted under a running sweep. Each checks the message and that nothing
recorded is lost."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.run import events as ev
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import tunelab_command

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
"train.learning_rate" = [1e-3, 2e-3, 3e-3]
"""


def _sweep(small_experiment, epochs: int = 1, trials: int = 2, extra: str = "",
           rows: int = 160) -> Path:
    return small_experiment(SWEEP.format(epochs=epochs, trials=trials, extra=extra), rows=rows)


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
    log = (tmp_path / "tunelab-runs" / "tiny" / "trial-0000" / "trial.log").read_text()
    assert "missing keys" not in log  # the best checkpoint was loaded (load_best_model_at_end)
    (trial,) = st.list_trials(store, "tiny")
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
    # one finished trial asked: the hung trial fails, so the worker takes the next one
    experiment = _sweep(small_experiment, trials=1, extra="trial_timeout = 40")
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
    assert ev.TrialTimeout(number=0, seconds=40.0) in reporter.seen
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert (trials[0].state, trials[0].fail_reason) == ("failed", "timeout")
    assert "longer than search.trial_timeout = 40 s and was killed" in (trials[0].error or "")
    assert trials[1].state == "complete"
    assert [o.result.state for o in summary.trials] == ["failed", "complete"]
    states = [t.state for t in _study(store).trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


# -- the store deleted while the sweep runs

def test_the_store_deleted_mid_sweep_stops_it_and_the_spool_keeps_the_events(
        tmp_path: Path, small_experiment) -> None:
    experiment = _sweep(small_experiment, trials=3)
    store = tmp_path / "tunelab.duckdb"

    def delete(event: ev.TrialEnd) -> None:
        if event.outcome.number == 0:
            store.unlink()

    runner = Runner(load_spec(experiment), store, Hooks({ev.TrialEnd: delete}))
    with pytest.raises(st.StoreGone, match="was deleted while tunelab was writing to it"):
        runner.run()
    study = _study(store)
    # trial 1 was asked but never started: Optuna does not count it as running for ever
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE,
                                               optuna.trial.TrialState.FAIL]
    assert not store.exists()
    spooled = list((tmp_path / "tunelab.duckdb.spool").glob("*.jsonl"))
    assert spooled and any('"number":1' in p.read_text() for p in spooled)

    # the next writer starts a new store there and takes in the waiting events
    with st.Spool(store, tag="test") as spool:
        spool.ingest(wait=5)
    (trial,) = st.list_trials(store, "tiny")
    assert (trial.number, trial.state) == (1, "failed")
    assert "not started" in (trial.error or "") and "was deleted" in (trial.error or "")
