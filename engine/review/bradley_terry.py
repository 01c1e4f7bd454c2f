"""Bradley–Terry ratings of the models of a review, with bootstrap 95 % intervals, and only
where the votes define them.

P(i beats j) = 1 / (1 + exp(θj − θi)), on an Elo-like scale (400 / ln 10 per logit). The
ratings are fitted separately in each connected group of the comparison graph: models that no
chain of votes links have no rating difference, so each group is centred and ranked alone.
Inside a group, the maximum-likelihood ratings are finite only on a strongly connected part of
the win graph (see `graph`). The largest such part is fitted and centred at 1000; every other
model of the group won (or lost) every vote against some models, so it has only a bound:
"above every model of …", with the lowest rating its wins allow at 95 % (the Wilson bound of
its win share against each beaten model, as an Elo gap, added to that model's lower bound).
Ranks separate two models only when their intervals do not overlap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunelab.engine.review import graph
from tunelab.engine.review.votes import Vote, outcomes, wilson

BIG = 1e12  # an open bound, in the bootstrap arrays (percentiles of ±inf give NaN)


@dataclass(frozen=True)
class Rating:
    model: str
    # The fitted rating; for a model without a finite one (above / below set), its bound (the
    # lowest rating its wins allow, or the highest its losses do), None when it has none;
    # None too while the model's part has no decisive votes
    rating: float | None
    low: float  # the 95 % interval; -inf / inf where the votes set no bound on that side
    high: float
    rank: int  # 1 + the models of its group whose interval lies wholly above this one's
    votes: int
    group: int = 1  # the connected group of the comparison graph (1: the most models)
    above: tuple[str, ...] = ()  # no finite rating: it won or tied every vote against these
    below: tuple[str, ...] = ()  # … and lost every vote against these
    undecided: bool = False  # its part has votes, but none decisive: ties only
    record: str = ""  # "won every vote" | "lost every vote" | ""

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

    def interval(self, sep: str = "–") -> str:
        """The 95 % interval as text ("940–1060"), or the bound or reason there is instead."""
        if self.undecided:
            return "no decisive votes yet"
        if self.above or self.below:
            words = []
            if self.above:
                words.append(self.record if self.record == "won every vote" else
                             f"above every model of {', '.join(self.above)}")
            if self.below:
                words.append(self.record if self.record == "lost every vote" else
                             f"below every model of {', '.join(self.below)}")
            return "; ".join(words)  # the bound itself is the rating column ("≥ 1143")
        low = f"{self.low:.0f}" if math.isfinite(self.low) else "no bound"
        high = f"{self.high:.0f}" if math.isfinite(self.high) else "no bound"
        return f"{low}{sep}{high}"


def bradley_terry(outcomes: Sequence[tuple[str, str, float]], models: Sequence[str],
                  ridge: float = 1e-4, iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood strengths (logits, mean zero) by Newton's method; a tie is half a
    win each way. `ratings` fits only strongly connected win graphs, where the maximum exists,
    with no ridge; the default tiny ridge keeps any other call finite."""
    index = {m: k for k, m in enumerate(models)}
    if not outcomes:
        return np.zeros(len(models))
    i = np.array([index[a] for a, _, _ in outcomes])
    j = np.array([index[b] for _, b, _ in outcomes])
    s = np.array([score for _, _, score in outcomes])
    return _newton(i, j, s, np.ones(len(s)), len(models), ridge, iterations)


def _newton(i: np.ndarray, j: np.ndarray, s: np.ndarray, w: np.ndarray, n: int,
            ridge: float = 1e-4, iterations: int = 100) -> np.ndarray:
    """The fit on outcome kinds (left i, right j, score s) seen w times each."""
    theta = np.zeros(n)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(theta[j] - theta[i]))
        residual = w * (s - p)
        gradient = np.zeros(n)
        np.add.at(gradient, i, residual)
        np.add.at(gradient, j, -residual)
        gradient -= ridge * theta
        weight = w * p * (1 - p)
        hessian = np.zeros((n, n))
        np.add.at(hessian, (i, i), -weight)
        np.add.at(hessian, (j, j), -weight)
        np.add.at(hessian, (i, j), weight)
        np.add.at(hessian, (j, i), weight)
        # strengths are defined up to a constant: the ones-matrix pins the mean at zero and
        # makes the Hessian invertible without changing the step (the gradient sums to zero)
        hessian -= ridge * np.eye(n) + np.ones((n, n)) / n
        step = np.linalg.solve(hessian, gradient)
        longest = np.max(np.abs(step))
        if longest > 4:  # a damped step: far from the optimum a full Newton step can overshoot
            step *= 4 / longest
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta - theta.mean()


