"""Statistics of blind A/B votes: plain functions, checked against hand computations.

A vote compares the model shown on the left with the one on the right: `a` (left better),
`b` (right better), `tie`, `both_bad` or `skip`. Ties and both-bad count as half a win each
way in the ratings; skips count nowhere. Intervals are 95 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
DECISIVE = {"a", "b"}
HALF = {"tie", "both_bad"}


@dataclass(frozen=True)
class Vote:
    item: int
    rater: str
    choice: str  # a | b | tie | both_bad | skip
    left: str  # the model ref shown as A
    right: str  # the model ref shown as B
    repeat_of: int | None = None  # the item this one repeats with sides swapped


@dataclass(frozen=True)
class PairRecord:
    model: str
    other: str
    wins: int
    ties: int
    losses: int
    win_rate: float  # ties count half
    low: float
    high: float


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float  # Elo-like scale: 400 / ln 10 per logit, mean 1000
    low: float
    high: float
    rank: int  # 1 + the number of models whose interval lies wholly above this one's
    votes: int
    # "above" when the model won every vote it was in, "below" when it won none (no ties):
    # the likelihood then has no maximum on that side, and the rating and its interval are
    # where the tiny ridge stops them. Only the other bound means something.
    open_side: str | None = None

    def interval(self, sep: str = "–") -> str:
        """The 95 % interval as text ("940–1060"), or why there is none."""
        if self.open_side is not None:
            return "won every vote" if self.open_side == "above" else "lost every vote"
        return f"{self.low:.0f}{sep}{self.high:.0f}"


@dataclass(frozen=True)
class PositionBias:
    decisive: int
    left_wins: int
    share_left: float
    p_value: float  # two-sided binomial test against 0.5


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may be fractional: ties count half)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _outcomes(votes: Sequence[Vote]) -> list[tuple[str, str, float]]:
    """(left, right, score of left) for every vote that counts."""
    found = []
    for v in votes:
        if v.choice == "a":
            found.append((v.left, v.right, 1.0))
        elif v.choice == "b":
            found.append((v.left, v.right, 0.0))
        elif v.choice in HALF:
            found.append((v.left, v.right, 0.5))
    return found


def pairwise(votes: Sequence[Vote]) -> list[PairRecord]:
    """Win/tie/loss counts and the win rate with a Wilson interval, per ordered model pair."""
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for left, right, score in _outcomes(votes):
        for me, other, s in ((left, right, score), (right, left, 1 - score)):
            tally[(me, other)][0 if s == 1 else 1 if s == 0.5 else 2] += 1
    records = []
    for (me, other), (w, t, l_) in sorted(tally.items()):
        n = w + t + l_
        low, high = wilson(w + t / 2, n)
        records.append(PairRecord(me, other, w, t, l_, (w + t / 2) / n, low, high))
    return records


def bradley_terry(outcomes: Sequence[tuple[str, str, float]], models: Sequence[str],
                  ridge: float = 1e-4, iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood strengths (logits, mean zero) by Newton's method.

    P(i beats j) = 1 / (1 + exp(θj − θi)); a tie is half a win each way. A tiny ridge keeps
    the estimate finite for a model that never won (or never lost) and barely moves the rest.
    """
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
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta - theta.mean()


def elo(theta: np.ndarray) -> np.ndarray:
    return 1000 + theta * 400 / math.log(10)


