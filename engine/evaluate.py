"""The baseline: the base model, untouched, evaluated once on the validation and test splits.

Every trial is shown against it, since the first question of any fine-tune is
whether it beats the model it started from. The loss is computed by the same
trainer and the same completion-only masking as the trials' own evaluations.
"""

from __future__ import annotations

import math
import time
from typing import Any

from tunelab.engine import model as models
from tunelab.engine.data import read_rows
from tunelab.engine.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.store import Spool


def run_baseline(job: TrialJob, progress: Any) -> TrialResult:
    from datasets import Dataset

    from tunelab.engine.train import build_trainer

    exp = Experiment.model_validate(job.experiment)
    exp = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    tokenizer = models.load_tokenizer(job.base, exp)
    model = models.load_model(job.base, exp)
    train_rows, val_rows, test_rows = (read_rows(job.data[s]) for s in ("train", "validation", "test"))
    trainer = build_trainer(job, exp, model, tokenizer, [], train_rows[:1], val_rows)
    values: dict[str, float] = {}
    for split, rows in (("validation", val_rows), ("test", test_rows)):
        if not rows:
            continue
        dataset = Dataset.from_list(models.render(rows, tokenizer))
        loss = trainer.evaluate(eval_dataset=dataset, metric_key_prefix="x")["x_loss"]
        values[f"{split}/loss"] = loss
        values[f"{split}/perplexity"] = math.exp(min(loss, 50))
    now = time.time()
    with Spool(job.store, tag="baseline") as spool:
        spool.write([{"table": "evaluations", "row": {
            "experiment": exp.name, "model_ref": "base", "split": key.split("/")[0],
            "name": key.split("/")[1], "value": value, "time": now}}
            for key, value in values.items()])
    total, _ = models.count_parameters(model)
    return TrialResult("complete", value=values.get("validation/loss"), info={"params": total})
