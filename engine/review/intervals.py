"""The 95 % intervals shown beside the ratings (for display: ranks come from `ranks`), and the
bounds of the models that have no finite rating.

- Inside the fitted part, each model's interval is a percentile bootstrap when every model of
  the part has at least MIN_BOOTSTRAP decisive verdicts. Below that a bootstrap has too few
  distinct draws (1 win and 1 tie resample to "won every vote" a quarter of the time, an open
  bound), so the interval is the profile likelihood's: the ratings where twice the drop in
  log-likelihood from the best fit reaches χ²₁(95 %).
- A part of the win graph outside the fitted one won (or lost) every vote against the models on
  the other side of it. Its bound pools every vote across that cut: n of n wins give the Wilson
  lower bound of the share, as an Elo gap above the vote-weighted mean rating of the models it
  beat (their ratings, or their own bounds down a chain). The bound exists only when that share
  excludes one half (four unanimous votes or more): fewer say who won, not by how much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tunelab.engine.review import fit as bt
from tunelab.engine.review import graph
from tunelab.engine.review.votes import wilson

MIN_BOOTSTRAP = 10  # decisive verdicts per model before the interval is a bootstrap's
ELO = 400 / math.log(10)  # rating points per logit
BIG = 1e12  # an open bound, in the bootstrap arrays (percentiles of ±inf give NaN)

Outcome = tuple[str, str, float]


def elo_gap(share: float) -> float:
    """The rating difference at which the stronger model wins this share of votes."""
    share = min(max(share, 1e-12), 1 - 1e-12)
    return 400 * math.log10(share / (1 - share))


def beats(found: Sequence[Outcome]) -> set[tuple[str, str]]:
    """The win graph: (a, b) when a won or tied a vote against b."""
    edges = set()
    for a, b, score in found:
        if score > 0:
            edges.add((a, b))
        if score < 1:
            edges.add((b, a))
    return edges


def decisive(found: Sequence[Outcome], model: str) -> int:
    return sum(1 for a, b, s in found if model in (a, b) and s in (0.0, 1.0))


def profile(o: bt.Outcomes, theta: np.ndarray) -> tuple[list[float], list[float]]:
    """Profile-likelihood 95 % intervals of each model's strength over the part's mean, as
    ratings (1000 = that mean)."""
    lows, highs = [], []
    for k in range(len(o.models)):
        low, high = bt.profile_interval(o, theta, k)
        lows.append(1000 + low * ELO)
        highs.append(1000 + high * ELO)
    return lows, highs


def bootstrap(o: bt.Outcomes, values: np.ndarray, draws: int,
              seed: int) -> tuple[list[float], list[float]]:
    """Percentile 95 % intervals from refits on the votes resampled with replacement (a
    multinomial draw of how often each kind of outcome occurs is the same resample). A draw
    whose win graph is not strongly connected has no finite fit: its largest strongly connected
    part is refitted and aligned with the point ratings, the models above it count as +inf,
    those below as −inf, and those it cannot place as open on both sides."""
    rng = np.random.default_rng(seed)
    total = float(o.w.sum())
    share = o.w / total
    lows = np.empty((draws, len(o.models)))
    highs = np.empty((draws, len(o.models)))
    for d in range(draws):
        counts = rng.multinomial(int(total), share).astype(float)
        drawn = bt.Outcomes(o.models, o.i, o.j, o.s, counts)
        edges = beats([(o.models[a], o.models[b], s)
                       for a, b, s, c in zip(o.i, o.j, o.s, counts, strict=True) if c > 0])
        parts = graph.win_parts(list(o.models), edges)
        if len(parts) == 1:
            lows[d] = highs[d] = 1000 + bt.fit(drawn) * ELO
            continue
        lows[d], highs[d] = _degenerate(drawn, parts, edges, values)
    low = np.percentile(lows, 2.5, axis=0)
    high = np.percentile(highs, 97.5, axis=0)
    return [_open(x) for x in low], [_open(x) for x in high]


def _degenerate(o: bt.Outcomes, parts: list[list[str]], edges: set[tuple[str, str]],
                values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One bootstrap draw without a finite fit: (values for the lower bound, for the upper)."""
    index = {m: k for k, m in enumerate(o.models)}
    row_low = np.full(len(o.models), -BIG)  # not placed: no bound either way
    row_high = np.full(len(o.models), BIG)
    sizes = sorted((len(p) for p in parts), reverse=True)
    if sizes[0] > sizes[1]:  # one largest part: refitted, aligned with the point ratings
        main = max(parts, key=len)
        keep = [index[m] for m in main]
        inside = np.isin(o.i, keep) & np.isin(o.j, keep) & (o.w > 0)
        at = {k: n for n, k in enumerate(keep)}
        sub = bt.Outcomes(tuple(main), np.array([at[k] for k in o.i[inside]], dtype=int),
                          np.array([at[k] for k in o.j[inside]], dtype=int), o.s[inside],
                          o.w[inside])
        fitted = 1000 + bt.fit(sub) * ELO
        fitted += np.mean(values[keep]) - fitted.mean()
        row_low[keep] = row_high[keep] = fitted
        above = graph.reachable(set(main), {(b, a) for a, b in edges})
        below = graph.reachable(set(main), edges)
    else:  # no part to anchor the scale: a part that only won is above, one that only lost below
        wins = {a for a, b in edges if not any(a in p and b in p for p in parts)}
        losses = {b for a, b in edges if not any(a in p and b in p for p in parts)}
        above = {m for p in parts if set(p) <= wins - losses for m in p}
        below = {m for p in parts if set(p) <= losses - wins for m in p}
    for m in above:
        row_low[index[m]] = row_high[index[m]] = BIG
    for m in below:
        row_low[index[m]] = row_high[index[m]] = -BIG
    return row_low, row_high


