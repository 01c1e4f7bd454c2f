"""Which item a rater sees next: `adaptive` (the default) or `random`.

`random` is the review's own shuffled order. `adaptive` asks for the vote that most shrinks the
uncertainty of the comparisons still in doubt. The contrasts that steer it come from the last
ranking (`ranks.Ranking.steering`), in two stages:
- Until the order is settled but for its neighbours: each pair the rank rule has not ranked
  apart with room to spare weighs 1, each pair ranked apart with room to spare weighs
  `ranks.SPARE`, and a pair for each two groups no vote links yet weighs 1.
- Once every pair that is not a neighbour in the ranking is ranked apart with room to spare:
  the bottleneck alone (`ranks.Ranking.bottleneck`), the neighbouring pair in doubt whose p is
  furthest above the level Holm tests it at. The stop waits on that pair; votes on the others
  no longer move it. Simulated (5 models 150 points apart, 30 seeds): 149 votes to rank all
  apart, against 185 with the first stage's weights to the end. Furthest from its own level,
  not the largest Holm-adjusted p: adjusted p-values tie under Holm's running maximum, and the
  tie would go to the pair with the largest p, which may already pass its level (153 against
  143, with the stage begun at "ranked apart").
What the second stage must not do is starve a pair that chance has pulled apart: with equal
models such a pair then keeps its lead. Steered by the fitted order's neighbours from the first
vote, the bottleneck starves the far pairs of that order, which with equal models are the ones
chance pulled apart: 5 equal models were ranked apart in 20 % of reviews. Begun once every far
pair is ranked apart (not with room to spare), it took 143 votes for 5 models, but with 3 equal
models it starved the one far pair, ranked apart by chance, and some pair was ranked apart in
8–13 % of reviews (300 a cell). Asking only the bottleneck among the neighbours in the first
stage too took 131 votes and ranked equal models apart in 5.0–5.3 % of some cells. Begun once
the far pairs are ranked apart with room to spare, which with equal models happens as rarely
as the first stage ever settles a pair, it leaves the false separations as they were.
Among the pairs with items left, it takes the one whose vote most shrinks the weighted sum of
the variances of those contrasts (a greedy A-optimal step): one vote on the pair (i, j) adds
w·d dᵀ to the Fisher information (d = e_i − e_j), and by the Sherman–Morrison formula the
variance of contrast c falls by w (cᵀΣd)² / (1 + w dᵀΣd). Pairs within NEAR of the best gain
count as equally good, and the review's own order picks among them (see NEAR).

A-optimal rather than D-optimal: once the contrasts span every difference (all neighbours in
doubt), the determinant of their covariance is the determinant of the whole information, and
the D-optimal step spreads the votes over every pair as the random order does; the weighted sum
keeps the votes on the pairs in doubt. Simulated (30 seeds, 5 models 150 points apart, pairs
settled at half the level): 183 votes to rank all apart with the D-optimal step, 155 with this
one. Weights rather than in or
out in the first stage: a pair ranked apart by a chance lead and then never asked about again
keeps its lead, so a pair leaves the doubts only with room to spare (`ranks.SETTLED`), and even
then is asked about now and then. The second stage steers by the bottleneck alone: the weighted
sum is on an absolute scale, and once the bottleneck's variance is small the far pairs' small
weights outweigh it and draw the votes away from the pair the stop waits on.

The information is taken at equal strengths (w = ¼ for every vote), so it counts votes and
nothing else. Weighting by the fitted p(1 − p) instead starves the pairs that look lopsided by
chance, and a chance lead that gets no more votes stands. With real gaps that costs little: a
far pair is settled within a few votes, and the next vote between models 150 points apart
carries 0.21 of information against 0.25 at equal strength.

About one vote in ten is a repeat (an item shown again with the sides swapped) once its original
is judged, so self-consistency is still measured. `quick_fit` is the penalised fit (a weak
Gaussian prior keeps it finite for any votes) that a preference sweep places its trials by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunelab.engine.review import fit as bt
from tunelab.engine.review.ranks import PRIOR
from tunelab.engine.review.votes import REPEAT_SHARE, Vote, outcomes

ORDERS = ("adaptive", "random")

Pair = tuple[str, str]
Weighted = tuple[str, str, float]  # a contrast that steers the order, and its weight
# pairs whose gain is within this share of the best count as equally good, and the review's own
# order picks among them: without it the order fills the pairs in turn, every pair of equal
# models had exactly as many votes at 50 of them (5 models), and the rank rule ranked some pair
# apart in 6.6 % of 1,000 such reviews (4.3 % of 600 with it; 3.7 % of 600 in the random order)
NEAR = 0.1
EVEN = 0.25  # a vote's information at equal strengths, p(1 − p) at p = ½


def quick_fit(votes: Sequence[Vote], models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Penalised Bradley–Terry strengths of `models` and their Fisher information (with the
    prior, so it is invertible)."""
    o = bt.outcomes_of(outcomes(votes), models)
    theta = bt.fit(o, prior=PRIOR)
    return theta, bt.information(o, theta) + PRIOR * np.eye(len(models))


