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
    wilson,
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
    assert {r.ranks for r in found.values()} == {(1, 2)}
    for group in (("A", "B"), ("C", "D")):  # each group centred on its own
        assert sum(found[m].rating for m in group) / 2 == pytest.approx(1000, abs=1e-6)
    found_list = ratings(votes, bootstrap=300)
    assert words.groups(found_list) == [["A", "B"], ["C", "D"]]
    (hub, other), = words.joins(found_list)
    assert hub in {"A", "B"} and other in {"C", "D"}
    said = " ".join(words.notes(found_list))
    assert f"to join them, vote on {hub} vs {other}" in said
    # once such a vote is in, one group, one scale
    joined = _by_model(votes + [Vote(99, "ana", "a", hub, other), Vote(98, "ana", "b", hub, other)])
    assert {r.group for r in joined.values()} == {1}


def test_the_groups_no_vote_links_are_named_as_groups() -> None:
    """Issue 25: `Cannot be compared: no votes link A and B; D and C` read as if A and B were
    not linked, when A–B was the linked group."""
    votes = _votes([("A", "B", "a")] * 3 + [("B", "A", "a")] * 2 + [("D", "C", "a")] * 4
                   + [("C", "D", "a")])
    said = " ".join(words.notes(ratings(votes, bootstrap=100)))
    assert "no votes link A and B" not in said
    assert "No vote links these groups: group 1 (A, B); group 2 (C, D)." in said


def test_a_group_that_beat_every_other_model_has_only_a_bound() -> None:
    # {A, B} won all 12 votes against {C, D}; inside each group both sides won
    spec = ([("A", "B", "a"), ("A", "B", "b")] * 5 + [("C", "D", "a"), ("C", "D", "b")] * 3
            + [("A", "C", "a"), ("D", "B", "b"), ("C", "A", "b"), ("B", "D", "a")] * 3)
    found = _by_model(_votes(spec))
    assert found["A"].finite and found["B"].finite  # the part with the most votes inside
    for m in ("C", "D"):
        r = found[m]
        assert not r.finite and r.below == ("A", "B") and r.above == ()
        assert r.interval() == "no lower bound" and r.pooled == 12
        assert math.isfinite(r.high) and r.low == -math.inf  # only an upper bound
        assert r.rating == r.high  # shown as the bound, never as a point
        assert r.rating < min(found["A"].rating, found["B"].rating)
    # the fitted part is centred on its own models, not pulled by the unbounded ones
    assert (found["A"].rating + found["B"].rating) / 2 == pytest.approx(1000, abs=1e-6)


def _cut_of_twelve(upper: tuple[str, str], lower: tuple[str, str]) -> list[Vote]:
    """Issue 25's case: the upper pair won all 12 votes against the lower pair (3 per pair of
    models), and inside each pair both won as often."""
    (a, b), (c, d) = upper, lower
    spec = [(a, b, "a"), (a, b, "b")] * 3 + [(c, d, "a"), (c, d, "b")] * 3
    spec += [(x, y, "a") for x in upper for y in lower for _ in range(3)]
    return _votes(spec)


def test_a_bound_pools_the_whole_cut_and_is_never_below_a_model_it_is_above() -> None:
    """Issue 25: {A,B} won all 12 votes against {C,D}, yet A and B read `≥ 837 · above every
    model of C, D` while C showed 965 and D 1035: the bound was built per pair (3 of 3). Pooled,
    12 of 12 give a Wilson lower bound of +197 Elo."""
    found = _by_model(_cut_of_twelve(("A", "B"), ("C", "D")))
    fitted = [m for m, r in found.items() if r.finite]
    bounded = [m for m, r in found.items() if not r.finite]
    gap = 400 * math.log10(wilson(12, 12)[0] / (1 - wilson(12, 12)[0]))
    assert gap == pytest.approx(197, abs=1)
    # by structure: the two parts are alike, so the upper one (it is above the other) is fitted
    assert sorted(fitted) == ["A", "B"] and sorted(bounded) == ["C", "D"]
    for m in bounded:
        assert found[m].rating == pytest.approx(1000 - gap)  # both of A, B at 1000
        assert found[m].rating < min(found[x].rating for x in fitted)
        assert found[m].pooled == 12 and found[m].method == "pooled"
    said = " ".join(words.notes(list(found.values())))
    assert "C and D lost every vote that links them to A and B: only an upper bound, from the 12 votes" \
        in said
    assert {found[m].ranks for m in fitted} == {(1, 2)}
    assert {found[m].ranks for m in bounded} == {(3, 4)}


