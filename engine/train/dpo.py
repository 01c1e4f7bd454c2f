"""The preference-tuning (DPO) recipe: one trial, top to bottom: setup, train, evaluate, save.

It starts from a trial of a supervised experiment (the parent: see preferences.py) and learns
from preference pairs with TRL's DPOTrainer. The reference model is the parent itself: for an
adapter parent, TRL keeps a frozen copy of the adapter ("ref") beside the one being trained,
so the saved result is again an adapter on the same base, which chat, review and export load
like any trial's; for a full-weights parent, the reference is the parent's folder.

The pairs are tokenized as supervised training renders a conversation (engine.train.pairs).
Reward accuracy and margin, and the plain preference accuracy (does the model give the chosen
answer more probability than the rejected one?), are computed on the held-out pairs and on the
training pairs, against the parent's numbers measured before the first step. The parent's
validation and test splits give the same losses, generation metrics and samples as a supervised
trial: did preference tuning cost accuracy? What every recipe shares is the harness's
(engine.train.trial).
"""

from __future__ import annotations

import shutil
from typing import Any

from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train import trial
from tunelab.engine.train.builders import trainer_arguments
from tunelab.engine.train.callbacks import Recorder, trial_callbacks
from tunelab.engine.train.evaluate import evaluation_events, sample_events
from tunelab.engine.train.pairs import named, pair_sets, preference_metrics, sequence_logps
from tunelab.engine.train.policy import label_smoothing, load_policy, pad_id, supervised_values
from tunelab.store import Spool

# the pair sets and the names of their metrics in evaluations
MEASURED = (("heldout", "preferences"), ("train", "preferences_train"))


def train_once(attempt: trial.Attempt) -> TrialResult:
    """One attempt at a DPO trial (the harness tries again at half the micro-batch)."""
    job, exp, rows, micro = attempt.job, attempt.exp, attempt.rows, attempt.micro

    # setup: the parent as the policy, the pairs, and the parent's numbers on them
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pairs = pair_sets(job, exp, tokenizer)
    pad = pad_id(tokenizer)
    before = {s: sequence_logps(model, p, pad, micro) for s, p in pairs.items()}
    recorder = Recorder(attempt)
    # eval.watch: the parent's first validation prompts, answered at each evaluation
    trainer = build_dpo_trainer(job, exp, model, tokenizer, new_adapter,
                                trial_callbacks(attempt, recorder, tokenizer, rows.validation),
                                pairs["train"], pairs["heldout"], micro)

    # train
    trained = trial.train(attempt, trainer, recorder)
    if trained.ended is not None:
        return trained.ended

    # evaluate the best checkpoint (the trainer loaded it back): pairs, then the parent's splits
    attempt.progress("evaluate", {})
    values: dict[str, float] = {"preferences/loss": trained.best} if trained.best is not None else {}
    for split, name in MEASURED:
        after = sequence_logps(trainer.model, pairs[split], pad, micro)
        values.update(named(name, preference_metrics(after, before[split], exp.method.beta)))
    found, samples = supervised_values(job, exp, trainer.model, tokenizer, rows.validation,
                                        rows.test)
    values.update(found)
    attempt.record(values, samples)

    # save: an adapter on the same base as the parent's (TRL's frozen "ref" copy is dropped)
    trial.save_best(trainer, tokenizer, attempt.out)
    if trial.rank() == 0:
        shutil.rmtree(attempt.out / "best" / "ref", ignore_errors=True)
    return attempt.complete(trained, values)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def run_baseline(job: TrialJob, progress: trial.Progress) -> TrialResult:
    """The parent, measured as every trial will be: how often it already prefers the chosen
    answer, and its losses, metrics and samples on its own splits."""
    exp = Experiment.model_validate(job.experiment)
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pad = pad_id(tokenizer)
    progress("eval", {"what": "baseline"})
    pairs = pair_sets(job, exp, tokenizer)
    # the DPO loss where every trial starts: the parent is its own reference (all margins 0).
    # Each beta and loss type gives it another value: with either searched there is no one
    # baseline loss to compare trials with, so none is recorded.
    dpo = build_dpo_trainer(job, exp, model, tokenizer, new_adapter, [], pairs["train"],
                            pairs["heldout"], micro=8)
    values: dict[str, float] = {}
    if not {"method.beta", "method.loss_type"} & set(exp.search.space):
        values["preferences/loss"] = float(dpo.evaluate()["eval_loss"])
    for split, name in MEASURED:
        logps = sequence_logps(dpo.model, pairs[split], pad)
        values.update(named(name, preference_metrics(logps, logps, exp.method.beta)))
    rows = {s: read_rows(job.data[s]) if s in job.data else [] for s in ("validation", "test")}
    found, samples = supervised_values(job, exp, dpo.model, tokenizer, rows["validation"],
                                        rows["test"])
    values.update(found)
    with Spool(job.store, tag="baseline") as spool:
        spool.write(evaluation_events(exp, "base", values) + sample_events(exp, "base", samples))
    total, _ = models.count_parameters(model)
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={"params": total, "values": values})


def build_dpo_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                      new_adapter: Any, callbacks: list[Any], train: list[dict],
                      heldout: list[dict], micro: int) -> Any:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class PreTokenized(DPOTrainer):
        """The pairs come tokenized as in supervised training; TRL's own tokenization would
        render them again and could add special tokens twice."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

    # the DPO loss on the held-out pairs picks the checkpoint (metric_for_best_model eval_loss)
    # label smoothing: robust DPO's share of flipped votes (a number, or from the raters'
    # consistency: engine.review.rater_noise)
    args = DPOConfig(**trainer_arguments(job, exp, len(train), micro), beta=exp.method.beta,
                     loss_type=[exp.method.loss_type],
                     label_smoothing=label_smoothing(job, exp))
    return PreTokenized(model=model, args=args, train_dataset=Dataset.from_list(train),
                        eval_dataset=Dataset.from_list(heldout), processing_class=tokenizer,
                        peft_config=new_adapter, callbacks=callbacks)
