"""Evaluation: the loss of a model on a split, its generations and their metrics, and the
samples kept for review; the same for every trial and for the baseline (engine.run.baseline).
Judging an objective or a success criterion is engine.objectives.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import LOSS_METRICS
from tunelab.engine.spec import Experiment
from tunelab.engine.train import tokens
from tunelab.store import EvaluationRow, Row, SampleRow


def prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:12]


def loss_on(trainer: Any, rows: list[dict[str, Any]], tokenizer: Any, cache: Path | None = None) -> float:
    """The trainer's loss on the rows (rendered once per sweep when a cache folder is given)."""
    dataset = tokens.rendered(rows, tokenizer, cache)
    return float(trainer.evaluate(eval_dataset=dataset, metric_key_prefix="x")["x_loss"])


def general_perplexity(model: Any, tokenizer: Any, path: str, max_length: int) -> float:
    """Perplexity on held-out general text (JSONL with "text"): did fine-tuning forget?"""
    from tunelab.engine.train.forgetting import general_loss

    texts = [r["text"] for r in read_rows(path) if r.get("text")][:200]
    return math.exp(min(general_loss(model, tokenizer, texts, max_length), 50))


def generation_metrics(model: Any, tokenizer: Any, exp: Experiment, rows: list[dict[str, Any]],
                       prompt_of: Any = None, stop: str | None = None,
                       ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Generates for the rows (their last assistant turn is the reference) and scores the
    outputs; returns metrics and (prompt, output, reference) samples in row order. `prompt_of`
    renders a row's prompt (by default chat_render.generation_prompt; a few-shot baseline puts
    examples before it) and an output ends before `stop` (the few-shot examples' separator)."""
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.train.generate import generate
    from tunelab.engine.train.metrics import GENERATION

    wanted = [m for m in exp.eval.metrics if m in GENERATION]
    keep = max(exp.eval.samples, 0)
    limit = exp.eval.max_examples
    todo = (rows[:limit] if limit else rows) if wanted else rows[:keep]
    name = todo[0].get("template", exp.dataset.template) if todo else "auto"
    template = chat_render.template_text(name, tokenizer)
    prompt_of = prompt_of or chat_render.generation_prompt
    pairs = [(row, found) for row in todo
             if (found := prompt_of(row, tokenizer, template)) is not None]
    if not pairs:
        return {}, []
    outputs = generate(model, tokenizer, [p for _, (p, _) in pairs], exp.eval.max_new_tokens)
    if stop:
        outputs = [out.split(stop)[0].strip() for out in outputs]
    references = [ref for _, (_, ref) in pairs]
    values: dict[str, float] = {m: GENERATION[m](outputs, references) for m in wanted}
    samples = [{"prompt": readable_prompt(row), "output": out, "reference": ref}
               for (row, (_, ref)), out in zip(pairs[:keep], outputs[:keep], strict=False)]
    return values, samples


def readable_prompt(row: dict[str, Any]) -> str:
    """The prompt as a person reads the conversation the model was given (its roles kept), not
    the row's flattened `prompt`."""
    from tunelab.engine.data.preferences import readable

    return readable(_before_answer(row))


def _before_answer(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns before the last assistant turn: what generation_prompt renders."""
    turns: list[dict[str, Any]] = row["messages"]
    last = max(i for i, m in enumerate(turns) if m["role"] == "assistant")
    return turns[:last]


def evaluation_events(exp: Experiment, ref: str, values: dict[str, float]) -> list[Row]:
    now = time.time()
    return [EvaluationRow(
        experiment=exp.name, model_ref=ref, split=key.split("/")[0],
        name=key.split("/")[1], value=value, time=now) for key, value in values.items()]


def sample_events(exp: Experiment, ref: str, samples: list[dict[str, Any]]) -> list[Row]:
    now = time.time()
    settings = json.dumps({"do_sample": False, "max_new_tokens": exp.eval.max_new_tokens})
    return [SampleRow(
        experiment=exp.name, model_ref=ref, prompt_id=prompt_id(s["prompt"]),
        position=i, prompt=s["prompt"], output=s["output"], reference=s["reference"],
        settings=settings, time=now) for i, s in enumerate(samples)]


def evaluate_model(trainer: Any, model: Any, tokenizer: Any, exp: Experiment,
                   val_rows: list[dict[str, Any]], test_rows: list[dict[str, Any]],
                   val_loss: float | None = None, cache: Path | None = None,
                   general_before: float | None = None) -> tuple[dict[str, float], list[dict]]:
    """Loss, perplexity and generation metrics on validation (loss; metrics too when the
    objective is one) and test; the general text's loss against `general_before` (the model
    before training: [eval.forgetting]) and the benchmarks ([eval.harness]); returns
    ("split/name" -> value, samples). With a cache folder (the prepared data's), each split is
    rendered once per sweep (engine.train.tokens)."""
    values: dict[str, float] = {}
    values["validation/loss"] = (val_loss if val_loss is not None
                                 else loss_on(trainer, val_rows, tokenizer, cache))
    if test_rows:
        values["test/loss"] = loss_on(trainer, test_rows, tokenizer, cache)
    for split in ("validation", "test"):
        if f"{split}/loss" in values:
            values[f"{split}/perplexity"] = math.exp(min(values[f"{split}/loss"], 50))
    samples: list[dict] = []
    if test_rows:
        found, samples = generation_metrics(model, tokenizer, exp, test_rows)
        values.update({f"test/{k}": v for k, v in found.items()})
    if exp.search.objective not in {"eval_loss", *LOSS_METRICS}:  # a generation metric
        found, _ = generation_metrics(model, tokenizer, exp, val_rows)
        values.update({f"validation/{k}": v for k, v in found.items()})
    if exp.eval.general:
        values["general/perplexity"] = general_perplexity(model, tokenizer, exp.eval.general,
                                                          exp.train.max_length)
    if exp.eval.forgetting is not None or exp.eval.harness is not None:
        from tunelab.engine.train import benchmarks, forgetting

        values.update(forgetting.measured(model, tokenizer, exp, general_before))
        values.update(benchmarks.scores(model, tokenizer, exp))
    return values, samples
