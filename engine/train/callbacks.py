"""The callbacks every trial's trainer gets, whatever its recipe.

- `Recorder`: every logged number to the trial's spool (recorded at once, moved into DuckDB every
  INGEST_EVERY seconds and at each evaluation); a NaN or infinite loss stops the training; each
  evaluation's validation loss is reported to Optuna, which may prune the trial; Ctrl-C once
  stops it after the evaluation; the trial takes its new share of the cores when another
  training starts or ends on the machine. What it saw is its `outcome` (trial.Outcome).
- the watched prompts (eval.watch: engine.train.watch), answered at each evaluation;
- early stopping (train.early_stopping_patience), by the validation loss.

On several devices rank 0 reports to Optuna and decides; the other ranks follow its decision.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, TrainerCallback

from tunelab.engine.run import threads
from tunelab.engine.run.jobs import STOP_AFTER_EVALUATION, TrialJob
from tunelab.engine.spec import Experiment
from tunelab.engine.train.trial import FAULT_OOM, Attempt, Outcome, OutOfMemory, rank, world
from tunelab.store import MetricRow
from tunelab.store.ingester import Ingester

# Keys of the trainer's log that are bookkeeping, not metrics
_SKIP = {"epoch", "total_flos", "num_input_tokens_seen", "train_tokens_per_second"}

# Seconds between moves of the logged metrics from the trial's spool into the store (the
# store's live curves lag by at most this much; the CLI's progress comes through the pipe)
INGEST_EVERY = 10.0


def trial_callbacks(attempt: Attempt, recorder: Recorder, tokenizer: Any,
              watched: list[dict[str, Any]]) -> list[Any]:
    """The callbacks of a trial's trainer: the recorder, the watch of the first eval.watch
    `watched` rows (rank 0 generates; the others wait for it at the next step), early stopping."""
    from tunelab.engine.train.watch import watch_callback, watched_prompts

    found: list[Any] = [recorder]
    prompts = watched_prompts(attempt.exp, tokenizer, watched) if rank() == 0 else []
    if prompts:
        found.append(watch_callback(attempt.exp, attempt.trial, tokenizer, prompts, attempt.spool,
                                    attempt.cost))
    if attempt.exp.train.early_stopping_patience:
        found.append(EarlyStoppingCallback(attempt.exp.train.early_stopping_patience))
    return found


def metric_events(experiment: str, trial: int, state: Any, logs: dict[str, Any]) -> list[MetricRow]:
    """The metrics rows of one log of the trainer (its bookkeeping and summaries left out)."""
    now = time.time()
    events = []
    for key, value in logs.items():
        if key in _SKIP or not isinstance(value, (int, float)):
            continue
        if key.startswith("eval_"):
            split, name = "validation", key[5:]
            if name in {"runtime", "samples_per_second", "steps_per_second"}:
                continue
        elif key.startswith("train_"):
            continue  # the end-of-training summary (runtime, mean loss) is not a curve point
        else:
            split, name = "train", key
        events.append(MetricRow(
            experiment=experiment, trial=trial, step=state.global_step,
            epoch=state.epoch, tokens=int(getattr(state, "num_input_tokens_seen", 0) or 0),
            split=split, name=name, value=float(value), time=now))
    return events


def _optuna_trial(job: TrialJob, exp: Experiment) -> Any:
    """The Optuna trial to report to (rank 0 of a sweep's trial; None otherwise)."""
    if job.trial_id is None or rank() != 0:
        return None
    import optuna

    from tunelab.engine.run.study import build_pruner, open_storage

    study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage),
                              pruner=build_pruner(exp))
    return optuna.trial.Trial(study, job.trial_id)


def _stop_requested(job: TrialJob) -> bool:
    """Ctrl-C once: the trial process's flag, or the file a distributed trial's launcher writes."""
    return STOP_AFTER_EVALUATION.is_set() or (Path(job.out_dir) / "stop").exists()


class Recorder(TrainerCallback):
    """Records the trial's metrics and decides when its training stops (see the module)."""

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.outcome = Outcome()
        self.optuna = _optuna_trial(attempt.job, attempt.exp)
        # intermediate values are validation losses; Optuna prunes no study of several objectives
        search = attempt.exp.search
        self.prunes = search.objective == "eval_loss" and len(search.all_objectives) == 1
        self.faults = int(os.environ.get(FAULT_OOM, "0"))
        self.checked = self.ingested = time.monotonic()
        self.ingester = Ingester(attempt.spool)  # DuckDB ingests on a thread of their own

    def _stop(self, control: Any, **what: bool) -> None:
        self.outcome = dataclasses.replace(self.outcome, **what)
        control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self.ingester.close()

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.attempt.number < self.faults:
            raise OutOfMemory(f"CUDA out of memory (injected by {FAULT_OOM})")
        # another training started or ended on this machine: take the new share of the
        # cores (a few file checks, every few seconds; ranks keep what torchrun gave them)
        if world() == 1 and time.monotonic() - self.checked > 3.0:
            self.checked = time.monotonic()
            threads.take_share(self.attempt.job.threads)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        logs = logs or {}
        # Every logged number is fsynced to the spool at once (recorded), but moved into
        # DuckDB only every INGEST_EVERY seconds and at each evaluation: an ingest costs
        # ~0.1 s, and at every log it took 9 % of a quickstart trial.
        now = time.monotonic()
        due = now - self.ingested >= INGEST_EVERY or any(k.startswith("eval_") for k in logs)
        attempt = self.attempt
        attempt.spool.write(metric_events(attempt.exp.name, attempt.trial, state, logs), ingest=False)
        if due:
            self.ingested = now
            self.ingester.request()
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop(control, nan=True)
        if loss is not None:
            attempt.progress("log", {"step": state.global_step, "epoch": state.epoch, "loss": loss})

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
        value = (metrics or {}).get("eval_loss")
        if value is None:
            return
        self.outcome = dataclasses.replace(self.outcome, evaluations=self.outcome.evaluations + 1)
        self.attempt.progress("eval", {"epoch": state.epoch, "step": state.global_step,
                                       "eval_loss": value})
        if not math.isfinite(value):
            self._stop(control, nan=True)
            return
        pruned, interrupted = self._decide(value, state)
        if pruned:
            self._stop(control, pruned=True)
        if interrupted:
            self._stop(control, interrupted=True)

    def _decide(self, value: float, state: Any) -> tuple[bool, bool]:
        """(pruned, interrupted) after an evaluation, as rank 0 decides them."""
        pruned = interrupted = False
        if self.optuna is not None and self.prunes:
            self.optuna.report(value, step=self.outcome.evaluations)
            # not at the last evaluation: the training is done, so pruning would save no
            # step and throw a finished result away (halving at its top rung did that)
            pruned = state.global_step < state.max_steps and self.optuna.should_prune()
        if rank() == 0:
            interrupted = _stop_requested(self.attempt.job)  # Ctrl-C: this evaluation is recorded
        if world() > 1:  # every rank stops together, as rank 0 decided
            import torch.distributed as dist

            decision = [pruned, interrupted]
            dist.broadcast_object_list(decision, src=0)
            pruned, interrupted = decision
        return bool(pruned), bool(interrupted)
