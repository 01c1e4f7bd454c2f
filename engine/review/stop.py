"""When a reviewer may stop voting, and what is left if not: the voting screen's status line.

"You may stop" when every neighbouring pair of the rank order is either ranked apart by the
rank rule (`ranks`), or too close to matter at this budget: even if their difference were one
standard error larger than the votes show, ranking the two apart would take more votes than
the items left for this rater. Otherwise the line says which pair is closest and about how many
more votes would rank it apart at its difference now. Votes needed: a vote between i and j adds
p(1 − p) to the information on their difference d, and the pair is ranked apart once
d² / var(d) passes the square of the normal quantile at the level Holm would test it at.

In a preference sweep, while the search waits on trials, the stop is never offered: the line
says which trial waits and how many of its items are left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

from tunelab.engine.review import fit as bt
from tunelab.engine.review.ranks import Ranking


@dataclass(frozen=True)
class Pending:
    """A neighbouring pair the rank rule has not ranked apart."""

    high: str
    low: str
    more: float  # votes between them that would rank them apart at the difference now (inf)
    fewest: float  # … were the difference one standard error larger
    too_close: bool  # `fewest` is more than the items left: too close for this budget


@dataclass(frozen=True)
class Advice:
    may_stop: bool
    words: str
    pending: tuple[Pending, ...] = ()


def _needed(gap: float, variance: float, z: float) -> float:
    """Votes between two models `gap` logits apart until gap² / variance ≥ z²."""
    if gap < 1e-9:
        return math.inf
    p = 1 / (1 + math.exp(-gap))
    return max(0.0, math.ceil((z * z / (gap * gap) - 1 / variance) / (p * (1 - p))))


def pending(ranking: Ranking, left: int) -> list[Pending]:
    """The neighbouring pairs not ranked apart, closest (most votes needed) first."""
    out = []
    for group in ranking.groups:
        index = {m: k for k, m in enumerate(group.outcomes.models)}
        sigma = bt.covariance(group.info)
        z = NormalDist().inv_cdf(1 - group.level() / 2)
        for a, b in zip(group.models, group.models[1:], strict=False):
            if ranking.separated(a, b):
                continue
            i, j = index[a], index[b]
            variance = float(sigma[i, i] + sigma[j, j] - 2 * sigma[i, j])
            gap = abs(float(group.strength[i] - group.strength[j]))
            fewest = _needed(gap + math.sqrt(variance), variance, z)
            out.append(Pending(a, b, _needed(gap, variance, z), fewest, fewest > left))
    return sorted(out, key=lambda p: (-p.more, p.high, p.low))


def advise(ranking: Ranking, left: int, waiting: Mapping[str, int] | None = None) -> Advice:
    """What the voting screen says: `left` the items this rater has not voted on; `waiting`
    the models a preference sweep waits on, with their items left for this rater."""
    waits = {m: n for m, n in (waiting or {}).items() if n > 0}
    if waits:
        named = ", ".join(f"{m} ({n} item{'s' if n != 1 else ''} left)"
                          for m, n in sorted(waits.items()))
        return Advice(False, f"the sweep waits on your votes for {named}: keep voting")
    if len(ranking.groups) > 1:
        a, b = ranking.in_doubt()[-1]
        return Advice(False, f"no vote links {a}'s group with {b}'s yet: vote on items of both")
    found = pending(ranking, left)
    if not found:
        if ranking.settled():
            return Advice(True, "ranks settled: every neighbouring pair is ranked apart; "
                          "you may stop (q)")
        return Advice(False, "")
    if all(p.too_close for p in found):
        closest = found[0]
        return Advice(True, f"you may stop (q): {closest.high} and {closest.low} are too close "
                      f"to rank apart with the {left} items left ({_votes(closest.more)} "
                      "between them would do it)", tuple(found))
    closest = next(p for p in found if not p.too_close)
    rest = f"; {len(found)} pairs in doubt" if len(found) > 1 else ""
    return Advice(False, f"{closest.high} and {closest.low} are closest: "
                  f"{_votes(closest.more)} between them to rank them apart{rest}", tuple(found))


def _votes(more: float) -> str:
    if math.isinf(more):
        return "more votes than any review holds"
    return f"about {more:.0f} more vote{'s' if more != 1 else ''}"
