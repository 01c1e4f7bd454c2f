"""Simulated reviews: a rater who prefers the stronger model as Bradley–Terry says, voting on a
review's items in a given order. It measures how many votes a review needs before the rank
rule ranks every model apart, and what the ranks and intervals claim after a fixed number of
votes (the benchmark `bench/bench_review.py` and the tests), with the real schedule, the real
order and the real rank rule."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tunelab.engine.review import order as orders
from tunelab.engine.review import ranks
from tunelab.engine.review.reviews import schedule
from tunelab.engine.review.votes import Vote, outcomes
from tunelab.store import ReviewItem

Chooser = Callable[..., Any]  # order.choose's signature: (items, votes, rater, order, steer)


def items_for(models: Sequence[str], prompts: int, seed: int) -> list[ReviewItem]:
    """A review's items as `review.create` schedules them (no outputs, no repeats)."""
    return [ReviewItem("sim", k, str(p), f"p{p}", left, right, "", "", None)
            for k, (p, left, right) in enumerate(schedule(list(models), prompts, seed))]


def voting(strengths: dict[str, float], order: str, seed: int, prompts: int,
           choose: Chooser = orders.choose) -> Iterator[tuple[list[Vote], ranks.Ranking]]:
    """Votes one at a time (the rater's verdict drawn from the true `strengths`, on the
    Elo-like scale), yielding the votes so far and their ranking after each; the adaptive order
    is steered by that ranking, as on the voting screen. Ends when the items run out."""
    rng = random.Random(seed)
    items = items_for(list(strengths), prompts, seed)
    votes: list[Vote] = []
    tally = ranks.Tally()  # the ranking after each vote, from the fits before it
    steer = None
    while (item := choose(items, votes, "sim", order, steer)) is not None:
        gap = (strengths[item.model_a] - strengths[item.model_b]) * math.log(10) / 400
        choice = "a" if rng.random() < 1 / (1 + math.exp(-gap)) else "b"
        votes.append(Vote(item.item, "sim", choice, item.model_a, item.model_b))
        for found in outcomes(votes[-1:]):
            tally.add(*found)
        ranking = tally.ranking()
        steer = ranking.steering(list(strengths))
        yield votes, ranking


def votes_to_separate(strengths: dict[str, float], order: str, seed: int, prompts: int = 600,
                      choose: Chooser = orders.choose) -> int | None:
    """Votes until the rank rule ranks every model apart, or None if the items ran out."""
    for votes, ranking in voting(strengths, order, seed, prompts, choose):
        if ranking.settled(list(strengths)):
            return len(votes)
    return None


def after(strengths: dict[str, float], votes: int, order: str, seed: int,
          choose: Chooser = orders.choose) -> list[Vote]:
    """The votes of a simulated review stopped after `votes` of them."""
    for found, _ in voting(strengths, order, seed, max(votes, 1) * 2, choose):
        if len(found) >= votes:
            return found
    raise ValueError(f"fewer than {votes} items")
