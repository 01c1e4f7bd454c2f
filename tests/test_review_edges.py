"""The review statistics at the edges, each case built from votes with a known answer: a
comparison graph in pieces, ratings that do not exist, ranks and intervals from few votes,
agreement without variation, repeats, and the tie setting."""

from __future__ import annotations

import math
import random

import pytest

from tunelab.engine.review import words
from tunelab.engine.review.stats import (
    Vote,
    cohen_kappa,
    pairwise,
    position_bias,
    ratings,
    self_consistency,
)


def _votes(spec: list[tuple[str, str, str]], rater: str = "ana") -> list[Vote]:
    return [Vote(k, rater, choice, left, right) for k, (left, right, choice) in enumerate(spec)]


def _by_model(votes: list[Vote], **options: object) -> dict:
    return {r.model: r for r in ratings(votes, bootstrap=300, **options)}


def test_models_no_vote_links_are_rated_apart_and_the_joining_pair_is_named() -> None:
    votes = _votes([("A", "B", "a")] * 4 + [("A", "B", "b")] * 2
                   + [("C", "D", "a")] * 5 + [("C", "D", "b")] * 1)
    found = _by_model(votes)
    assert found["A"].group == found["B"].group != found["C"].group == found["D"].group
    # ranks within a group only: before, C came first and A, B second over both groups
    assert {r.rank for r in found.values()} == {1}
    for group in (("A", "B"), ("C", "D")):  # each group centred on its own
        assert sum(found[m].rating for m in group) / 2 == pytest.approx(1000, abs=1e-6)
    found_list = ratings(votes, bootstrap=300)
    assert words.groups(found_list) == [["A", "B"], ["C", "D"]]
    (hub, other), = words.joins(found_list)
    assert hub in {"A", "B"} and other in {"C", "D"}
    said = " ".join(words.notes(found_list))
    assert "Cannot be compared: no votes link A and B; C and D" in said
    assert f"To join them, vote on {hub} vs {other}" in said
    # once such a vote is in, one group, one scale
    joined = _by_model(votes + [Vote(99, "ana", "a", hub, other), Vote(98, "ana", "b", hub, other)])
    assert {r.group for r in joined.values()} == {1}


def test_a_group_that_beat_every_other_model_has_only_a_bound() -> None:
    # {A, B} won all 12 votes against {C, D}; inside each group both sides won
    spec = ([("A", "B", "a"), ("A", "B", "b")] * 5 + [("C", "D", "a"), ("C", "D", "b")] * 3
            + [("A", "C", "a"), ("D", "B", "b"), ("C", "A", "b"), ("B", "D", "a")] * 3)
    found = _by_model(_votes(spec))
    assert found["A"].finite and found["B"].finite  # the part with the most votes inside
    for m in ("C", "D"):
        r = found[m]
        assert not r.finite and r.below == ("A", "B") and r.above == ()
        assert r.interval().startswith("below every model of A, B")
        assert math.isfinite(r.high) and r.low == -math.inf  # only an upper bound
        assert r.rating == r.high  # shown as the bound, never as a point
    # the fitted part is centred on its own models, not pulled by the unbounded ones
    assert (found["A"].rating + found["B"].rating) / 2 == pytest.approx(1000, abs=1e-6)


def test_one_vote_against_a_pair_with_a_hundred_votes_moves_nothing() -> None:
    yz = [("Y", "Z", "a")] * 52 + [("Y", "Z", "b")] * 48  # Y ≈ 1007
    before = _by_model(_votes(yz))
    after = _by_model(_votes(yz + [("X", "Y", "a")]))
    assert before["Y"].rating == pytest.approx(1006.95, abs=0.05)
    assert after["Y"].rating == pytest.approx(before["Y"].rating, abs=1e-6)  # was 565
    width = before["Y"].high - before["Y"].low
    assert after["Y"].high - after["Y"].low == pytest.approx(width, rel=0.05)  # was 8× wider
    x = after["X"]
    assert not x.finite and x.above == ("Y", "Z") and x.interval().startswith("won every vote")
    assert x.rank == after["Y"].rank == 1  # one vote separates nothing


def test_a_chain_of_one_way_wins_is_bounds_on_both_sides_in_the_middle() -> None:
    found = _by_model(_votes([("A", "B", "a")] * 6 + [("B", "C", "a")] * 6))
    assert found["B"].above == ("C",) and found["B"].below == ("A",)
    assert found["B"].interval() == "below every model of A; above every model of C" or \
        found["B"].interval().startswith("above every model of C; below every model of A")
    assert not any(r.finite for r in found.values())


