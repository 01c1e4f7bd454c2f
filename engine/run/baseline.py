"""The baseline: the base model, untouched, evaluated once on the same validation and test
splits as every trial (the first question of any fine-tune is whether it beats the model it
started from), and again with eval.baseline_shots training examples in each prompt (the
few-shot baseline: engine.train.fewshot). Runs in a trial process like a trial; losses come
from the same trainer and completion-only masking."""

from __future__ import annotations

from typing import Any

from tunelab.engine.baselines import BASE
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import fewshot
from tunelab.engine.train import model as models
from tunelab.engine.train.builders import load_for_method
from tunelab.engine.train.evaluate import evaluate_model, evaluation_events, sample_events
from tunelab.engine.train.sft import build_trainer
from tunelab.engine.train.trial import trial_spool
from tunelab.store import Row


def run_baseline(job: TrialJob, progress: Any) -> TrialResult:
    exp = Experiment.model_validate(job.experiment)
    exp = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    if exp.method.head == "classification":  # the base's body under a new head
        from tunelab.engine.train.classify import measure_baseline

        return recorded(job, exp, *measure_baseline(job, exp, progress))
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    train_rows, val_rows, test_rows = (read_rows(job.data[s]) for s in ("train", "validation", "test"))
    trainer = build_trainer(job, exp, model, tokenizer, [], train_rows[:1], val_rows, micro=8)
    progress("eval", {"what": "baseline"})
    values, samples = evaluate_model(trainer, model, tokenizer, exp, val_rows, test_rows)
    measured = {BASE: (values, samples)}
    if fewshot.wanted(exp):  # the same model with examples in its prompts (eval.baseline_shots)
        progress("eval", {"what": "few-shot baseline"})
        ref, shot_values, shot_samples = fewshot.evaluate_fewshot(
            model, tokenizer, exp, train_rows, val_rows, test_rows)
        measured[ref] = (shot_values, shot_samples)
    total, _ = models.count_parameters(model)
    return recorded(job, exp, measured, [], total)


def recorded(job: TrialJob, exp: Experiment,
             measured: dict[str, tuple[dict[str, float], list[dict[str, Any]]]],
             rows: list[Row], params: int) -> TrialResult:
    """The baselines' values and samples spooled (model ref -> (values, samples)) with any other
    rows (a classifier's confusion matrix); the result carries the values back to the runner
    over the pipe, which shows them without reading the store."""
    with trial_spool(job.store, "baseline") as spool:
        for ref, (values, samples) in measured.items():
            spool.write(evaluation_events(exp, ref, values) + sample_events(exp, ref, samples))
        spool.write(rows)
    values = measured[BASE][0]
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={
        "params": params, "values": values, "baselines": {r: v for r, (v, _) in measured.items()}})
