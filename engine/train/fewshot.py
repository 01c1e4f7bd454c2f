"""The few-shot baseline: the base model with k training examples in each prompt
(eval.baseline_shots), scored by the same generation metrics as every trial. Before a sweep
spends hours, it answers the first question of any fine-tune: does a good prompt already do it?

The examples are k rows of the training split drawn with train.seed, the same k for every
prompt, in the order drawn. How they are put in the prompt depends on the template:

- a chat template (the model's own, chatml, alpaca): as earlier turns of the conversation, each
  example's user turn and its answer, before the row's own turns (after its system turn);
- the plain template (a tokenizer without a chat template, e.g. a pretrained base model or a
  scratch one): as text before the prompt, each example its prompt, a newline and its answer,
  the examples separated by a blank line. The answer ends at the first blank line the model
  writes (lm-evaluation-harness's `until: ["\\n\\n"]`): a base model goes on with the next example.

A prompt longer than train.max_length less eval.max_new_tokens tokens loses its first examples
until it fits. Only generation metrics are measured: with examples in the prompt a loss would not
compare with a trial's. The values are stored under the model ref `base+3shot`
(engine.baselines).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tunelab.engine.baselines import fewshot_ref
from tunelab.engine.data import formats
from tunelab.engine.data import render as chat_render
from tunelab.engine.objectives import LOSS_METRICS
from tunelab.engine.spec import Experiment, measures
from tunelab.engine.train.evaluate import generation_metrics

SEPARATOR = "\n\n"  # between the examples of a plain prompt, and where its answer ends

Prompt = Callable[[dict[str, Any], Any, str], "tuple[str, str] | None"]


def wanted(exp: Experiment) -> bool:
    """Whether the baseline also prompts the base with examples (engine.spec.measures)."""
    return measures.fewshot_baseline(exp)


def choose_examples(train: list[dict[str, Any]], shots: int, seed: int) -> list[dict[str, Any]]:
    """`shots` conversations of the training split, drawn with `seed` (the same every run)."""
    usable = [row for row in train if any(m["role"] == "assistant" for m in row.get("messages", []))]
    return random.Random(seed).sample(usable, min(shots, len(usable)))


def _turns(row: dict[str, Any]) -> list[dict[str, str]]:
    """An example's turns up to its last answer, without its system turn."""
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return [m for m in messages[:last + 1] if m["role"] != "system"]


def with_examples(row: dict[str, Any], examples: list[dict[str, Any]], plain: bool) -> dict[str, Any]:
    """The row with the examples before its prompt: as turns, or (plain) as text before its first
    user turn."""
    messages = list(row["messages"])
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if plain:
        prefix = "".join(f"{before}\n{answer}{SEPARATOR}"
                         for before, answer in (formats.flat(e) for e in examples))
        first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
        if first is not None:
            rest[first] = {**rest[first], "content": prefix + rest[first]["content"]}
        return {**row, "messages": system + rest}
    shown = [turn for example in examples for turn in _turns(example)]
    return {**row, "messages": system + shown + rest}


def prompt_with(examples: list[dict[str, Any]], plain: bool, budget: int) -> Prompt:
    """A prompt renderer for generation_metrics: the row's prompt with the examples before it,
    the first ones left out while it is over `budget` tokens."""

    def render(row: dict[str, Any], tokenizer: Any, template: str) -> tuple[str, str] | None:
        found = None
        for start in range(len(examples) + 1):
            found = chat_render.generation_prompt(with_examples(row, examples[start:], plain),
                                                  tokenizer, template)
            if found is None or len(tokenizer(found[0], add_special_tokens=False)["input_ids"]) <= budget:
                return found
        return found  # no example at all is still over the budget: the row as it is

    return render


def evaluate_fewshot(model: Any, tokenizer: Any, exp: Experiment, train: list[dict[str, Any]],
                     validation: list[dict[str, Any]], test: list[dict[str, Any]],
                     ) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    """(the model ref, "split/metric" -> value, samples) of the base model with
    eval.baseline_shots examples: the test split's generation metrics, and the validation
    split's when the objective is one (as evaluate_model measures a trial)."""
    shots = exp.eval.baseline_shots
    examples = choose_examples(train, shots, exp.train.seed)
    name = train[0].get("template", exp.dataset.template) if train else "auto"
    plain = chat_render.template_text(name, tokenizer) == chat_render.TEMPLATES["plain"]
    budget = max(exp.train.max_length - exp.eval.max_new_tokens, 1)
    prompt = prompt_with(examples, plain, budget)
    stop = SEPARATOR if plain else None
    values: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    if test:
        found, samples = generation_metrics(model, tokenizer, exp, test, prompt, stop)
        values.update({f"test/{k}": v for k, v in found.items()})
    if exp.search.objective not in {"eval_loss", *LOSS_METRICS} and validation:
        found, _ = generation_metrics(model, tokenizer, exp, validation, prompt, stop)
        values.update({f"validation/{k}": v for k, v in found.items()})
    return fewshot_ref(len(examples)), values, samples
