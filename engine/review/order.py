"""Which item a rater sees next: `adaptive` (the default) or `random`.

`random` is the review's own shuffled order. `adaptive` spends each vote where it teaches the
most, as Chatbot Arena samples its pairs: from the current ratings (refitted every few votes),
it takes the neighbouring models whose ranks are still in doubt (the same rank: intervals that
overlap) and offers an item of the pair whose intervals overlap most; models no vote links yet
come first (a vote between them is the one that makes them comparable at all). Pairs the
ratings already separate get votes only when no pair in doubt has items left. Before the first
fit, the pair with the fewest votes goes first. About one vote in ten is a repeat (an item
shown again with the sides swapped) once its original is judged, so self-consistency is still
measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab.engine.review.bradley_terry import Rating
from tunelab.engine.review.votes import Vote, outcomes

ORDERS = ("adaptive", "random")
REPEAT_SHARE = 0.1
REFIT_EVERY = 10  # votes between two fits of the ratings the voting screen shows in words
PRIOR = 0.05  # a weak Gaussian prior (logits⁻²) of the quick fit: finite for any votes


@dataclass(frozen=True)
class Doubt:
    a: str  # the higher of two neighbours (or two models no vote links yet)
    b: str
    overlap: float  # the shared part of their intervals over the narrower one; inf: unbounded
    votes: int  # verdicts counted between them
    more: int | None  # about how many more votes between them would separate them; None: no
    #                   estimate (an open bound, or no difference seen yet)

    def words(self) -> str:
        if self.more is None:
            return f"{self.a} and {self.b} are not separated yet"
        return f"about {self.more} more votes to separate {self.a} from {self.b}"


def _more(a: Rating, b: Rating, votes: int) -> int | None:
    """Interval widths shrink as 1/√n: the votes at which the half-widths fit in the gap."""
    if not (a.finite and b.finite) or a.rating is None or b.rating is None:
        return None
    gap = abs(a.rating - b.rating)
    half = (a.high - a.low) / 2 + (b.high - b.low) / 2
    if gap < 1e-6 or not math.isfinite(half):
        return None
    return max(1, math.ceil(max(votes, 1) * ((half / gap) ** 2 - 1)))


def doubts(ratings: Sequence[Rating], votes: Sequence[Vote]) -> list[Doubt]:
    """The pairs whose order the votes do not settle yet, the most in doubt first: every pair
    of groups no vote links (their first models), then neighbours of the same rank."""
    between: dict[frozenset[str], int] = {}
    for v in votes:
        if v.choice != "skip":
            key = frozenset((v.left, v.right))
            between[key] = between.get(key, 0) + 1
    out = []
    firsts = [r for k, r in enumerate(ratings) if k == 0 or ratings[k - 1].group != r.group]
    for x, y in zip(firsts, firsts[1:], strict=False):
        out.append(Doubt(x.model, y.model, math.inf, 0, None))
    for x, y in zip(ratings, ratings[1:], strict=False):
        if x.group != y.group or x.low > y.high or y.low > x.high:
            continue  # separated (or not comparable at all: above)
        shared = min(x.high, y.high) - max(x.low, y.low)
        narrower = min(x.high - x.low, y.high - y.low)
        bound = not (x.finite and y.finite)  # only their own votes can move a bound
        overlap = (shared / narrower if math.isfinite(shared) and narrower > 0 and not bound
                   else math.inf)
        n = between.get(frozenset((x.model, y.model)), 0)
        out.append(Doubt(x.model, y.model, overlap, n, _more(x, y, n)))
    return sorted(out, key=lambda d: (-d.overlap, d.votes))


def settled(ratings: Sequence[Rating], found: Sequence[Doubt]) -> bool:
    """Every neighbouring pair separated, in one group: more votes would not change the ranks."""
    return len(ratings) > 1 and not found


def _fit(found: Sequence[tuple[str, str, float]], models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Penalised Bradley–Terry logits and their Fisher information (with the weak prior)."""
    index = {m: k for k, m in enumerate(models)}
    n = len(models)
    i = np.array([index[a] for a, _, _ in found], dtype=int)
    j = np.array([index[b] for _, b, _ in found], dtype=int)
    s = np.array([score for _, _, score in found], dtype=float)
    theta = np.zeros(n)
    info = np.eye(n) * PRIOR
    for _ in range(50):
        p = 1 / (1 + np.exp(theta[j] - theta[i]))
        gradient = -PRIOR * theta
        np.add.at(gradient, i, s - p)
        np.add.at(gradient, j, p - s)
        weight = p * (1 - p)
        info = np.eye(n) * PRIOR
        np.add.at(info, (i, i), weight)
        np.add.at(info, (j, j), weight)
        np.add.at(info, (i, j), -weight)
        np.add.at(info, (j, i), -weight)
        step = np.linalg.solve(info, gradient)
        theta = theta + step
        if np.max(np.abs(step), initial=0) < 1e-8:
            break
    return theta, info


