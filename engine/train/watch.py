"""Watching a trial learn (eval.watch = N): at each evaluation during training, greedy answers
to N fixed prompts are generated and stored with the step and epoch (the watch_samples table),
so the trial screen can show the outputs change, not only the loss.

The prompts are the first N of the validation split, rendered exactly as the final samples are
(chat_render.generation_prompt): every trial of an experiment shares the split, so every trial
watches the same prompts. The cost is one batched greedy generation of at most
eval.watch_max_new_tokens tokens per evaluation (bench/bench_watch.py measures it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tunelab.engine.spec import Experiment
from tunelab.engine.train.evaluate import prompt_id, readable_prompt
from tunelab.engine.train.generate import generate
from tunelab.store import WatchSampleRow


@dataclass(frozen=True)
class Watched:
    """One watched prompt: as a person reads it, as the model sees it, and the expected answer."""

    readable: str
    rendered: str
    reference: str


def watched_prompts(exp: Experiment, tokenizer: Any, val_rows: list[dict[str, Any]]
                    ) -> list[Watched]:
    """The first eval.watch validation rows that have a prompt (a plain-text row has none)."""
    from tunelab.engine.data import render as chat_render

    if exp.eval.watch <= 0:
        return []
    found: list[Watched] = []
    for row in val_rows:
        if len(found) == exp.eval.watch:
            break
        template = chat_render.template_text(row.get("template", exp.dataset.template), tokenizer)
        pair = chat_render.generation_prompt(row, tokenizer, template)
        if pair is not None:
            found.append(Watched(readable_prompt(row), pair[0], pair[1]))
    return found


def watch_callback(exp: Experiment, trial: int, tokenizer: Any, prompts: list[Watched],
                   spool: Any, cost: dict[str, float]) -> Any:
    """A trainer callback that answers the watched prompts after each evaluation and spools the
    answers; `cost["watch_seconds"]` adds up the time it took."""
    from transformers import TrainerCallback

    class Watch(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            if model is None or not prompts:
                return
            started = time.perf_counter()
            training = model.training
            outputs = generate(model, tokenizer, [p.rendered for p in prompts],
                               exp.eval.watch_max_new_tokens, batch_size=len(prompts))
            model.train(training)  # generate() leaves the model in eval mode
            now = time.time()
            spool.write([WatchSampleRow(
                experiment=exp.name, trial=trial, step=state.global_step, position=i,
                epoch=state.epoch, prompt_id=prompt_id(p.readable), prompt=p.readable,
                output=out, reference=p.reference, time=now)
                for i, (p, out) in enumerate(zip(prompts, outputs, strict=True))])
            cost["watch_seconds"] = cost.get("watch_seconds", 0.0) + time.perf_counter() - started

    return Watch()
