"""Which examples are hard: the loss of every training and validation example under a trial's
best checkpoint, one row each in the store's example_losses table with the file and line the
example came from. `select … from example_losses order by loss desc limit 20` then finds the
mislabelled and off-format examples, which a model that has learned the rest finds hardest.

The loss is the trainer's: mean cross-entropy over the trained (completion) tokens, the
example rendered and truncated exactly as in training. One no-grad forward pass per example,
batched by length at the evaluation batch size (bench/bench_watch.py measures its cost).
"""

from __future__ import annotations

import os
import re
import time
from contextlib import nullcontext
from typing import Any

from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train.trial import Attempt, OutOfMemory, is_oom, rank
from tunelab.store import ExampleLossRow

# Tests set this to make the first N tries of scoring the examples after training fail as if
# CUDA ran out of memory.
FAULT_OOM_SCORING = "TUNELAB_FAULT_OOM_SCORING"

# "data.jsonl:17" (a JSON or CSV line), "data.parquet#3" (a row, from 1), "x#12" (a saved
# datasets folder's row, from 0): the number at the end is the row in the user's file
_ROW = re.compile(r"[:#](\d+)$")


def source_row(origin: str | None) -> int | None:
    found = _ROW.search(origin or "")
    return int(found.group(1)) if found else None


def per_example_losses(model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_length: int,
                       batch_size: int, autocast_dtype: Any = None) -> list[tuple[int, float | None]]:
    """(trained tokens, mean loss over them) per row, in row order; the loss is None for a row
    with no trained token left after truncation."""
    import torch

    rendered = models.render(rows, tokenizer)
    ids = [r["input_ids"][:max_length] for r in rendered]
    trained = [r["completion_mask"][:max_length] for r in rendered]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[tuple[int, float | None]] = [(0, None)] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))  # similar lengths: little padding
    training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, i in enumerate(batch):  # padded on the right: positions stay as in training
                n = len(ids[i])
                input_ids[row, :n] = torch.tensor(ids[i])
                attention[row, :n] = 1
                mask[row, :n] = torch.tensor(trained[i], dtype=torch.bool)
            mixed = torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype else nullcontext()
            with torch.no_grad(), mixed:
                logits = model(input_ids=input_ids.to(device),
                               attention_mask=attention.to(device)).logits
            # token t+1 is predicted at t; one row at a time in float32, so the full-vocabulary
            # logits are never copied whole to float32 (a big vocabulary would double memory)
            counts = mask[:, 1:].sum(dim=1).tolist()  # on the CPU: no GPU sync
            sums = torch.zeros(len(batch), device=device)
            targets = input_ids[:, 1:].to(device)
            wanted = mask[:, 1:].to(device)
            for row in range(len(batch)):
                losses = torch.nn.functional.cross_entropy(
                    logits[row, :-1].float(), targets[row], reduction="none")
                sums[row] = losses[wanted[row]].sum()
            # .tolist() is a GPU sync point: once per batch
            for i, count, total in zip(batch, counts, sums.tolist(), strict=True):
                if count:
                    results[i] = (count, total / count)
    finally:
        model.train(training)
    return results


def example_loss_events(exp: Experiment, trial: int, model: Any, tokenizer: Any,
                        splits: dict[str, list[dict[str, Any]]], batch_size: int
                        ) -> list[ExampleLossRow]:
    """The example_losses rows of a trial: every example of each split under `model`."""
    device, dtype = models.device_and_dtype(exp)
    # the dtype the trainer evaluates in (its autocast on a GPU); fp32 on the CPU
    mixed = dtype if device == "cuda" and str(dtype) in {"torch.bfloat16", "torch.float16"} else None
    events = []
    for split, rows in splits.items():
        found = per_example_losses(model, tokenizer, rows, exp.train.max_length, batch_size,
                                   mixed)
        now = time.time()
        events += [ExampleLossRow(
            experiment=exp.name, trial=trial, split=split, position=i, origin=row.get("origin"),
            source_row=source_row(row.get("origin")), tokens=tokens, loss=loss, time=now)
            for i, (row, (tokens, loss)) in enumerate(zip(rows, found, strict=True))]
    return events


def wanted(exp: Experiment) -> bool:
    """eval.example_losses; `auto`: from four epochs (a third of an epoch: within 10 % of the
    trial)."""
    if exp.eval.example_losses == "auto":
        return exp.train.epochs >= 4
    return bool(exp.eval.example_losses)


def score_examples(attempt: Attempt, trainer: Any, tokenizer: Any) -> None:
    """eval.example_losses: every train and validation example's loss under the best checkpoint
    (the trainer loaded it back), into example_losses. Out of memory here must not send a
    trained trial back to the start (the harness's retry): the batch halves, and at one example
    the scoring alone is given up (`example_losses_skipped` in the trial's cost)."""
    if not wanted(attempt.exp) or rank() != 0:
        return
    started = time.perf_counter()
    rows = attempt.rows
    batch = trainer.args.per_device_eval_batch_size
    faults = int(os.environ.get(FAULT_OOM_SCORING, "0"))
    while True:
        try:
            if faults > 0:
                faults -= 1
                raise OutOfMemory(f"CUDA out of memory (injected by {FAULT_OOM_SCORING})")
            events = example_loss_events(attempt.exp, attempt.trial, trainer.model, tokenizer,
                                         {"train": rows.train, "validation": rows.validation}, batch)
            break
        except Exception as error:
            if not is_oom(error):
                raise
            import torch

            torch.cuda.empty_cache()
            if batch == 1:
                attempt.cost["example_losses_skipped"] = 1.0
                return
            batch //= 2
    attempt.spool.write(events)
    attempt.cost["example_losses_seconds"] = time.perf_counter() - started
