"""Evaluation: the loss of a model on a split, its generations and their metrics, the samples
kept for review, the baseline, and the success verdict.

The baseline is the base model, untouched, evaluated once on the same validation and test
splits as every trial, since the first question of any fine-tune is whether it beats the model
it started from. Losses come from the same trainer and completion-only masking as the trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from tunelab.engine.data.prepare import read_rows
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import CONDITION, PREFERENCE_METRICS, Experiment
from tunelab.engine.train import model as models
from tunelab.store import Spool


def passes(condition: str, value: float | None) -> bool:
    """`passes(">= 0.9", 0.93)` is True. A missing value never passes."""
    found = CONDITION.match(condition)
    if value is None or found is None:
        return False
    op, bound = found.group(1), float(found.group(2))
    return {">=": value >= bound, "<=": value <= bound, ">": value > bound,
            "<": value < bound, "==": value == bound}[op]


def verdict(success: dict[str, str], values: dict[str, float]) -> dict[str, bool]:
    """Each success criterion judged on the test split's values ("test/exact_match"); a
    preference metric of a dpo stage, on its held-out pairs ("preferences/reward_accuracy")."""
    return {metric: passes(cond, values.get(f"test/{metric}", values.get(f"preferences/{metric}")))
            for metric, cond in success.items()}


def prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:12]


def loss_on(trainer: Any, rows: list[dict[str, Any]], tokenizer: Any) -> float:
    from datasets import Dataset

    dataset = Dataset.from_list(models.render(rows, tokenizer))
    return float(trainer.evaluate(eval_dataset=dataset, metric_key_prefix="x")["x_loss"])


def general_perplexity(model: Any, tokenizer: Any, path: str, max_length: int) -> float:
    """Perplexity on held-out general text (JSONL with "text"): did fine-tuning forget?"""
    import torch

    texts = [r["text"] for r in read_rows(path) if r.get("text")][:200]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True,
                            max_length=max_length)["input_ids"].to(device)
            if ids.shape[1] < 2:
                continue
            loss = model(input_ids=ids, labels=ids).loss
            total += float(loss) * (ids.shape[1] - 1)  # .float() is a GPU sync point, once a text
            count += ids.shape[1] - 1
    return math.exp(min(total / max(count, 1), 50))


def generation_metrics(model: Any, tokenizer: Any, exp: Experiment, rows: list[dict[str, Any]],
                       ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Generates for the rows (their last assistant turn is the reference) and scores the
    outputs; returns metrics and (prompt, output, reference) samples in row order."""
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.data.preferences import readable
    from tunelab.engine.train.generate import generate
    from tunelab.engine.train.metrics import GENERATION

    wanted = [m for m in exp.eval.metrics if m in GENERATION]
    keep = max(exp.eval.samples, 0)
    limit = exp.eval.max_examples
    todo = (rows[:limit] if limit else rows) if wanted else rows[:keep]
    name = todo[0].get("template", exp.dataset.template) if todo else "auto"
    template = chat_render.template_text(name, tokenizer)
    pairs = [(row, found) for row in todo
             if (found := chat_render.generation_prompt(row, tokenizer, template)) is not None]
    if not pairs:
        return {}, []
    outputs = generate(model, tokenizer, [p for _, (p, _) in pairs], exp.eval.max_new_tokens)
    references = [ref for _, (_, ref) in pairs]
    values = {m: GENERATION[m](outputs, references) for m in wanted}
    # the prompt as a person reads the conversation the model was given (its roles kept), not
    # the row's flattened `prompt`
    samples = [{"prompt": readable(_before_answer(row)), "output": out, "reference": ref}
               for (row, (_, ref)), out in zip(pairs[:keep], outputs[:keep], strict=False)]
    return values, samples


def _before_answer(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns before the last assistant turn: what generation_prompt renders."""
    turns = row["messages"]
    last = max(i for i, m in enumerate(turns) if m["role"] == "assistant")
    return turns[:last]


def evaluation_events(exp: Experiment, ref: str, values: dict[str, float]) -> list[dict]:
    now = time.time()
    return [{"table": "evaluations", "row": {
        "experiment": exp.name, "model_ref": ref, "split": key.split("/")[0],
        "name": key.split("/")[1], "value": value, "time": now}} for key, value in values.items()]


def sample_events(exp: Experiment, ref: str, samples: list[dict[str, Any]]) -> list[dict]:
    now = time.time()
    settings = json.dumps({"do_sample": False, "max_new_tokens": exp.eval.max_new_tokens})
    return [{"table": "samples", "row": {
        "experiment": exp.name, "model_ref": ref, "prompt_id": prompt_id(s["prompt"]),
        "position": i, "prompt": s["prompt"], "output": s["output"], "reference": s["reference"],
        "settings": settings, "time": now}} for i, s in enumerate(samples)]


def evaluate_model(trainer: Any, model: Any, tokenizer: Any, exp: Experiment,
                   val_rows: list[dict[str, Any]], test_rows: list[dict[str, Any]],
                   val_loss: float | None = None) -> tuple[dict[str, float], list[dict]]:
    """Loss, perplexity and generation metrics on validation (loss; metrics too when the
    objective is one) and test; returns ("split/name" -> value, samples)."""
    values: dict[str, float] = {}
    values["validation/loss"] = val_loss if val_loss is not None else loss_on(trainer, val_rows, tokenizer)
    if test_rows:
        values["test/loss"] = loss_on(trainer, test_rows, tokenizer)
    for split in ("validation", "test"):
        if f"{split}/loss" in values:
            values[f"{split}/perplexity"] = math.exp(min(values[f"{split}/loss"], 50))
    samples: list[dict] = []
    if test_rows:
        found, samples = generation_metrics(model, tokenizer, exp, test_rows)
        values.update({f"test/{k}": v for k, v in found.items()})
    objective = exp.search.objective
    if objective not in {"eval_loss", "loss", "perplexity"}:
        found, _ = generation_metrics(model, tokenizer, exp, val_rows)
        values.update({f"validation/{k}": v for k, v in found.items()})
    if exp.eval.general:
        values["general/perplexity"] = general_perplexity(model, tokenizer, exp.eval.general,
                                                          exp.train.max_length)
    return values, samples


def objective_value(exp: Experiment, values: dict[str, float]) -> float | None:
    """The objective from a model's values. A dpo stage's eval_loss is its DPO loss on the
    held-out pairs (what it reported to the pruner and picked its checkpoint by)."""
    name = exp.search.objective
    if exp.method.stage == "dpo" and name in {"eval_loss", *PREFERENCE_METRICS}:
        return values.get("preferences/" + ("loss" if name == "eval_loss" else name))
    return values.get("validation/loss" if name == "eval_loss" else f"validation/{name}")


def run_baseline(job: TrialJob, progress: Any) -> TrialResult:
    from tunelab.engine.train.sft import build_trainer, load_for_method

    exp = Experiment.model_validate(job.experiment)
    exp = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    train_rows, val_rows, test_rows = (read_rows(job.data[s]) for s in ("train", "validation", "test"))
    trainer = build_trainer(job, exp, model, tokenizer, [], train_rows[:1], val_rows, micro=8)
    progress("eval", {"what": "baseline"})
    values, samples = evaluate_model(trainer, model, tokenizer, exp, val_rows, test_rows)
    with Spool(job.store, tag="baseline") as spool:
        spool.write(evaluation_events(exp, "base", values) + sample_events(exp, "base", samples))
    total, _ = models.count_parameters(model)
    return TrialResult("complete", value=objective_value(exp, values), info={"params": total})