def ratings(votes: Sequence[Vote], bootstrap: int = 1000, seed: int = 0) -> list[Rating]:
    """Bradley–Terry ratings with bootstrap 95 % intervals (votes resampled with replacement),
    ranked so that only models whose intervals do not overlap are separated."""
    outcomes = _outcomes(votes)
    models = sorted({m for a, b, _ in outcomes for m in (a, b)})
    if not models:
        return []
    point = elo(bradley_terry(outcomes, models))
    # Resampling the votes with replacement only changes how often each kind of outcome
    # (left, right, score) occurs: a multinomial draw of those counts is the same bootstrap,
    # and each fit costs the handful of kinds instead of every vote.
    kinds: dict[tuple[str, str, float], int] = defaultdict(int)
    for outcome in outcomes:
        kinds[outcome] += 1
    index = {m: k for k, m in enumerate(models)}
    i = np.array([index[a] for a, _, _ in kinds])
    j = np.array([index[b] for _, b, _ in kinds])
    s = np.array([score for _, _, score in kinds])
    share = np.array(list(kinds.values())) / len(outcomes)
    rng = np.random.default_rng(seed)
    draws = np.empty((bootstrap, len(models)))
    for k in range(bootstrap):
        resampled = rng.multinomial(len(outcomes), share).astype(float)
        draws[k] = elo(_newton(i, j, s, resampled, len(models)))
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    counts: dict[str, int] = defaultdict(int)
    scored: dict[str, float] = defaultdict(float)
    for a, b, score in outcomes:
        counts[a] += 1
        counts[b] += 1
        scored[a] += score
        scored[b] += 1 - score
    out = []
    for k, model in enumerate(models):
        rank = 1 + sum(1 for x in range(len(models)) if x != k and low[x] > high[k])
        side = ("above" if scored[model] == counts[model] else
                "below" if scored[model] == 0 else None)
        out.append(Rating(model, float(point[k]), float(low[k]), float(high[k]), rank,
                          counts[model], side))
    return sorted(out, key=lambda r: -r.rating)


def position_bias(votes: Sequence[Vote]) -> PositionBias:
    """The share of decisive votes won by the left side, with a two-sided binomial test."""
    from scipy.stats import binomtest

    decisive = [v for v in votes if v.choice in DECISIVE]
    left = sum(v.choice == "a" for v in decisive)
    if not decisive:
        return PositionBias(0, 0, 0.5, 1.0)
    return PositionBias(len(decisive), left, left / len(decisive),
                        float(binomtest(left, len(decisive), 0.5).pvalue))


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Agreement of two raters on the same items beyond chance (1 perfect, 0 chance)."""
    pairs = list(zip(first, second, strict=True))
    if not pairs:
        return float("nan")
    labels = sorted(set(first) | set(second))
    observed = sum(a == b for a, b in pairs) / len(pairs)
    expected = sum((first.count(c) / len(pairs)) * (second.count(c) / len(pairs)) for c in labels)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def agreement(votes: Sequence[Vote]) -> dict[tuple[str, str], tuple[int, float]]:
    """(items both rated, Cohen's kappa) for each pair of raters, on items both voted on."""
    by_rater: dict[str, dict[int, str]] = defaultdict(dict)
    for v in votes:
        if v.choice != "skip":
            by_rater[v.rater][v.item] = v.choice
    out = {}
    raters = sorted(by_rater)
    for x, r1 in enumerate(raters):
        for r2 in raters[x + 1:]:
            shared = sorted(set(by_rater[r1]) & set(by_rater[r2]))
            if shared:
                out[(r1, r2)] = (len(shared), cohen_kappa([by_rater[r1][i] for i in shared],
                                                          [by_rater[r2][i] for i in shared]))
    return out


def self_consistency(votes: Sequence[Vote]) -> dict[str, tuple[int, float]]:
    """Per rater: (repeated items judged, share judged the same way). A repeat shows the same
    prompt with sides swapped, so `a` on the original matches `b` on the repeat."""
    swap = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad"}
    first: dict[tuple[str, int], str] = {}
    for v in votes:
        if v.repeat_of is None and v.choice != "skip":
            first[(v.rater, v.item)] = v.choice
    judged: dict[str, list[bool]] = defaultdict(list)
    for v in votes:
        if v.repeat_of is not None and v.choice != "skip" and (v.rater, v.repeat_of) in first:
            judged[v.rater].append(swap[v.choice] == first[(v.rater, v.repeat_of)])
    return {r: (len(js), sum(js) / len(js)) for r, js in judged.items()}