def elo(theta: np.ndarray) -> np.ndarray:
    return 1000 + theta * 400 / math.log(10)


def elo_gap(share: float) -> float:
    """The rating difference at which the stronger model wins this share of votes."""
    share = min(max(share, 1e-12), 1 - 1e-12)
    return 400 * math.log10(share / (1 - share))


def _beats(found: Sequence[tuple[str, str, float]]) -> set[tuple[str, str]]:
    edges = set()
    for a, b, score in found:
        if score > 0:
            edges.add((a, b))
        if score < 1:
            edges.add((b, a))
    return edges


def ratings(votes: Sequence[Vote], bootstrap: int = 1000, seed: int = 0,
            ties: str = "half") -> list[Rating]:
    """Ratings per connected group of the comparison graph (see the module docstring), ordered
    by group, then rank, then rating."""
    found = outcomes(votes, ties)
    models = sorted({m for a, b, _ in found for m in (a, b)})
    out: list[Rating] = []
    for number, group in enumerate(graph.comparison_groups(models, [(a, b) for a, b, _ in found]),
                                   1):
        members = set(group)
        out += _rate_group(group, [o for o in found if o[0] in members], bootstrap, seed, number)

    def order(r: Rating) -> tuple[int, int, int, float]:
        tier = {"above": 0, "below": 2}.get(r.open_side or "", 1)
        return r.group, r.rank, tier, -(r.rating if r.rating is not None else 0.0)

    return sorted(out, key=order)


def _rate_group(models: list[str], found: list[tuple[str, str, float]], bootstrap: int,
                seed: int, number: int) -> list[Rating]:
    beats = _beats(found)
    parts = graph.win_parts(models, beats)
    counts: dict[str, int] = defaultdict(int)
    scored: dict[str, float] = defaultdict(float)
    for a, b, score in found:
        counts[a] += 1
        counts[b] += 1
        scored[a] += score
        scored[b] += 1 - score
    # the reference: the largest part that has a finite fit (two models or more)
    inside = {tuple(p): sum(1 for a, b, _ in found if a in p and b in p) for p in parts}
    reference = max((p for p in parts if len(p) > 1), default=None,
                    key=lambda p: (len(p), inside[tuple(p)], p))
    point: dict[str, float | None] = {m: None for m in models}
    low = {m: -math.inf for m in models}
    high = {m: math.inf for m in models}
    undecided: set[str] = set()
    if reference is not None:
        ref = set(reference)
        kept = [o for o in found if o[0] in ref and o[1] in ref]
        if all(score == 0.5 for _, _, score in kept):  # ties only: equal, but not known equal
            undecided = ref
            for m in reference:
                point[m] = None
        else:
            values = elo(bradley_terry(kept, reference, ridge=0))
            lows, highs = _bootstrap(kept, reference, values, bootstrap, seed)
            for k, m in enumerate(reference):
                point[m], low[m], high[m] = float(values[k]), lows[k], highs[k]
    if reference is None and len(models) == 2 and len(beats) == 1:
        # two models, one won every vote: centred on the pair, the winner is at least half the
        # smallest gap its wins allow above 1000, the loser as far below
        (winner, loser), = beats
        gap = elo_gap(wilson(counts[winner], counts[winner])[0])
        low[winner], high[loser] = 1000 + gap / 2, 1000 - gap / 2
    _bounds(models, found, beats, reference, low, high, undecided)
    above: dict[str, tuple[str, ...]] = {}
    below: dict[str, tuple[str, ...]] = {}
    for part in parts:
        if reference is not None and set(part) == set(reference):
            continue
        members = set(part)
        under = graph.reachable(members, beats)
        over = graph.reachable(members, {(b, a) for a, b in beats})
        for m in part:
            above[m], below[m] = tuple(sorted(under)), tuple(sorted(over))
    for m in above:
        if above[m] and not below[m]:
            point[m] = low[m] if math.isfinite(low[m]) else None
        elif below[m] and not above[m]:
            point[m] = high[m] if math.isfinite(high[m]) else None
    out = []
    for m in models:
        rank = 1 + sum(1 for x in models if x != m and low[x] > high[m])
        record = ("won every vote" if scored[m] == counts[m] else
                  "lost every vote" if scored[m] == 0 else "")
        out.append(Rating(m, point[m], low[m], high[m], rank, counts[m], number,
                          above.get(m, ()), below.get(m, ()), m in undecided, record))
    return out