def test_one_vote_ranks_nobody_and_gives_no_point_interval() -> None:
    found = _by_model(_votes([("A", "B", "a")]))
    assert found["A"].rank == found["B"].rank == 1
    gap = 400 * math.log10(0.2065 / 0.7935)  # the Wilson bound of 1 in 1: a negative gap
    assert (found["A"].low, found["A"].high) == (pytest.approx(1000 + gap / 2, abs=0.5), math.inf)
    assert (found["B"].low, found["B"].high) == (-math.inf, pytest.approx(1000 - gap / 2, abs=0.5))
    assert words.rating_text(found["A"]) == "≥ 883"
    assert found["A"].interval() == "won every vote"
    assert found["B"].interval() == "lost every vote"


def test_ties_only_say_no_decisive_votes_instead_of_a_zero_width_interval() -> None:
    found = _by_model(_votes([("A", "B", "tie")] * 3 + [("B", "A", "both_bad")] * 3))
    for r in found.values():
        assert r.undecided and r.interval() == "no decisive votes yet" and r.rank == 1
        assert r.high - r.low > 0
    assert "No decisive votes yet between A and B" in " ".join(words.notes(list(found.values())))


def test_no_interval_is_narrower_than_the_votes_allow() -> None:
    rng = random.Random(3)
    models = ["m0", "m1", "m2", "m3"]
    for _ in range(25):
        spec = [(*rng.sample(models, 2), rng.choice(["a", "b", "tie", "both_bad"]))
                for _ in range(rng.randint(1, 12))]
        for r in ratings(_votes(spec), bootstrap=100):
            assert r.high > r.low, (spec, r)  # never a point
            if r.finite:
                assert r.low <= r.rating <= r.high


def test_kappa_of_raters_who_never_varied_is_undefined() -> None:
    assert math.isnan(cohen_kappa(["a", "a", "a"], ["a", "a", "a"]))
    assert words.kappa_text(float("nan")).startswith("κ undefined")
    assert words.kappa_text(0.5) == "κ 0.50 (moderate)"


def test_a_repeat_counts_once_and_a_disagreeing_one_as_a_tie() -> None:
    votes = [Vote(0, "ana", "a", "x", "y"), Vote(1, "ana", "a", "x", "y"),
             Vote(2, "ana", "a", "x", "y"),
             Vote(3, "ana", "b", "y", "x", repeat_of=0),  # x again: agrees
             Vote(4, "ana", "a", "y", "x", repeat_of=1)]  # y this time: a tie
    xy = next(p for p in pairwise(votes) if (p.model, p.other) == ("x", "y"))
    assert (xy.wins, xy.ties, xy.losses) == (2, 1, 0)  # three items, three verdicts
    assert {r.votes for r in ratings(votes, bootstrap=50)} == {3}
    bias = position_bias(votes)
    assert (bias.decisive, bias.left_wins) == (3, 3)  # the repeats are not second votes
    assert self_consistency(votes) == {"ana": (2, 0.5)}  # repeats still measure consistency
    # a repeat whose original was skipped is the rater's one verdict
    skipped = [Vote(0, "ana", "skip", "x", "y"), Vote(1, "ana", "b", "y", "x", repeat_of=0)]
    assert [(p.wins, p.losses) for p in pairwise(skipped) if p.model == "x"] == [(1, 0)]


def test_ties_can_be_left_out_and_every_table_says_which() -> None:
    spec = [("x", "y", "a")] * 3 + [("x", "y", "b")] + [("x", "y", "tie")] * 4
    half = next(p for p in pairwise(_votes(spec)) if p.model == "x")
    ignore = next(p for p in pairwise(_votes(spec), ties="ignore") if p.model == "x")
    assert half.win_rate == pytest.approx(5 / 8) and ignore.win_rate == pytest.approx(3 / 4)
    assert ignore.ties == 4  # still counted and shown
    theta_half = _by_model(_votes(spec))["x"].rating
    theta_ignore = _by_model(_votes(spec), ties="ignore")["x"].rating
    assert theta_ignore - 1000 == pytest.approx(200 * math.log10(3), abs=1e-3)  # 3 of 4
    assert theta_half - 1000 == pytest.approx(200 * math.log10(5 / 3), abs=1e-3)  # 5 of 8
    assert "left out" in words.notes(ratings(_votes(spec), bootstrap=50, ties="ignore"),
                                     "ignore")[0]
    assert ratings(_votes([("x", "y", "tie")]), ties="ignore") == []
    from tunelab.store.errors import TunelabError

    with pytest.raises(TunelabError, match="ties = 'some'"):
        ratings(_votes(spec), ties="some")
