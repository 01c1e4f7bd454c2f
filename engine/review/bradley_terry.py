"""Bradley–Terry ratings of the models of a review, with 95 % intervals, and only where the
votes define them.

P(i beats j) = 1 / (1 + exp(θj − θi)), on an Elo-like scale (400 / ln 10 per logit). The
ratings are fitted separately in each connected group of the comparison graph: models that no
chain of votes links have no rating difference, so each group is rated and ranked alone.
Inside a group, the maximum-likelihood ratings are finite only on a strongly connected part of
the win graph (see `graph`). One such part is fitted and centred at 1000, chosen by the shape
of the votes, never by the models' names: a part with decisive votes inside, then the most
models, the most votes inside, and the most models below it. Every other model of the group
won (or lost) every vote against the models on the other side of its part, so it has only a
bound (see `intervals`).

Ranks are not read off these intervals: they come from tests of the differences (`ranks`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunelab.engine import format as fmt
from tunelab.engine.review import fit as bt
from tunelab.engine.review import graph, intervals, ranks
from tunelab.engine.review.intervals import ELO, elo_gap
from tunelab.engine.review.votes import Vote, outcomes, wilson

__all__ = ["Rating", "bradley_terry", "elo", "elo_gap", "ratings"]

Outcome = tuple[str, str, float]


@dataclass(frozen=True)
class Rating:
    model: str
    # The fitted rating; for a model without a finite one (above / below a part), its bound
    # (the lowest rating its wins allow, or the highest its losses do), None when it has none;
    # None too while the model's part has no decisive votes
    rating: float | None
    low: float  # the 95 % interval; -inf / inf where the votes set no bound on that side
    high: float
    rank: int  # the best rank the rank rule allows (1 + the models ranked apart above it)
    votes: int  # counted verdicts
    group: int = 1  # the connected group of the comparison graph (1: the most models)
    above: tuple[str, ...] = ()  # no finite rating: it won or tied every vote against these
    below: tuple[str, ...] = ()  # … and lost every vote against these
    undecided: bool = False  # its part has votes, but none decisive: ties only
    record: str = ""  # "won every vote" | "lost every vote" | ""
    rank_worst: int = 0  # the worst rank allowed (the group's size − those ranked apart below)
    decisive: int = 0  # counted verdicts that were a win or a loss
    method: str = ""  # the interval's: bootstrap | profile (likelihood) | pooled (a bound) | ""
    pooled: int = 0  # a bound: the votes across its cut that it pools
    cut: int = 0  # no finite rating: the votes between its part and the models outside it

    @property
    def open_side(self) -> str | None:
        """'above' when the rating has no upper bound, 'below' when none below, else None."""
        if self.undecided or not (self.above or self.below):
            return None
        return "above" if not self.below else "below" if not self.above else "both"

    @property
    def finite(self) -> bool:
        """A fitted rating with an interval (else a bound, or nothing decisive yet)."""
        return self.rating is not None and not (self.above or self.below or self.undecided)

    @property
    def ranks(self) -> tuple[int, int]:
        return self.rank, self.rank_worst or self.rank

    def interval(self, sep: str = "–") -> str:
        """The 95 % interval as short text ("940–1060"), or what stands instead of one."""
        if self.undecided:
            return "ties only"
        if self.above or self.below:
            if math.isfinite(self.low) and math.isfinite(self.high):
                return f"{fmt.points(self.low)}{sep}{fmt.points(self.high)}"
            if self.rating is not None:  # the bound is the rating column ("≥ 1143")
                return "no upper bound" if self.open_side == "above" else "no lower bound"
            return self.record or "no bound yet"
        low = fmt.points(self.low) if math.isfinite(self.low) else "no bound"
        high = fmt.points(self.high) if math.isfinite(self.high) else "no bound"
        return f"{low}{sep}{high}"


def bradley_terry(found: Sequence[Outcome], models: Sequence[str],
                  ridge: float = 1e-4) -> np.ndarray:
    """Maximum-likelihood strengths (logits, mean zero); a tie is half a win each way. The
    default tiny ridge keeps a fit finite where the win graph is not strongly connected."""
    return bt.fit(bt.outcomes_of(found, models), prior=ridge)


def elo(theta: np.ndarray) -> np.ndarray:
    return 1000 + theta * ELO


def ratings(votes: Sequence[Vote], bootstrap: int = 1000, seed: int = 0,
            ties: str = "half") -> list[Rating]:
    """Ratings per connected group of the comparison graph (see the module docstring), each
    group listed in the rank rule's order. `bootstrap`: the resamples of a bootstrap interval;
    0 gives profile-likelihood intervals throughout."""
    found = outcomes(votes, ties)
    ranking = ranks.rank(votes, ties)
    out: list[Rating] = []
    for number, group in enumerate(ranking.groups, 1):
        members = set(group.models)
        out += _rate_group(list(group.models), [o for o in found if o[0] in members], ranking,
                           bootstrap, seed, number)
    return out


def reference_part(parts: list[list[str]], found: Sequence[Outcome]) -> list[str] | None:
    """The part fitted to a finite scale: by the shape of the votes (see the docstring); names
    decide only between parts the votes cannot tell apart at all."""
    edges = intervals.beats(found)

    def shape(part: list[str]) -> tuple[bool, int, int, int, list[str]]:
        inside = [s for a, b, s in found if a in part and b in part]
        return (any(s != 0.5 for s in inside), len(part), len(inside),
                len(graph.reachable(set(part), edges)), sorted(part))

    return max((p for p in parts if len(p) > 1), key=shape, default=None)


def _rate_group(models: list[str], found: list[Outcome], ranking: ranks.Ranking, bootstrap: int,
                seed: int, number: int) -> list[Rating]:
    edges = intervals.beats(found)
    parts = graph.win_parts(models, edges)
    counts: dict[str, int] = defaultdict(int)
    scored: dict[str, float] = defaultdict(float)
    for a, b, score in found:
        counts[a], counts[b] = counts[a] + 1, counts[b] + 1
        scored[a], scored[b] = scored[a] + score, scored[b] + 1 - score
    reference = reference_part(parts, found)
    point: dict[str, float] = {}
    low = {m: -math.inf for m in models}
    high = {m: math.inf for m in models}
    undecided: set[str] = set()
    method = ""
    if reference is not None:
        kept = [o for o in found if o[0] in reference and o[1] in reference]
        if all(score == 0.5 for _, _, score in kept):  # ties only: equal, but not known equal
            undecided = set(reference)
        else:
            point, method = _fit_part(reference, kept, low, high, bootstrap, seed)
    pooled = _bounds(models, parts, found, edges, point, low, high)
    out = []
    for m in models:
        part = next(p for p in parts if m in p)
        above: tuple[str, ...] = ()
        below: tuple[str, ...] = ()
        if m not in point and m not in undecided:
            above = tuple(sorted(graph.reachable(set(part), edges)))
            below = tuple(sorted(graph.reachable(set(part), {(b, a) for a, b in edges})))
        value = point.get(m)
        if above and not below and math.isfinite(low[m]):
            value = low[m]
        elif below and not above and math.isfinite(high[m]):
            value = high[m]
        record = ("won every vote" if scored[m] == counts[m] else
                  "lost every vote" if scored[m] == 0 else "")
        best, worst = ranking.ranks[m]
        cut = sum(1 for a, b, _ in found if (a in part) != (b in part)) if above or below else 0
        out.append(Rating(m, value, low[m], high[m], best, counts[m], number, above, below,
                          m in undecided, record, worst, intervals.decisive(found, m),
                          method if m in point else "pooled" if m in pooled else "",
                          pooled.get(m, 0), cut))
    return out


def _fit_part(part: list[str], kept: list[Outcome], low: dict[str, float],
              high: dict[str, float], bootstrap: int, seed: int) -> tuple[dict[str, float], str]:
    """The part's ratings (centred at 1000) and their intervals, in place; returns the ratings
    and how the intervals were found."""
    o = bt.outcomes_of(kept, part)
    theta = bt.fit(o)
    values = elo(theta)
    enough = bootstrap > 0 and min(intervals.decisive(kept, m) for m in part) \
        >= intervals.MIN_BOOTSTRAP
    lows, highs = (intervals.bootstrap(o, values, bootstrap, seed) if enough
                   else intervals.profile(o, theta))
    for k, m in enumerate(part):
        low[m], high[m] = lows[k], highs[k]
    return {m: float(values[k]) for k, m in enumerate(part)}, "bootstrap" if enough else "profile"


def _bounds(models: list[str], parts: list[list[str]], found: list[Outcome],
            edges: set[tuple[str, str]], point: dict[str, float], low: dict[str, float],
            high: dict[str, float]) -> dict[str, int]:
    """The bounds of the models outside the fitted part, in place; returns the votes each
    bound pools. Two models alone, one of which won every vote: nothing anchors the scale, so
    the pair is centred at 1000, the winner at least half the gap its wins allow above it."""
    if not point and len(models) == 2 and len(edges) == 1:
        (winner, loser), = edges
        n = len(found)
        gap = elo_gap(wilson(n, n)[0])
        if gap > 0:  # else one or three votes: who won, not by how much
            low[winner], high[loser] = 1000 + gap / 2, 1000 - gap / 2
            return {winner: n, loser: n}
        return {}
    return intervals.pooled_bounds(parts, found, point, low, high)
