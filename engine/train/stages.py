"""Which recipe trains a trial of each stage (`method.stage`), and which measures its baseline.
Imported inside a trial process: each recipe module (and its trainer) is imported only when
its stage runs."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from tunelab.engine.run.jobs import TrialJob, TrialResult

# stage -> the module under tunelab.engine.train with run_trial (and, for a preference stage,
# run_baseline); ORPO and SimPO share one recipe
RECIPES = {"sft": "sft", "dpo": "dpo", "kto": "kto", "reward": "reward", "orpo": "orpo",
           "simpo": "orpo"}


class Recipe(Protocol):
    def __call__(self, job: TrialJob, progress: Any) -> TrialResult: ...


def _module(stage: str) -> Any:
    if stage not in RECIPES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(RECIPES)}")
    return importlib.import_module(f"tunelab.engine.train.{RECIPES[stage]}")


def trial(stage: str, head: str = "lm") -> Recipe:
    """The function that runs one trial of this stage (a supervised classifier's: classify)."""
    module = "classify" if stage == "sft" and head == "classification" else None
    found: Recipe = (importlib.import_module(f"tunelab.engine.train.{module}") if module
                     else _module(stage)).run_trial
    return found


def baseline(stage: str) -> Recipe:
    """The function that measures a preference stage's baseline: its parent trial, measured as
    its trials will be (an sft stage's baseline is the runner's: engine.run.baseline)."""
    found: Recipe = _module(stage).run_baseline
    return found