def test_renaming_the_models_does_not_change_which_part_gets_finite_ratings() -> None:
    for upper, lower in ((("A", "B"), ("C", "D")), (("C", "D"), ("A", "B")),
                         (("y", "z"), ("b", "a")), (("m1", "m9"), ("m2", "m0"))):
        found = _by_model(_cut_of_twelve(upper, lower))
        assert sorted(m for m, r in found.items() if r.finite) == sorted(upper), (upper, lower)
        texts = sorted(words.rating_text(r) for r in found.values())
        assert texts == ["1000", "1000", "≤ 802", "≤ 802"]


def test_one_vote_against_a_pair_with_a_hundred_votes_moves_nothing() -> None:
    yz = [("Y", "Z", "a")] * 52 + [("Y", "Z", "b")] * 48  # Y ≈ 1007
    before = _by_model(_votes(yz))
    after = _by_model(_votes(yz + [("X", "Y", "a")]))
    assert before["Y"].rating == pytest.approx(1006.95, abs=0.05)
    assert after["Y"].rating == pytest.approx(before["Y"].rating, abs=1e-6)  # was 565
    width = before["Y"].high - before["Y"].low
    assert after["Y"].high - after["Y"].low == pytest.approx(width, rel=0.05)  # was 8× wider
    x = after["X"]
    assert not x.finite and x.above == ("Y", "Z") and x.interval() == "won every vote"
    assert x.rating is None  # one vote says who won, not by how much
    assert x.rank == after["Y"].rank == 1  # one vote separates nothing


def test_a_chain_of_one_way_wins_is_bounds_on_both_sides_in_the_middle() -> None:
    found = _by_model(_votes([("A", "B", "a")] * 6 + [("B", "C", "a")] * 6))
    assert found["B"].above == ("C",) and found["B"].below == ("A",)
    assert not any(r.finite for r in found.values())
    said = " ".join(words.notes(list(found.values())))
    assert "B won every vote that links it to C and lost every vote that links it to A" in said
    assert "no fitted rating on the other side of that line to measure a bound from" in said


def test_one_vote_ranks_nobody_and_gives_the_winner_no_smaller_number() -> None:
    """Issue 25: one vote A>B showed A `≥ 883` and B `≤ 1117`: the winner's number the
    smaller. One vote says who won, not by how much: no number either side."""
    found = _by_model(_votes([("A", "B", "a")]))
    assert found["A"].ranks == found["B"].ranks == (1, 2)
    assert words.rating_text(found["A"]) == words.rating_text(found["B"]) == "—"
    assert found["A"].interval() == "won every vote"
    assert found["B"].interval() == "lost every vote"
    said = " ".join(words.notes(list(found.values())))
    assert "too few votes to bound" in said
    four = _by_model(_votes([("A", "B", "a")] * 4))  # four give a bound, on the right side
    assert four["A"].rating > 1000 > four["B"].rating
    assert four["A"].ranks == (1, 1)


def test_ties_only_say_no_decisive_votes_instead_of_a_zero_width_interval() -> None:
    found = _by_model(_votes([("A", "B", "tie")] * 3 + [("B", "A", "both_bad")] * 3))
    for r in found.values():
        assert r.undecided and r.interval() == "ties only" and r.ranks == (1, 2)
        assert r.high - r.low > 0
    assert "No decisive votes yet between A and B" in " ".join(words.notes(list(found.values())))


def test_a_part_with_decisive_votes_is_fitted_before_a_larger_tied_one() -> None:
    """Seen on a preference sweep: trial:1 and trial:2 tied 8 times, base and trial:0 split 5–3,
    and the tied part was chosen (by name), so no model got a number."""
    spec = ([("trial:1", "trial:2", "tie")] * 8 + [("trial:0", "base", "a")] * 5
            + [("base", "trial:0", "a")] * 3 + [("trial:1", "trial:0", "a")] * 8
            + [("trial:1", "trial:3", "a")] * 6)
    found = _by_model(_votes(spec))
    assert found["base"].finite and found["trial:0"].finite
    assert words.rating_text(found["trial:1"]).startswith("≥ ")
    assert found["trial:1"].rating > found["trial:0"].rating


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