def _bounds(models: list[str], found: list[tuple[str, str, float]], beats: set[tuple[str, str]],
            reference: list[str] | None, low: dict[str, float], high: dict[str, float],
            undecided: set[str]) -> None:
    """The one-sided bounds of the models outside the reference part, in place: a model that
    beat m in every one of n votes is at least m's lower bound plus the Elo gap of the Wilson
    lower bound of n wins in n; the bounds propagate along chains of such wins."""
    ref = set(reference or ()) - undecided
    against: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a, b, score in found:
        against[(a, b)].append(score)
        against[(b, a)].append(1 - score)
    one_way = [(a, b) for a, b in beats if (b, a) not in beats]  # a won every vote against b
    for _ in range(len(models)):  # a chain of one-way wins is at most this long
        changed = False
        for a, b in one_way:
            scores = against[(a, b)]
            gap = elo_gap(wilson(sum(scores), len(scores))[0])
            if a not in ref and math.isfinite(low[b]) and low[b] + gap > low[a]:
                low[a], changed = low[b] + gap, True
            if b not in ref and math.isfinite(high[a]) and high[a] - gap < high[b]:
                high[b], changed = high[a] - gap, True
        if not changed:
            break


def _bootstrap(kept: list[tuple[str, str, float]], models: list[str], values: np.ndarray,
               bootstrap: int, seed: int) -> tuple[list[float], list[float]]:
    """Percentile 95 % intervals from refits on votes resampled with replacement.

    Resampling the votes only changes how often each kind of outcome (left, right, score)
    occurs: a multinomial draw of those counts is the same bootstrap, and each fit costs the
    handful of kinds instead of every vote. A draw whose win graph is not strongly connected
    has no finite fit: its largest strongly connected part is refitted (and aligned with the
    point ratings), the models above that part count as +inf, those below as -inf, and those
    it cannot place as -inf for the lower bound and +inf for the upper. No draws (bootstrap=0,
    point ratings only) give open intervals: nothing is known about the spread, so no rank is
    separated by them."""
    if bootstrap <= 0:
        return [-math.inf] * len(models), [math.inf] * len(models)
    kinds: dict[tuple[str, str, float], int] = defaultdict(int)
    for outcome in kept:
        kinds[outcome] += 1
    keys = list(kinds)
    share = np.array([kinds[k] for k in keys]) / len(kept)
    index = {m: k for k, m in enumerate(models)}
    rng = np.random.default_rng(seed)
    lows = np.empty((bootstrap, len(models)))
    highs = np.empty((bootstrap, len(models)))
    for d in range(bootstrap):
        counts = rng.multinomial(len(kept), share).astype(float)
        drawn = [k for k, c in zip(keys, counts, strict=True) if c > 0]
        parts = graph.win_parts(models, _beats(drawn))
        if len(parts) == 1:
            i = np.array([index[a] for a, _, _ in keys])
            j = np.array([index[b] for _, b, _ in keys])
            s = np.array([score for _, _, score in keys])
            lows[d] = highs[d] = elo(_newton(i, j, s, counts, len(models), ridge=0))
            continue
        lows[d], highs[d] = _degenerate(parts, drawn, keys, counts, models, values)
    low = np.percentile(lows, 2.5, axis=0)
    high = np.percentile(highs, 97.5, axis=0)
    return [_open(x) for x in low], [_open(x) for x in high]


def _degenerate(parts: list[list[str]], drawn: list[tuple[str, str, float]],
                keys: list[tuple[str, str, float]], counts: np.ndarray, models: list[str],
                values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One bootstrap draw without a finite fit: (values for the lower bound, for the upper)."""
    index = {m: k for k, m in enumerate(models)}
    row_low = np.full(len(models), -BIG)  # not placed: no bound either way
    row_high = np.full(len(models), BIG)
    edges = _beats(drawn)
    sizes = sorted((len(p) for p in parts), reverse=True)
    if sizes[0] > sizes[1]:  # one largest part: refitted, aligned with the point ratings
        main = max(parts, key=len)
        at = {m: k for k, m in enumerate(main)}
        inside = [(k, c) for k, c in zip(keys, counts, strict=True)
                  if c > 0 and k[0] in at and k[1] in at]
        fitted = elo(_newton(np.array([at[a] for (a, _, _), _ in inside]),
                             np.array([at[b] for (_, b, _), _ in inside]),
                             np.array([sc for (_, _, sc), _ in inside]),
                             np.array([c for _, c in inside]), len(main), ridge=0))
        fitted += np.mean([values[index[m]] for m in main]) - fitted.mean()
        for m in main:
            row_low[index[m]] = row_high[index[m]] = fitted[at[m]]
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