def _spread(theta: np.ndarray, info: np.ndarray, x: int, y: int) -> float:
    """se_x + se_y on the scale centred on the mean, as the ratings are."""
    n = len(theta)
    centre = np.eye(n) - 1 / n
    cov = centre @ np.linalg.inv(info) @ centre
    return float(math.sqrt(max(cov[x, x], 0)) + math.sqrt(max(cov[y, y], 0)))


def _best_pair(votes: Sequence[Vote], models: list[str], target: Doubt,
               pairs: set[frozenset[str]]) -> frozenset[str]:
    """Among the pairs with items left, the one whose next vote narrows the target pair's two
    intervals most: one vote adds p(1 − p) of information along (e_i − e_j) to the quick fit
    (on one centred scale, a vote on any pair can narrow them)."""
    theta, info = _fit(outcomes(votes), models)
    index = {m: k for k, m in enumerate(models)}
    x, y = index[target.a], index[target.b]
    scored = []
    for pair in pairs:
        i, j = (index[m] for m in sorted(pair))
        p = 1 / (1 + math.exp(theta[j] - theta[i]))
        d = np.zeros(len(models))
        d[i], d[j] = 1.0, -1.0
        scored.append((_spread(theta, info + p * (1 - p) * np.outer(d, d), x, y), sorted(pair),
                       pair))
    return min(scored)[2]


def _most_informative(votes: Sequence[Vote], models: list[str],
                      pairs: set[frozenset[str]]) -> frozenset[str]:
    """The pair whose next vote is expected to teach the most: the largest gain in the log
    determinant of the Fisher information, log(1 + p(1 − p) · var(θi − θj)) (greedy
    D-optimal design). A pair far apart (p near 0 or 1) or already well measured teaches
    little; a pair no vote links yet, much."""
    theta, info = _fit(outcomes(votes), models)
    cov = np.linalg.inv(info)
    index = {m: k for k, m in enumerate(models)}
    scored = []
    for pair in pairs:
        i, j = (index[m] for m in sorted(pair))
        p = 1 / (1 + math.exp(theta[j] - theta[i]))
        scored.append((-p * (1 - p) * (cov[i, i] + cov[j, j] - 2 * cov[i, j]), sorted(pair),
                       pair))
    return min(scored)[2]


def choose(items: Sequence[Any], votes: Sequence[Vote], rater: str, order: str = "adaptive",
           steer: Sequence[Doubt] | None = None) -> Any:
    """The next item (a ReviewItem) for `rater`, never one they voted on; None when none is
    left. `items` are the review's items in its shuffled order; `votes` every rater's votes
    (they all inform the ratings); `steer` the doubts of the last fit of the ratings (None:
    not fitted yet)."""
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

    def pair(i: Any) -> frozenset[str]:
        return frozenset((i.model_a, i.model_b))

    counts: dict[frozenset[str], int] = {}
    for v in votes:
        if v.choice != "skip":
            counts[frozenset((v.left, v.right))] = counts.get(frozenset((v.left, v.right)), 0) + 1
    open_pairs = {pair(i) for i in originals}
    # a pair in doubt because of a bound (one won every vote against the other) or because no
    # vote links them moves only with votes between the two: those first
    bounded = [frozenset((d.a, d.b)) for d in steer or () if d.overlap == math.inf]
    wanted = next((p for p in bounded if p in open_pairs), None)
    if wanted is None:
        models = sorted({m for i in items for m in (i.model_a, i.model_b)})
        wanted = _most_informative(votes, models, open_pairs)
    return next(i for i in originals if pair(i) == wanted)
