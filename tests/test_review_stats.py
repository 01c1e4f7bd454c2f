"""The review statistics against hand computations and an independent fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from tunelab.engine.review.stats import (
    Vote,
    agreement,
    bradley_terry,
    cohen_kappa,
    pairwise,
    position_bias,
    ratings,
    self_consistency,
    wilson,
)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (0, 10, 0.0, 0.2775),  # the classic table values of the Wilson score interval
    (5, 10, 0.2366, 0.7634),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_interval_matches_the_published_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_bradley_terry_two_models_have_the_closed_form_answer() -> None:
    # A beats B 3 times of 4: the MLE gives θA − θB = ln 3
    outcomes = [("A", "B", 1.0)] * 3 + [("A", "B", 0.0)]
    theta = bradley_terry(outcomes, ["A", "B"], ridge=0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3), abs=1e-8)


def test_a_tie_counts_as_half_a_win() -> None:
    theta = bradley_terry([("A", "B", 1.0), ("A", "B", 0.5)], ["A", "B"], ridge=0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3), abs=1e-8)  # 1.5 of 2


def test_bradley_terry_agrees_with_an_independent_logistic_regression() -> None:
    rng = np.random.default_rng(1)
    strength = np.array([0.0, 0.6, -0.4, 1.2])
    models = ["m0", "m1", "m2", "m3"]
    outcomes = []
    for _ in range(400):
        i, j = rng.choice(4, 2, replace=False)
        p = 1 / (1 + math.exp(strength[j] - strength[i]))
        outcomes.append((models[i], models[j], float(rng.random() < p)))

    # logistic regression on the difference design, θ0 fixed at 0, fitted by BFGS
    def nll(free: np.ndarray) -> float:
        theta = np.concatenate([[0.0], free])
        total = 0.0
        for a, b, s in outcomes:
            d = theta[models.index(a)] - theta[models.index(b)]
            total += s * np.logaddexp(0, -d) + (1 - s) * np.logaddexp(0, d)
        return total

    fitted = np.concatenate([[0.0], minimize(nll, np.zeros(3), method="BFGS").x])
    ours = bradley_terry(outcomes, models, ridge=0)
    assert np.allclose(ours - ours[0], fitted, atol=1e-4)
    assert np.argmax(ours) == 3 and np.argmin(ours) == 2  # it recovers the true order


def _votes(spec: list[tuple[str, str, str]], rater: str = "ana") -> list[Vote]:
    return [Vote(k, rater, choice, left, right) for k, (left, right, choice) in enumerate(spec)]


def test_ranks_separate_only_models_whose_difference_the_rank_rule_tests_apart() -> None:
    spec = ([("strong", "weak", "a")] * 30 + [("weak", "strong", "b")] * 30
            + [("mid", "other", "a")] * 5 + [("other", "mid", "a")] * 5
            + [("strong", "mid", "a")] * 20 + [("strong", "other", "a")] * 20
            + [("mid", "weak", "tie")] * 4 + [("other", "weak", "a")] * 3)
    found = {r.model: r for r in ratings(_votes(spec), bootstrap=300)}
    assert found["strong"].ranks == (1, 1)
    assert found["mid"].ranks == found["other"].ranks  # a coin flip between them: not separated
    for r in found.values():
        assert r.low <= r.rating <= r.high
    assert [r.model for r in ratings(_votes(spec), bootstrap=0)][0] == "strong"


def test_pairwise_win_rates_count_ties_half() -> None:
    records = {(r.model, r.other): r for r in pairwise(_votes(
        [("x", "y", "a"), ("y", "x", "a"), ("x", "y", "tie"), ("x", "y", "skip")]))}
    xy = records[("x", "y")]
    assert (xy.wins, xy.ties, xy.losses) == (1, 1, 1) and xy.win_rate == pytest.approx(0.5)
    assert xy.low < 0.5 < xy.high


def test_left_position_bias_with_a_binomial_test() -> None:
    bias = position_bias(_votes([("x", "y", "a")] * 30 + [("x", "y", "b")] * 10
                                + [("x", "y", "tie")] * 7))
    assert (bias.decisive, bias.left_wins, bias.share_left) == (40, 30, 0.75)
    assert bias.p_value == pytest.approx(0.002221, abs=1e-5)


def test_cohen_kappa_by_hand() -> None:
    # observed agreement 3/4; chance 1/2 · 1/4 + 1/2 · 3/4 = 1/2; κ = (0.75 − 0.5) / 0.5
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.5)
    assert cohen_kappa(["a", "b", "tie"], ["a", "b", "tie"]) == pytest.approx(1.0)


def test_agreement_uses_the_items_both_raters_judged() -> None:
    ana = _votes([("x", "y", "a"), ("x", "y", "a"), ("x", "y", "b"), ("x", "y", "b")], "ana")
    ben = _votes([("x", "y", "a"), ("x", "y", "b"), ("x", "y", "b"), ("x", "y", "b"),
                  ("x", "y", "a")], "ben")
    assert agreement(ana + ben) == {("ana", "ben"): (4, pytest.approx(0.5))}


def test_self_consistency_maps_sides_on_swapped_repeats() -> None:
    votes = [Vote(0, "ana", "a", "x", "y"), Vote(1, "ana", "tie", "x", "y"),
             Vote(2, "ana", "b", "y", "x", repeat_of=0),   # x again: consistent
             Vote(3, "ana", "a", "y", "x", repeat_of=1)]   # a tie became a win: not
    assert self_consistency(votes) == {"ana": (2, 0.5)}


def test_a_model_that_won_every_vote_has_only_a_bound() -> None:
    from tunelab.engine.review.stats import Vote, ratings

    votes = [Vote(i, "r", "a" if i % 2 else "b", "x" if i % 2 else "y", "y" if i % 2 else "x")
             for i in range(20)]  # x wins all 20, on either side
    found = {r.model: r for r in ratings(votes, bootstrap=50)}
    assert (found["x"].open_side, found["y"].open_side) == ("above", "below")
    assert found["x"].interval() == "no upper bound"
    assert found["y"].interval() == "no lower bound"
    assert found["x"].rating > 1000 > found["y"].rating
    votes.append(Vote(20, "r", "tie", "x", "y"))  # a tie is half a win: the fit is finite
    assert all(r.open_side is None for r in ratings(votes, bootstrap=50))


def test_without_bootstrap_the_intervals_are_the_profile_likelihoods() -> None:
    """bootstrap=0: no resampling; the same point ratings and ranks, and the profile-likelihood
    intervals (as below ten decisive votes a model): where twice the drop in log-likelihood
    reaches χ²₁(95 %)."""
    spec = [("strong", "weak", "a")] * 30 + [("weak", "strong", "b")] * 28 + \
        [("weak", "strong", "a")] * 2
    drawn = {r.model: r for r in ratings(_votes(spec), bootstrap=200)}
    point = {r.model: r for r in ratings(_votes(spec), bootstrap=0)}
    assert point.keys() == drawn.keys()
    for model, r in point.items():
        assert r.rating == pytest.approx(drawn[model].rating)
        assert r.ranks == drawn[model].ranks and r.method == "profile"
        assert drawn[model].method == "bootstrap"
    # two models, 58 of 60: the difference d = 2 (θ − 1000)/ELO; the profile of d is the
    # binomial log-likelihood, so its ends solve 2 (ℓ(d̂) − ℓ(d)) = 3.84
    from scipy.optimize import brentq
    from scipy.stats import chi2

    def loglik(d: float) -> float:
        return 58 * -np.logaddexp(0, -d) + 2 * -np.logaddexp(0, d)

    best = math.log(58 / 2)
    ends = [brentq(lambda d: 2 * (loglik(best) - loglik(d)) - chi2.ppf(0.95, 1), a, b)
            for a, b in ((0.0, best), (best, 20.0))]
    elo = 400 / math.log(10)
    assert point["strong"].low == pytest.approx(1000 + ends[0] / 2 * elo, abs=0.5)
    assert point["strong"].high == pytest.approx(1000 + ends[1] / 2 * elo, abs=0.5)