def _open(x: float) -> float:
    """A percentile that touched an open bound is open (no rating is a million points away)."""
    return math.inf if x > 1e6 else -math.inf if x < -1e6 else float(x)


def pooled_bounds(parts: list[list[str]], found: Sequence[Outcome], point: dict[str, float],
                  low: dict[str, float], high: dict[str, float]) -> dict[str, int]:
    """The bounds of the models outside the fitted part, in place (see the module docstring);
    returns the votes each bound pools. `point` holds the fitted ratings; a bound is never on
    the wrong side of a model it won (or lost) every vote against, so it is at least the
    highest rating among those (at most the lowest)."""
    part_of = {m: k for k, p in enumerate(parts) for m in p}
    pooled: dict[str, int] = {}
    for _ in range(len(parts)):  # a chain of parts is at most this long
        changed = False
        for k, part in enumerate(parts):
            if all(m in point for m in part):
                continue
            for side, bound in ((1, low), (-1, high)):
                found_bound = _cut_bound(k, side, part_of, found, point, bound)
                if found_bound is None or bound[part[0]] == found_bound[0]:
                    continue
                for m in part:
                    bound[m] = found_bound[0]
                    pooled[m] = max(pooled.get(m, 0), found_bound[1])
                changed = True
        if not changed:
            break
    return pooled


def _cut_bound(part: int, side: int, part_of: dict[str, int], found: Sequence[Outcome],
               point: dict[str, float], bounds: dict[str, float]) -> tuple[float, int] | None:
    """The part's lower bound (side 1: from the votes it won across the cut) or upper bound
    (side −1: from those it lost), with the votes it pools; None when the votes give none."""
    weighted, anchors = 0.0, []
    for a, b, score in found:
        if (part_of[a] == part) == (part_of[b] == part):
            continue  # inside the part, or elsewhere
        other, mine_scored = (b, score) if part_of[a] == part else (a, 1 - score)
        # across a cut every vote went one way (a tie would join the two parts)
        if (mine_scored == 1.0) != (side > 0):
            continue
        anchor = point.get(other, bounds[other])
        if math.isfinite(anchor):
            weighted += anchor
            anchors.append(anchor)
    n = len(anchors)
    if n == 0:
        return None
    gap = elo_gap(wilson(n, n)[0])
    if gap <= 0:
        return None
    if side > 0:
        return max(weighted / n + gap, max(anchors)), n
    return min(weighted / n - gap, min(anchors)), n
