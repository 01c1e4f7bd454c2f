"""The harness of a trial: what every trial needs, whatever its recipe (sft.py, dpo.py, …).

A recipe is one function, `train_once(attempt) -> TrialResult`, that reads top to bottom:

    setup     the model, the tokenizer, a `callbacks.Recorder(attempt)` and the recipe's trainer
              with `callbacks.trial_callbacks(...)` (metrics to the spool, pruning, NaN, early
              stop, Ctrl-C after an evaluation, the watched prompts)
    train     `trained = train(attempt, trainer, recorder)`; a trial that ended early (pruned,
              NaN, Ctrl-C) returns `trained.ended`
    evaluate  the best checkpoint (the trainer loaded it back), then `attempt.record(values, …)`
    save      `save_best(trainer, tokenizer, attempt.out)`, then `attempt.complete(trained, values)`

`run_trial(job, progress, train_once)` runs it: it writes the manifest, reads the prepared rows,
starts the attempt over with half the micro-batch and twice the accumulation after CUDA ran out
of memory (the same effective batch, so the comparison with other trials stays fair), and adds
the peak memory, the disk the result takes and the cost. Runs inside a fresh trial process (see
engine/run/child.py); on several devices, in every rank of torchrun (rank 0 records).
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import builders, manifest
from tunelab.engine.train import model as models
from tunelab.engine.train.evaluate import evaluation_events, sample_events
from tunelab.store import Row, Spool

# What a trial tells the runner as it goes: ("log", {"step": …, "loss": …}), ("eval", …), …
Progress = Callable[[str, dict[str, Any]], None]

# Tests set this to make the first N attempts of a trial fail as if CUDA ran out of memory.
FAULT_OOM = "TUNELAB_FAULT_OOM_ATTEMPTS"


class OutOfMemory(Exception):
    pass


def is_oom(error: BaseException) -> bool:
    return isinstance(error, OutOfMemory) or type(error).__name__ == "OutOfMemoryError" or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def rank() -> int:
    """This process's rank in a trial launched with torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def world() -> int:
    """The number of ranks of this trial (1 unless launched with torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def barrier() -> None:
    """Every rank waits here for the others (nothing to wait for on one device)."""
    if world() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


class Writer(Protocol):
    """Where a trial's events go: a Spool (on ranks other than 0, nowhere)."""

    def write(self, events: Iterable[Row], ingest: bool = True) -> None: ...

    def close(self) -> bool: ...


def trial_spool(store: str | Path, tag: str) -> Spool:
    """The spool a trial or a baseline process writes to. Its runner takes in what it leaves, so
    it never waits long for a held store (a trial's duration must not count someone's lock), and
    a store deleted under it does not stop it: its events stay in the spool (store/spool.py)."""
    return Spool(store, tag=tag, keep_when_gone=True, final_wait=1.0)


class _NoSpool:
    """What ranks other than 0 of a distributed trial write to: nothing (rank 0 records)."""

    def write(self, events: Iterable[Row], ingest: bool = True) -> None:
        pass

    def close(self) -> bool:
        return True


@dataclass(frozen=True)
class Rows:
    """The prepared splits of the trial's data (a dpo stage: its parent's)."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """How a training ended, as the callbacks saw it (engine.train.callbacks.Recorder)."""

    evaluations: int = 0
    pruned: bool = False  # Optuna pruned it at an evaluation
    nan: bool = False  # the loss became NaN or infinite
    interrupted: bool = False  # Ctrl-C: stopped after an evaluation


@dataclass(frozen=True)
class Attempt:
    """One attempt at a trial: what a recipe's `train_once` gets. `cost` gathers the seconds
    spent besides training (watching, scoring the examples); they end in the result's info."""

    job: TrialJob
    exp: Experiment
    micro: int  # the micro-batch of this attempt (halved after each out-of-memory)
    number: int  # 0 for the first attempt
    spool: Writer
    progress: Progress
    rows: Rows
    cost: dict[str, float] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.job.out_dir)

    @property
    def trial(self) -> int:
        """The Optuna trial number, as the store's rows name it (-1 for none)."""
        return self.job.number if self.job.number is not None else -1

    @property
    def cache(self) -> Path:
        """The prepared data's folder: what every trial of the sweep renders once is kept there."""
        return Path(self.job.data["train"]).parent

    def on_render(self, rows: int) -> None:
        """Heard before the rows are rendered (not when they are read back from the cache)."""
        self.progress("tokenizing", {"rows": rows})

    def record(self, values: dict[str, float], samples: list[dict[str, Any]]) -> None:
        """The evaluations ("split/name" -> value) and samples of the trained model, spooled."""
        ref = f"trial:{self.job.number}"
        self.spool.write(evaluation_events(self.exp, ref, values) + sample_events(self.exp, ref, samples))

    def complete(self, trained: Trained, values: dict[str, float]) -> TrialResult:
        """The result of a trial that trained to the end; its value is the objective's."""
        info = {**trained.info, "values": values, **self.cost}
        value = objective_value(self.exp.search.objective, self.exp.method.stage, values)
        return TrialResult("complete", value=value, info=info)


