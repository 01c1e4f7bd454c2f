"""The baseline: the base model, untouched, evaluated once on the same validation and test
splits as every trial (the first question of any fine-tune is whether it beats the model it
started from). Runs in a trial process like a trial; losses come from the same trainer and
completion-only masking."""

from __future__ import annotations

from typing import Any

from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train.evaluate import evaluate_model, evaluation_events, sample_events
from tunelab.engine.train.sft import build_trainer, load_for_method
from tunelab.store import Spool


def run_baseline(job: TrialJob, progress: Any) -> TrialResult:
    exp = Experiment.model_validate(job.experiment)
    exp = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    train_rows, val_rows, test_rows = (read_rows(job.data[s]) for s in ("train", "validation", "test"))
    trainer = build_trainer(job, exp, model, tokenizer, [], train_rows[:1], val_rows, micro=8)
    progress("eval", {"what": "baseline"})
    values, samples = evaluate_model(trainer, model, tokenizer, exp, val_rows, test_rows)
    # as a trial's: the runner takes in what is left, so a held store does not hold the sweep
    with Spool(job.store, tag="baseline", keep_when_gone=True, final_wait=1.0) as spool:
        spool.write(evaluation_events(exp, "base", values) + sample_events(exp, "base", samples))
    total, _ = models.count_parameters(model)
    # the numbers go back to the runner over the pipe: it shows them without reading the store
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={"params": total, "values": values})
