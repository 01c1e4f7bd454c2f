"""The Pareto front of a study with several objectives: pure functions, no store, no UI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tunelab.engine import objectives


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