@dataclass(frozen=True)
class Trained:
    """What a training ran (for the trial's row) and how it ended."""

    info: dict[str, Any]
    outcome: Outcome
    best: float | None  # the best validation loss (the checkpoint the trainer loaded back)
    ended: TrialResult | None  # the result of a trial that ends here: NaN, pruned, Ctrl-C


def train(attempt: Attempt, trainer: Any, recorder: Any) -> Trained:
    """Trains; a trial that ends here (a NaN loss, pruned, Ctrl-C) has its checkpoints removed.
    Every recipe stops by the same rules: those of `recorder` (a callbacks.Recorder)."""
    exp = attempt.exp
    device, _ = models.device_and_dtype(exp)
    total, trainable = models.count_parameters(trainer.model)
    accumulation = exp.train.batch_size // attempt.micro
    attempt.progress("start", {"params": total, "trainable": trainable,
                               "micro_batch": attempt.micro, "accumulation": accumulation})
    output = trainer.train()
    state = trainer.state
    info = {"train_seconds": output.metrics.get("train_runtime"), "steps": state.global_step,
            "tokens": int(state.num_input_tokens_seen or 0),
            "params": total, "trainable": trainable, "micro_batch": attempt.micro,
            "accumulation": accumulation, "device": device}
    outcome: Outcome = recorder.outcome
    best = state.best_metric
    if outcome.nan:
        return Trained(info, outcome, best, TrialResult(
            "failed", fail_reason="nan", info=info,
            error="the loss became NaN or infinite; lower the learning rate"))
    barrier()  # every rank is done with the checkpoints before rank 0 removes them
    if not (outcome.interrupted or outcome.pruned):
        return Trained(info, outcome, best, None)
    if rank() == 0:
        shutil.rmtree(attempt.out / "checkpoints", ignore_errors=True)
    if outcome.pruned:
        return Trained(info, outcome, best, TrialResult("pruned", value=best, info=info))
    return Trained(info, outcome, best, TrialResult(
        "failed", value=best, fail_reason="interrupted", info=info,
        error=f"stopped by Ctrl-C after {outcome.evaluations} evaluations"))


def save_best(trainer: Any, tokenizer: Any, out: Path) -> None:
    """The best checkpoint (the adapter alone for LoRA, QLoRA and prefix) with its tokenizer
    in best/; the other checkpoints are dropped."""
    # written under another name and renamed when whole: a crash while saving never leaves a
    # half-written best/ that export, chat or review would load
    partial = out / "best.partial"
    trainer.save_model(str(partial))  # every rank calls it; the main process writes
    barrier()
    if rank() == 0:
        tokenizer.save_pretrained(str(partial))
        os.replace(partial, out / "best")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def run_trial(job: TrialJob, progress: Progress,
              train_once: Callable[[Attempt], TrialResult]) -> TrialResult:
    """A trial of the recipe `train_once` with its bookkeeping: the manifest, the retries at
    half the micro-batch after out-of-memory, the cost."""
    from tunelab.engine.data.prepare import read_rows

    exp = Experiment.model_validate(job.experiment)
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device, _ = models.device_and_dtype(exp)
    if rank() == 0:
        manifest.write_manifest(job, exp, out, device)
    rows = Rows(*(read_rows(job.data[s]) if s in job.data else []
                  for s in ("train", "validation", "test")))
    started = time.time()
    spool: Writer = trial_spool(job.store, f"trial{job.number}") if rank() == 0 else _NoSpool()
    try:
        result = _attempts(job, exp, spool, progress, rows, train_once)
        hours = (time.time() - started) / 3600
        devices = world() if device == "cuda" else 1
        result.info.update({
            "peak_memory": manifest.peak_memory(device),
            "disk_bytes": manifest.folder_bytes(out / "best"),
            "cost": hours * devices * exp.resources.price_per_hour, "device": device})
        return result
    finally:
        spool.close()


def _attempts(job: TrialJob, exp: Experiment, spool: Writer, progress: Progress, rows: Rows,
              train_once: Callable[[Attempt], TrialResult]) -> TrialResult:
    """The recipe, tried again at half the micro-batch after each out-of-memory (and its
    checkpoints dropped), until it fits, the micro-batch is 1 or the retries are spent."""
    device, _ = models.device_and_dtype(exp)
    micro = builders.first_micro_batch(exp, device)
    for number in range(exp.train.max_oom_retries + 1):
        try:
            return train_once(Attempt(job, exp, micro, number, spool, progress, rows))
        except Exception as error:
            if not is_oom(error):
                raise
            shutil.rmtree(Path(job.out_dir) / "checkpoints", ignore_errors=True)
            gc.collect()
            if device == "cuda":
                import torch

                torch.cuda.empty_cache()
            if micro == 1 or number == exp.train.max_oom_retries:
                return TrialResult("failed", fail_reason="oom", info={"micro_batch": micro},
                                   error=f"out of memory at micro-batch {micro} after "
                                         f"{number + 1} attempts: {error}")
            progress("oom", {"micro_batch": micro, "next": micro // 2})
            micro //= 2  # same effective batch: accumulation doubles
    raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover
