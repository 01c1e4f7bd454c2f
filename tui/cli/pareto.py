"""The Pareto front of a study with several objectives: pure functions, no store, no UI. The
end of `tunelab run`, `tunelab trials` and the TUI's compare screen read the front from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tunelab.engine import objectives
from tunelab.engine.refs import ModelRef


def front(points: Mapping[int, Sequence[float | None]], directions: Sequence[str]) -> set[int]:
    """The trials (by number) that no other trial beats on every objective at once.

    `points` holds each trial's values, one per objective in the order of `directions`
    (`minimize` / `maximize`); a trial with a missing value is not on the front.
    """
    complete = {n: [v for v in row if v is not None] for n, row in points.items()}
    costs = {n: [objectives.as_minimized(v, d) for v, d in zip(row, directions, strict=False)]
             for n, row in complete.items() if len(row) == len(points[n])}

    def dominated(p: list[float]) -> bool:
        return any(all(a <= b for a, b in zip(q, p, strict=False)) and q != p
                   for q in costs.values())

    return {n for n, p in costs.items() if not dominated(p)}


def objective_values(names: Sequence[str], trials: Sequence[Any],
                     evaluations: Mapping[str, Mapping[str, float]],
                     costs: Mapping[int, float | None], stage: str,
                     ) -> dict[str, dict[int, float | None]]:
    """Each objective's value of each trial (a store's TrialRecord or TrialOverview), by trial
    number: the first objective is the trial's value; cost and duration_s are the trial's; any
    other is read from its evaluations where the objective's metric is ("general/forgetting")."""
    found: dict[str, dict[int, float | None]] = {}
    for n, objective in enumerate(names):
        values: dict[int, float | None] = {}
        for t in trials:
            if n == 0:
                values[t.number] = t.value
            elif objective == "cost":
                values[t.number] = costs.get(t.number)
            elif objective == "duration_s":
                values[t.number] = t.duration_s
            else:
                key = objectives.metric_key(objective, stage)
                values[t.number] = evaluations.get(str(ModelRef.trial(t.number)), {}).get(key)
        found[objective] = values
    return found
