"""Statistics of blind A/B votes: plain functions, checked against hand computations.

What each vote counts for (skips, ties, both-bad, repeats) is defined once, in `votes`; the
Bradley–Terry ratings and where they are defined, in `bradley_terry`. Intervals are 95 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tunelab.engine.review.bradley_terry import Rating, bradley_terry, elo, ratings
from tunelab.engine.review.votes import (
    DECISIVE,
    HALF,
    SWAP,
    TIES,
    Z95,
    Vote,
    check_ties,
    counted,
    first_verdicts,
    outcomes,
    ties_words,
    wilson,
)

__all__ = ["DECISIVE", "HALF", "TIES", "Z95", "PairRecord", "PositionBias", "Rating", "Vote",
           "agreement", "bradley_terry", "cohen_kappa", "counted", "elo", "pairwise",
           "position_bias", "ratings", "self_consistency", "ties_words", "wilson"]


@dataclass(frozen=True)
class PairRecord:
    model: str
    other: str
    wins: int
    ties: int  # ties and both-bad
    losses: int
    win_rate: float  # ties count half (or not at all, with ties = "ignore"); NaN: none counted
    low: float
    high: float


@dataclass(frozen=True)
class PositionBias:
    decisive: int
    left_wins: int
    share_left: float
    p_value: float  # two-sided binomial test against 0.5


def pairwise(votes: Sequence[Vote], ties: str = "half") -> list[PairRecord]:
    """Win/tie/loss counts and the win rate with a Wilson interval, per ordered model pair;
    each rater's verdict on an item counts once (repeats folded in)."""
    check_ties(ties)
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for left, right, score in outcomes(votes, "half"):
        for me, other, s in ((left, right, score), (right, left, 1 - score)):
            tally[(me, other)][0 if s == 1 else 1 if s == 0.5 else 2] += 1
    records = []
    for (me, other), (w, t, l_) in sorted(tally.items()):
        won, n = (w + t / 2, w + t + l_) if ties == "half" else (w, w + l_)
        low, high = wilson(won, n)
        records.append(PairRecord(me, other, w, t, l_, won / n if n else math.nan, low, high))
    return records


def position_bias(votes: Sequence[Vote]) -> PositionBias:
    """The share of decisive verdicts won by the left side, with a two-sided binomial test;
    each rater's first verdict on an item only (a repeat is not a second vote)."""
    from scipy.stats import binomtest

    decisive = [v for v in first_verdicts(votes) if v.choice in DECISIVE]
    left = sum(v.choice == "a" for v in decisive)
    if not decisive:
        return PositionBias(0, 0, 0.5, 1.0)
    return PositionBias(len(decisive), left, left / len(decisive),
                        float(binomtest(left, len(decisive), 0.5).pvalue))


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Agreement of two raters on the same items beyond chance (1 perfect, 0 chance). NaN
    when it is undefined: both raters gave one and the same label throughout, so chance alone
    explains their agreement and nothing is left to measure."""
    pairs = list(zip(first, second, strict=True))
    if not pairs:
        return float("nan")
    labels = sorted(set(first) | set(second))
    observed = sum(a == b for a, b in pairs) / len(pairs)
    expected = sum((first.count(c) / len(pairs)) * (second.count(c) / len(pairs)) for c in labels)
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


def agreement(votes: Sequence[Vote]) -> dict[tuple[str, str], tuple[int, float]]:
    """(items both rated, Cohen's kappa) for each pair of raters, on items both voted on."""
    by_rater: dict[str, dict[tuple[str, int], str]] = defaultdict(dict)
    for v in votes:
        if v.choice != "skip":
            by_rater[v.rater][(v.review, v.item)] = v.choice
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
    first: dict[tuple[str, str, int], str] = {}
    for v in votes:
        if v.repeat_of is None and v.choice != "skip":
            first[(v.review, v.rater, v.item)] = v.choice
    judged: dict[str, list[bool]] = defaultdict(list)
    for v in votes:
        key = (v.review, v.rater, v.repeat_of or 0)
        if v.repeat_of is not None and v.choice != "skip" and key in first:
            judged[v.rater].append(SWAP[v.choice] == first[key])
    return {r: (len(js), sum(js) / len(js)) for r, js in judged.items()}
