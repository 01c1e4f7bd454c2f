"""When a reviewer may stop voting, and what is left if not: the voting screen's status line.

"You may stop" when every neighbouring pair of the rank order is either ranked apart by the
rank rule (`ranks`), or too close to matter at this budget: even if their difference were one
standard error larger than the votes show, ranking the two apart would take more votes than
the items left for this rater. Otherwise the line says which pair is closest and about how many
more votes would rank it apart at its difference now. Votes needed: the rank rule's score
statistic S of the pair grows with the information on its difference if the votes keep going
the way they went (a vote between the two adds ¼ at equal strengths), so m more votes give
S · (I + m/4) / I; the pair is ranked apart once that passes z², the square of the normal
quantile at the level Holm would test it at. One standard error more is √S + 1 on that scale.

In a preference sweep, while the search waits on trials, the stop is never offered: the line
says which trial waits and how many of its items are left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

from tunelab.engine import format as fmt
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


def _needed(z_now: float, information: float, z: float) -> float:
    """More votes between two models until a score z of `z_now` (on `information` so far)
    reaches `z`, the votes going on as they went."""
    if z_now < 1e-6:
        return math.inf
    return max(0.0, math.ceil(4 * information * (z * z / (z_now * z_now) - 1)))


def pending(ranking: Ranking, left: int) -> list[Pending]:
    """The neighbouring pairs not ranked apart, closest (most votes needed) first."""
    out = []
    for group in ranking.groups:
        index = {m: k for k, m in enumerate(group.outcomes.models)}
        even = bt.covariance(bt.information(group.outcomes, 0 * group.strength))
        z = NormalDist().inv_cdf(1 - group.level() / 2)
        for a, b in zip(group.models, group.models[1:], strict=False):
            if ranking.separated(a, b):
                continue
            i, j = index[a], index[b]
            information = 1 / max(float(even[i, i] + even[j, j] - 2 * even[i, j]), 1e-9)
            z_now = math.sqrt(ranking.tests[frozenset((a, b))].statistic)
            fewest = _needed(z_now + 1, information, z)
            out.append(Pending(a, b, _needed(z_now, information, z), fewest, fewest > left))
    return sorted(out, key=lambda p: (-p.more, p.high, p.low))


def advise(ranking: Ranking, left: int, waiting: Mapping[str, int] | None = None) -> Advice:
    """What the voting screen says: `left` the items this rater has not voted on; `waiting`
    the models a preference sweep waits on, with their items left for this rater."""
    waits = {m: n for m, n in (waiting or {}).items() if n > 0}
    if waits:
        if len(waits) == 1:
            (model, n), = waits.items()
            named = f"{model} ({fmt.counted(n, 'item')})"
        else:  # one line at 80 columns however many trials wait: the voting screen's status
            named = f"{len(waits)} trials ({fmt.counted(sum(waits.values()), 'item')})"
        return Advice(False, f"the sweep waits on your votes for {named}: keep voting")
    if len(ranking.groups) > 1:
        a, b = ranking.in_doubt()[-1]
        return Advice(False, f"no vote links {a}'s group with {b}'s yet: vote on both")
    found = pending(ranking, left)
    if not found:
        if ranking.settled():
            return Advice(True, "ranks settled: every neighbouring pair is ranked apart; "
                          "you may stop (q)")
        return Advice(False, "")
    if all(p.too_close for p in found):
        closest = found[0]
        if left == 0:
            return Advice(True, f"every item voted: {closest.high}–{closest.low} not ranked "
                          f"apart (≥ {closest.fewest:.0f} more votes would be needed)", tuple(found))
        return Advice(True, f"you may stop (q): {closest.high}–{closest.low} too close for the "
                      f"{left} items left (≥ {closest.fewest:.0f} more votes)", tuple(found))
    closest = next(p for p in found if not p.too_close)
    rest = f"; {len(found)} pairs in doubt" if len(found) > 1 else ""
    return Advice(False, f"{closest.high}–{closest.low} closest: {_votes(closest.more)} to rank "
                  f"apart{rest}", tuple(found))


def _votes(more: float) -> str:
    if math.isinf(more):
        return "more votes than any review holds"
    return f"~{more:.0f} more vote{'s' if more != 1 else ''}"
