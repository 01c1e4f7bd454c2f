"""The baselines a sweep is measured against, and what their verdict says. Light on purpose (the
standard library only): the runner, the CLI and the TUI name and judge them the same way.

- `base`: the base model as it is, zero-shot (engine.run.baseline);
- `base+3shot`: the same model with 3 training examples in each prompt (eval.baseline_shots;
  engine.train.fewshot). Only its generation metrics are measured: with examples in the
  prompt a loss would not compare with a trial's.

When a baseline already meets every success criterion, fine-tuning may not be needed, and the
end of `tunelab run`, `tunelab trials` and the TUI say so in the words of `meets_words`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from tunelab.engine.objectives import succeeded

BASE = "base"
_FEWSHOT = re.compile(r"^base\+([0-9]+)shot$")


def fewshot_ref(shots: int) -> str:
    """The model ref of the base model prompted with `shots` examples: `base+3shot`."""
    return f"{BASE}+{shots}shot"


def shots_of(ref: str) -> int | None:
    """3 for `base+3shot`, 0 for `base`; None for any other ref (a trial)."""
    if ref == BASE:
        return 0
    found = _FEWSHOT.match(ref)
    return int(found.group(1)) if found else None


def is_baseline(ref: str) -> bool:
    return shots_of(ref) is not None


@dataclass(frozen=True)
class Baseline:
    """One baseline's values, as the store holds them ("split/metric" -> value)."""

    ref: str
    shots: int
    values: Mapping[str, float]

    @property
    def label(self) -> str:
        """How a table names it: `base` and `base 3-shot`."""
        return BASE if self.shots == 0 else f"{BASE} {self.shots}-shot"

    @property
    def words(self) -> str:
        """How a sentence names it: `the base model`, `the base model with 3 examples`."""
        if self.shots == 0:
            return "the base model"
        return f"the base model with {self.shots} example{'s' if self.shots != 1 else ''}"


def baselines(evaluations: Mapping[str, Mapping[str, float]]) -> list[Baseline]:
    """The baselines among an experiment's evaluations, zero-shot first, then by shots."""
    found = [Baseline(ref, shots, values) for ref, values in evaluations.items()
             if (shots := shots_of(ref)) is not None]
    return sorted(found, key=lambda b: b.shots)


def _condition(condition: str) -> str:
    return condition.strip().replace(">=", "≥").replace("<=", "≤")


def criteria_words(success: Mapping[str, str]) -> str:
    """`exact_match ≥ 0.9 and loss < 1.5`."""
    return " and ".join(f"{metric} {_condition(c)}" for metric, c in success.items())


def meets_words(success: Mapping[str, str],
                evaluations: Mapping[str, Mapping[str, float]]) -> str | None:
    """"the base model with 3 examples meets exact_match ≥ 0.9: you may not need to fine-tune",
    for the baseline with the fewest examples that meets every criterion; None when none does
    (or the file states no criterion)."""
    for baseline in baselines(evaluations):
        if succeeded(success, baseline.values):
            return (f"{baseline.words} meets {criteria_words(success)}: "
                    "you may not need to fine-tune")
    return None