def neighbours(models: list[str], theta: np.ndarray) -> list[Pair]:
    """Each pair next to each other in the order of the quick fit."""
    ranked = [models[k] for k in np.argsort(-theta, kind="stable")]
    return list(zip(ranked, ranked[1:], strict=False))


def design_information(votes: Sequence[Vote], models: list[str]) -> np.ndarray:
    """The Fisher information at equal strengths (each counted vote adds ¼ d dᵀ), with the
    prior: the votes' counts, not their outcomes (see the docstring)."""
    o = bt.outcomes_of(outcomes(votes), models)
    return bt.information(o, np.zeros(len(models))) + PRIOR * np.eye(len(models))


def gains(info: np.ndarray, models: list[str], steer: Sequence[Weighted],
          pairs: Sequence[Pair]) -> np.ndarray:
    """For each candidate pair, how much one vote on it shrinks the weighted sum of the
    variances of the contrasts that steer the order: ¼ Σ ωk (ckᵀΣd)² / (1 + ¼ dᵀΣd) (see the
    module docstring)."""
    index = {m: k for k, m in enumerate(models)}
    sigma = np.linalg.inv(info)
    c, d = np.zeros((len(steer), len(models))), np.zeros((len(pairs), len(models)))
    for row, (a, b, _) in enumerate(steer):
        c[row, index[a]], c[row, index[b]] = 1.0, -1.0
    for row, (a, b) in enumerate(pairs):
        d[row, index[a]], d[row, index[b]] = 1.0, -1.0
    weight = np.array([w for _, _, w in steer])
    u = c @ sigma @ d.T  # row k, column p: the covariance of contrast k with pair p
    own = np.einsum("pn,nm,pm->p", d, sigma, d)
    return EVEN * (weight[:, None] * u * u).sum(axis=0) / (1 + EVEN * own)


def choose(items: Sequence[Any], votes: Sequence[Vote], rater: str, order: str = "adaptive",
           steer: Sequence[Weighted] | None = None) -> Any:
    """The next item (a ReviewItem) for `rater`, never one they voted on; None when none is
    left. `items` are the review's items in its shuffled order; `votes` every rater's votes
    (they all count); `steer` the weighted contrasts of the last ranking
    (`ranks.Ranking.steering`; None: not ranked yet, every pair weighs 1)."""
    mine = {v.item for v in votes if v.rater == rater}
    left = [i for i in items if i.item not in mine]
    if order == "random" or not left:
        return left[0] if left else None
    originals = [i for i in left if i.repeat_of is None]
    due = [i for i in left if i.repeat_of is not None and i.repeat_of in mine]
    repeats_done = sum(1 for i in items if i.repeat_of is not None and i.item in mine)
    if due and (not originals or repeats_done < REPEAT_SHARE * len(mine)):
        return due[0]
    if not originals:
        return left[0]
    models = sorted({m for i in items for m in (i.model_a, i.model_b)})
    known = set(models)
    weighted = [(a, b, w) for a, b, w in steer or () if {a, b} <= known] or \
        [(a, b, 1.0) for k, a in enumerate(models) for b in models[k + 1:]]
    first: dict[Pair, tuple[int, Any]] = {}  # each pair's first item in the review's order
    for k, i in enumerate(originals):
        first.setdefault((min(i.model_a, i.model_b), max(i.model_a, i.model_b)), (k, i))
    pairs = sorted(first)
    scored = gains(design_information(votes, models), models, weighted, pairs)
    near = [p for p, g in zip(pairs, scored, strict=True) if g >= (1 - NEAR) * max(scored)]
    return min(first[p] for p in near)[1] if near else first[pairs[0]][1]
