"""Numbers as people read them: 3.2e-4, 4m12s, 0.8M. Used by the CLI, the TUI and `check`."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            return f"{value:.1e}".replace(".0e", "e").replace("e-0", "e-").replace("e+0", "e+")
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def rating(value: float | None) -> str:
    """A rating over the base model, in Elo points: +120, -35 (a preference sweep's objective)."""
    return "—" if value is None or math.isnan(value) else f"{value:+.0f}"


def points(value: float) -> str:
    """A rating on a review's scale (1000 = the average model), in whole points: 1092. The
    leaderboard view rounds the same way."""
    return f"{value:.0f}"


# A preference sweep tells the search each trial's placement: its rating over the base model
# when its votes placed it, fixed from then on. The statistics of its review show another
# number, the current fit of every vote (1000 = the average model): the words say which is which.
PLACED = "placed"


def objective_title(objective: str | None) -> str:
    """The column title of an objective's values: `placed` for a preference sweep's."""
    return PLACED if objective == "preference" else objective or "objective"


def objective_value(objective: str | None, value: float | None) -> str:
    """An objective's value as people read it: a preference sweep's placement as a rating over
    the base (+779), any other objective as a number (0.652)."""
    return rating(value) if objective == "preference" else number(value)


def percent(share: float | None) -> str:
    """0.834 -> 83 %."""
    return "—" if share is None else f"{share:.0%}".replace("%", " %")


def change(value: float | None, base: float | None) -> str:
    """How `value` compares with `base`, in words that read right at any size: `-12 %` and
    `+40 %` between half and double, the ratio beyond (`435× lower` for 0.0115 against 5.00,
    where a percentage would round to -100 %), the difference where no ratio exists (a base
    of 0: `+0.902`)."""
    if value is None or base is None:
        return "—"
    if base == 0 or value == 0 or (value < 0) != (base < 0):
        return "+0" if value == base else ("+" if value > base else "") + number(value - base)
    ratio = value / base
    if 0.5 < ratio < 2:
        share = ratio - 1
        return ("+" if share >= 0 else "-") + percent(abs(share))
    times = ratio if ratio >= 2 else 1 / ratio
    shown = f"{times:.1f}" if times < 10 else count(round(times))
    return f"{shown}× " + ("higher" if ratio >= 2 else "lower")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def count(n: int) -> str:
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def counted(n: int, thing: str, things: str | None = None) -> str:
    """`1 trial`, `2 trials`, `1,200 rows`: a count and its noun, singular for one."""
    return f"{n:,} {thing if n == 1 else things or thing + 's'}"


def param_name(dotted: str) -> str:
    """A short column title for a dotted key: train.learning_rate -> lr, method.kind -> method."""
    short = {"train.learning_rate": "lr", "method.kind": "method", "method.r": "r",
             "train.batch_size": "batch", "train.epochs": "epochs"}
    return short.get(dotted, dotted.split(".")[-1])
