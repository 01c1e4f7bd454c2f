"""The order of a review's items: random (the review's own), or adaptive (the vote expected to
teach the most), and what the voting screen says is left to separate."""

from __future__ import annotations

import math

import pytest

from tunelab.engine.review import order
from tunelab.engine.review.bradley_terry import Rating
from tunelab.engine.review.simulate import items_for
from tunelab.engine.review.stats import Vote, ratings
from tunelab.store import ReviewItem


def _item(k: int, left: str, right: str, repeat_of: int | None = None) -> ReviewItem:
    return ReviewItem("r", k, str(k), f"p{k}", left, right, "", "", repeat_of)


def test_every_item_once_in_either_order_and_random_keeps_the_reviews_order() -> None:
    items = items_for(["a", "b", "c"], 30, seed=1)
    for how in order.ORDERS:
        votes: list[Vote] = []
        while (item := order.choose(items, votes, "ana", how)) is not None:
            votes.append(Vote(item.item, "ana", "a", item.model_a, item.model_b))
        assert sorted(v.item for v in votes) == list(range(30))
        if how == "random":
            assert [v.item for v in votes] == [i.item for i in items]
    # another rater's votes inform the order but do not use up this rater's items
    assert order.choose(items, votes, "ben") is not None


def test_adaptive_links_groups_no_vote_links_before_measuring_more() -> None:
    items = ([_item(k, "a", "b") for k in range(10)] + [_item(10 + k, "c", "d") for k in range(10)]
             + [_item(20, "b", "c")])
    votes = [Vote(k, "ana", "a" if k % 2 else "b", "a", "b") for k in range(6)]
    votes += [Vote(10 + k, "ana", "a" if k % 2 else "b", "c", "d") for k in range(6)]
    assert order.choose(items, votes, "ana").item == 20
    assert order.choose(items, votes, "ana", "random").item == 6


def test_a_pair_where_one_won_every_vote_gets_its_own_votes_first() -> None:
    items = [_item(k, "x", "y") for k in range(10)] + [_item(10 + k, "y", "z") for k in range(10)]
    votes = [Vote(k, "ana", "a", "x", "y") for k in range(3)]  # x won all: only a bound
    votes += [Vote(10 + k, "ana", "a" if k % 2 else "b", "y", "z") for k in range(8)]
    steer = order.doubts(ratings(votes, bootstrap=100), votes)
    assert steer[0].overlap == math.inf and {steer[0].a, steer[0].b} == {"x", "y"}
    picked = order.choose(items, votes, "ana", steer=steer)
    assert {picked.model_a, picked.model_b} == {"x", "y"}


def test_repeats_come_back_about_one_vote_in_ten() -> None:
    items = [_item(k, "a", "b") for k in range(30)] + [_item(30 + k, "b", "a", repeat_of=k)
                                                       for k in range(3)]
    votes: list[Vote] = []
    while (item := order.choose(items, votes, "ana")) is not None:
        if item.repeat_of is not None:  # never before its original was judged
            assert item.repeat_of in {v.item for v in votes}
        votes.append(Vote(item.item, "ana", "a", item.model_a, item.model_b, item.repeat_of))
    first_repeat = next(k for k, v in enumerate(votes) if v.repeat_of is not None)
    assert first_repeat <= 12 and len(votes) == 33


def _rating(model: str, value: float, half: float) -> Rating:
    return Rating(model, value, value - half, value + half, 1, 40)


def test_how_many_more_votes_from_the_intervals() -> None:
    found = [_rating("a", 1050, 60), _rating("b", 1000, 60), _rating("c", 700, 50)]
    votes = [Vote(k, "ana", "a", "a", "b") for k in range(20)]
    doubts = order.doubts(found, votes)
    assert [(d.a, d.b) for d in doubts] == [("a", "b")]  # b and c are separated
    # half-widths 60 + 60 shrink as 1/√n until they fit in the gap of 50
    assert doubts[0].more == math.ceil(20 * ((120 / 50) ** 2 - 1))
    assert doubts[0].words() == f"about {doubts[0].more} more votes to separate a from b"
    assert not order.settled(found, doubts)
    apart = [_rating("a", 1200, 60), _rating("b", 1000, 60)]
    assert order.settled(apart, order.doubts(apart, votes))


@pytest.mark.parametrize("how", ["random", "adaptive"])
def test_a_simulated_review_of_three_models_gets_separated(how: str) -> None:
    from tunelab.engine.review.simulate import votes_to_separate

    needed = votes_to_separate({"a": 1300, "b": 1000, "c": 700}, how, seed=0, prompts=300)
    assert needed is not None and needed <= 300


def test_the_adaptive_order_separates_simulated_models_with_fewer_votes() -> None:
    """Six simulated reviews of three models 150 points apart (a 70 % win share between
    neighbours), each order on the same six seeds: adaptive needs fewer votes in all (each
    run is deterministic: seeded raters and bootstrap). bench/bench_review.py measures 3, 5
    and 8 models."""
    from tunelab.engine.review.simulate import votes_to_separate

    strengths = {"a": 1150.0, "b": 1000.0, "c": 850.0}
    needed = {how: [votes_to_separate(strengths, how, seed, prompts=600) for seed in range(6)]
              for how in ("random", "adaptive")}
    assert all(n is not None for ns in needed.values() for n in ns), needed
    assert sum(needed["adaptive"]) < sum(needed["random"]), needed
