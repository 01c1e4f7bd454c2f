"""What a run hands around: each trial's outcome, the run's summary, and the state the workers
of one sweep share (what it tells its reporter: engine.run.events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from tunelab.engine.data import preferences
from tunelab.engine.data import prepare as data_prep
from tunelab.engine.run.jobs import TrialResult

# what trials read: a supervised stage's splits, or a dpo stage's pairs and its parent's splits
Prepared = data_prep.PreparedData | preferences.PreferenceData
P = TypeVar("P", data_prep.PreparedData, preferences.PreferenceData)

MAX_FAILURES_IN_A_ROW = 3


@dataclass
class TrialOutcome:
    number: int
    params: dict[str, Any]
    result: TrialResult
    duration_s: float


@dataclass
class RunSummary:
    experiment: str
    trials: list[TrialOutcome] = field(default_factory=list)
    baseline: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepState:
    """What the workers of one sweep share, under the runner's lock."""

    study: Any  # optuna.Study
    base: str
    prepared: Prepared
    target: int  # finished (complete or pruned) trials to reach
    started: float  # time.monotonic() at the start, for search.timeout
    summary: RunSummary
    failures: int = 0  # failed trials in a row
    timed_out: bool = False
    error: BaseException | None = None  # the first that stops the sweep, raised at its end


def done_states() -> tuple[Any, ...]:
    """Finished trials: complete or pruned (optuna is imported when a sweep starts, not before:
    the CLI imports this module to answer fast)."""
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
