"""What the recipes that tune their parent trial as a policy share (dpo, kto, orpo, simpo): the
parent loaded as the policy, the settings measured on the votes before the first trial, the
preference metrics of the pairs, the parent's splits measured as a supervised trial's, and
(for kto, orpo and simpo) the whole trial and its baseline around the recipe's trainer.

A recipe gives `build(job, exp, model, tokenizer, new_adapter, callbacks, pairs, micro)`, which
returns its TRL trainer; `train_policy(attempt, build)` reads top to bottom as every recipe:

    setup     the parent as the policy, the pairs, the parent's numbers on them, the trainer
    train     trial.train (the harness: callbacks, pruning, NaN, Ctrl-C)
    evaluate  the best checkpoint on the pairs (held out and trained on) and the parent's splits
    save      the adapter (TRL's frozen "ref" copy dropped) or the weights
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol

from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train import trial
from tunelab.engine.train.builders import load_for_method, peft_config
from tunelab.engine.train.callbacks import Recorder, trial_callbacks
from tunelab.engine.train.evaluate import evaluate_model, evaluation_events, sample_events
from tunelab.engine.train.pairs import named, pair_sets, preference_metrics, sequence_logps
from tunelab.engine.train.reference import Logps, reference_logps
from tunelab.engine.train.sft import build_trainer

# the pair sets and the names of their metrics in evaluations
MEASURED = (("heldout", "preferences"), ("train", "preferences_train"))
# the prepared file of what was measured on the votes (engine.review.stage_data.MEASURED)
MEASURED_FILE = "stage"
# keys whose values scale a stage's loss: with one searched, no one baseline loss compares
LOSS_SCALES = {"method.beta", "method.loss_type", "method.simpo_gamma"}

class Build(Protocol):
    """A recipe's trainer: `reference` (the parent's log-probabilities of the pairs, measured once
    a sweep) lets a DPO trainer skip running the reference at every step; others ignore it."""

    def __call__(self, job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                 new_adapter: Any, callbacks: list[Any], pairs: dict[str, list[dict]], micro: int,
                 reference: dict[str, Logps] | None = None) -> Any: ...


def load_policy(job: TrialJob, exp: Experiment, trainable: bool) -> tuple[Any, Any, Any]:
    """(model, tokenizer, a new adapter's config or None): the parent, ready to train on."""
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    if job.parent is None:  # full weights: train them, or a new adapter on them
        return model, tokenizer, peft_config(exp) if trainable else None
    from peft import PeftModel

    return PeftModel.from_pretrained(model, job.parent, is_trainable=trainable), tokenizer, None


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def measured_settings(job: TrialJob) -> dict[str, Any]:
    """What the runner measured on the votes for every trial of the stage (label smoothing)."""
    if MEASURED_FILE not in job.data:
        return {}
    rows = read_rows(job.data[MEASURED_FILE])
    return dict(rows[0]) if rows else {}


def label_smoothing(job: TrialJob, exp: Experiment) -> float:
    """A dpo stage's label smoothing: the file's number, or the one the runner measured from
    the raters' consistency (engine.review.rater_noise); said in the trial's log."""
    found = measured_settings(job)
    if "label_smoothing" not in found:
        if isinstance(exp.method.label_smoothing, str):
            raise ValueError("method.label_smoothing is measured by the runner before the first "
                             "trial; this trial's data has no measure of it")
        return float(exp.method.label_smoothing)
    print(f"tunelab: {found['label_smoothing_from']}", flush=True)  # the trial's log
    return float(found["label_smoothing"])


def supervised_values(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                      val_rows: list[dict], test_rows: list[dict]) -> tuple[dict, list]:
    """Losses, generation metrics and samples on the parent's splits, as for an SFT trial."""
    if not val_rows:
        return {}, []
    plain = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    cache = Path(job.data["validation"]).parent  # the parent's prepared data: rendered once a sweep
    sft = build_trainer(job, plain, model, tokenizer, [], val_rows[:1], val_rows, micro=8, cache=cache)
    return evaluate_model(sft, model, tokenizer, exp, val_rows, test_rows, cache=cache)


def pair_values(model: Any | None, pairs: dict[str, list[dict]], pad: int, micro: int,
                beta: float, before: dict[str, Logps]) -> dict[str, float]:
    """The preference metrics of each non-empty pair set, against `before` (the parent's
    log-probabilities); model None: the parent itself, its own reference."""
    values: dict[str, float] = {}
    for split, name in MEASURED:
        if not pairs.get(split):  # a kto stage's votes may hold no decisive one on a side
            continue
        now = before[split] if model is None else sequence_logps(model, pairs[split], pad, micro)
        values.update(named(name, preference_metrics(now, before[split], beta)))
    return values


def train_policy(attempt: trial.Attempt, build: Build) -> TrialResult:
    """One attempt at a trial of a policy recipe (see the module); the harness tries again at
    half the micro-batch after out-of-memory."""
    job, exp, rows, micro = attempt.job, attempt.exp, attempt.rows, attempt.micro

    # setup: the parent as the policy, the pairs, and the parent's numbers on them
    # (the reference: measured once per sweep, by the baseline)
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pairs = pair_sets(job, exp, tokenizer)
    pad = pad_id(tokenizer)
    before = reference_logps(job, exp, model, pairs, pad)
    recorder = Recorder(attempt)
    # eval.watch: the parent's first validation prompts, answered at each evaluation
    trainer = build(job, exp, model, tokenizer, new_adapter,
                    trial_callbacks(attempt, recorder, tokenizer, rows.validation), pairs, micro,
                    reference=before)

    # train
    trained = trial.train(attempt, trainer, recorder)
    if trained.ended is not None:
        return trained.ended

    # evaluate the best checkpoint (the trainer loaded it back): pairs, then the parent's splits
    attempt.progress("evaluate", {})
    values: dict[str, float] = {"preferences/loss": trained.best} if trained.best is not None else {}
    values.update(pair_values(trainer.model, pairs, pad, micro, exp.method.beta, before))
    found, samples = supervised_values(job, exp, trainer.model, tokenizer, rows.validation,
                                       rows.test)
    values.update(found)
    attempt.record(values, samples)

    # save: an adapter on the same base as the parent's (TRL's frozen "ref" copy is dropped)
    trial.save_best(trainer, tokenizer, attempt.out)
    if trial.rank() == 0:
        shutil.rmtree(attempt.out / "best" / "ref", ignore_errors=True)
    return attempt.complete(trained, values)


def policy_baseline(job: TrialJob, progress: trial.Progress, build: Build) -> TrialResult:
    """The parent, measured as every trial will be: its loss on the held-out votes (unless a
    searched key scales it), its preference metrics (its own reference) and its splits."""
    exp = Experiment.model_validate(job.experiment)
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pad = pad_id(tokenizer)
    progress("eval", {"what": "baseline"})
    pairs = pair_sets(job, exp, tokenizer)
    reference = reference_logps(job, exp, model, pairs, pad)  # kept for every trial
    # the loss where every trial starts (a dpo trainer's parent is its own reference: all
    # margins 0). Each beta and loss type gives it another value: with one searched there is
    # no one baseline loss to compare trials with, so none is recorded.
    trainer = build(job, exp, model, tokenizer, new_adapter, [], pairs, 8)
    values: dict[str, float] = {}
    if not LOSS_SCALES & set(exp.search.space):
        values["preferences/loss"] = float(trainer.evaluate()["eval_loss"])
    values.update(pair_values(None, pairs, pad, 8, exp.method.beta, reference))
    rows = {s: read_rows(job.data[s]) if s in job.data else [] for s in ("validation", "test")}
    found, samples = supervised_values(job, exp, trainer.model, tokenizer, rows["validation"],
                                       rows["test"])
    values.update(found)
    with trial.trial_spool(job.store, "baseline") as spool:
        spool.write(evaluation_events(exp, "base", values) + sample_events(exp, "base", samples))
    total, _ = models.count_parameters(model)
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={"params": total, "values": values})
