"""Objectives and verdicts, defined once: which way an objective is better, where its value is
among a model's evaluations, and whether a success criterion is met.

Light on purpose (the standard library only): the CLI and the TUI judge with the same rules
as the runner without importing the training stack. A model's values are keyed
"split/metric" ("validation/loss", "test/exact_match", "preferences/reward_accuracy").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

Direction = Literal["minimize", "maximize"]
T = TypeVar("T")

LOSS_METRICS = ("loss", "perplexity")
# measured by the runner (trials.cost, trials.duration_s), not evaluated on a split
EXTRA_OBJECTIVES = ("cost", "duration_s")
# a person's blind votes: the trial's rating over the base model (engine.run.preference)
PREFERENCE = "preference"
# The stages that start from a trial of a supervised experiment (method.from) and learn from
# votes (method.preferences): the trial tuned from pairs (dpo, orpo, simpo) or from single
# answers marked desirable or not (kto), or a reward model trained on the pairs (reward)
PREFERENCE_STAGES = ("dpo", "kto", "reward", "orpo", "simpo")
# what a preference stage computes besides the losses, on its held-out pairs (split "preferences")
PREFERENCE_METRICS = ("reward_accuracy", "reward_margin", "preference_accuracy")
# [eval.forgetting]: a trial's loss on general text minus the base model's (split "general")
FORGETTING = "forgetting"
# [eval.harness]: a benchmark score is named TASK:METRIC ("arc_easy:acc"; split "harness")
HARNESS_SPLIT = "harness"
LOWER_IS_BETTER = frozenset({"eval_loss", *LOSS_METRICS, *EXTRA_OBJECTIVES, FORGETTING})

# a success criterion: an operator and a number, e.g. ">= 0.9", "< 1.5", "== 1", "> -2e-3"
CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$")


def default_direction(objective: str) -> Direction:
    """Losses, perplexity, cost and time go down; every other metric (accuracy, BLEU…) up."""
    return "minimize" if objective in LOWER_IS_BETTER else "maximize"


def as_minimized(value: float, direction: str | None) -> float:
    """The value on a scale where lower is better (None means the default, minimize)."""
    return -value if direction == "maximize" else value


def better(a: float, b: float, direction: str | None) -> bool:
    """Whether `a` is strictly better than `b` in this direction."""
    return as_minimized(a, direction) < as_minimized(b, direction)


def ranked(items: Iterable[T], value: Callable[[T], float], direction: str | None) -> list[T]:
    """The items best first; ties keep their order."""
    return sorted(items, key=lambda item: as_minimized(value(item), direction))


def best_of(items: Iterable[T], value: Callable[[T], float], direction: str | None) -> T | None:
    """The best item (the first of equals), or None when there is none."""
    found = ranked(items, value, direction)
    return found[0] if found else None


def stage_of(spec: Mapping[str, Any]) -> str:
    """The stage of an experiment as the store keeps its spec (method.stage): "sft", or a
    preference stage (PREFERENCE_STAGES)."""
    return str((spec.get("method") or {}).get("stage") or "sft")


def metric_key(objective: str, stage: str) -> str:
    """Where an objective is among a model's values. A preference stage's eval_loss is its loss
    on the held-out votes (what it reported to the pruner and picked its checkpoint by), not the
    supervised loss on its parent's validation split: so the stage is always given."""
    if stage in PREFERENCE_STAGES and objective in {"eval_loss", *PREFERENCE_METRICS}:
        return "preferences/" + ("loss" if objective == "eval_loss" else objective)
    return "validation/loss" if objective == "eval_loss" else _beside_the_splits(objective) or \
        f"validation/{objective}"


def _beside_the_splits(metric: str) -> str | None:
    """Where a metric measured on something other than the task's own splits is: forgetting on
    the general text, a benchmark's score on its task; None for a metric of the splits."""
    if metric == FORGETTING:
        return f"general/{FORGETTING}"
    return f"{HARNESS_SPLIT}/{metric}" if ":" in metric else None


def objective_value(objective: str, stage: str, values: Mapping[str, float]) -> float | None:
    """The objective from a model's values; None when it was not computed."""
    return values.get(metric_key(objective, stage))


def passes(condition: str, value: float | None) -> bool:
    """`passes(">= 0.9", 0.93)` is True. A missing value or a malformed condition never passes."""
    found = CONDITION.match(condition)
    if value is None or found is None:
        return False
    op, bound = found.group(1), float(found.group(2))
    return {">=": value >= bound, "<=": value <= bound, ">": value > bound,
            "<": value < bound, "==": value == bound}[op]


def verdict(success: Mapping[str, str], values: Mapping[str, float]) -> dict[str, bool]:
    """Each success criterion judged on the test split's values ("test/exact_match"); a
    preference metric of a dpo stage, on its held-out pairs ("preferences/reward_accuracy");
    forgetting and a benchmark's score where they are measured ("general/forgetting")."""
    return {metric: passes(cond, judged_value(metric, values)) for metric, cond in success.items()}


def judged_value(metric: str, values: Mapping[str, float]) -> float | None:
    """The value a success criterion on `metric` is judged on; None when it was not measured."""
    return values.get(judged_key(metric), values.get(f"preferences/{metric}"))


def judged_key(metric: str) -> str:
    """Where a success criterion on `metric` reads its value: the test split's, unless the metric
    is measured beside the splits (forgetting, a benchmark)."""
    return _beside_the_splits(metric) or f"test/{metric}"


def succeeded(success: Mapping[str, str], values: Mapping[str, float]) -> bool | None:
    """Whether every criterion passes; None when the file states none, or when a value it
    judges was not measured (a trial recorded from the study after its store was lost: its
    test evaluation went with the store), which is not a failure."""
    if not success or any(judged_value(metric, values) is None for metric in success):
        return None
    return all(verdict(success, values).values())
