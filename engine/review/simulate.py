"""Simulated reviews: a rater who prefers the stronger model as Bradley–Terry says, voting on a
review's items in a given order until the ratings separate every model. It measures how many
votes a review needs (the benchmark `bench/bench_review.py` and its test), with the real
schedule, the real order and the real ratings."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from tunelab.engine.review.bradley_terry import Rating, ratings
from tunelab.engine.review.order import REFIT_EVERY, choose, doubts
from tunelab.engine.review.reviews import schedule
from tunelab.engine.review.votes import Vote
from tunelab.store import ReviewItem


def items_for(models: Sequence[str], prompts: int, seed: int) -> list[ReviewItem]:
    """A review's items as `review.create` schedules them (no outputs, no repeats)."""
    return [ReviewItem("sim", k, str(p), f"p{p}", left, right, "", "", None)
            for k, (p, left, right) in enumerate(schedule(list(models), prompts, seed))]


def separated(found: Sequence[Rating]) -> bool:
    """Every model in one group, each with its own rank: the ratings order them all."""
    return len({r.group for r in found}) == 1 and len({r.rank for r in found}) == len(found)


def votes_to_separate(strengths: dict[str, float], order: str, seed: int, prompts: int = 600,
                      check_every: int = REFIT_EVERY, bootstrap: int = 200) -> int | None:
    """Votes until `separated` (the ratings refitted every `check_every` votes, and the adaptive
    order steered by that fit, as on the voting screen), or None if the items ran out.
    `strengths` are true ratings on the Elo-like scale."""
    rng = random.Random(seed)
    items = items_for(list(strengths), prompts, seed)
    votes: list[Vote] = []
    steer = None
    while (item := choose(items, votes, "sim", order, steer)) is not None:
        gap = (strengths[item.model_a] - strengths[item.model_b]) * math.log(10) / 400
        choice = "a" if rng.random() < 1 / (1 + math.exp(-gap)) else "b"
        votes.append(Vote(item.item, "sim", choice, item.model_a, item.model_b))
        if len(votes) % check_every == 0:
            found = ratings(votes, bootstrap=bootstrap)
            if separated(found):
                return len(votes)
            steer = doubts(found, votes)
    return None
