"""Where a trial of a preference sweep stands: its rating over the base model, and whether the
votes against the model it was shown beside (its opponent: the incumbent when it finished)
place it yet.

The rating is the penalised Bradley–Terry fit the adaptive order already uses (`order._fit`:
the weak Gaussian prior keeps every rating finite, even for a model that won every vote, which
a sweep meets all the time in its first votes), in Elo points relative to the base model, so a
rating does not move because other trials join the review.

Placement is decided head to head, on the Wilson 95 % interval of the trial's share of the
votes against its opponent (ties half): above one half, it won clearly; below, it lost clearly.
(A Wald or Laplace interval of the fit never excludes a gap when every vote went one way: the
fitted gap then grows as fast as its standard error; Wilson's interval separates five
unanimous votes.) Or the trial has `budget` verdicts against its opponent: more votes would
not be worth the wait. The same interval, as Elo gaps added to the opponent's rating, is the
trial's interval the sweep reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tunelab.engine.review.bradley_terry import elo_gap
from tunelab.engine.review.order import _fit
from tunelab.engine.review.votes import Vote, outcomes, wilson

ELO = 400 / math.log(10)  # Elo points per logit
BASE = "base"


@dataclass(frozen=True)
class HeadToHead:
    model: str
    opponent: str
    score: float  # the model's wins, ties counting half
    votes: int  # counted verdicts between the two
    low: float  # Wilson 95 % interval of the model's share
    high: float

    @property
    def verdict(self) -> str | None:
        """'won' or 'lost' when the interval excludes an even share, else None."""
        return "won" if self.low > 0.5 else "lost" if self.high < 0.5 else None


def ratings(votes: Sequence[Vote], base: str = BASE) -> dict[str, float]:
    """Every voted model's rating in Elo points over the base (the base is 0)."""
    found = outcomes(votes)
    models = sorted({m for a, b, _ in found for m in (a, b)} | {base})
    theta, _ = _fit(found, models)
    k = models.index(base)
    return {m: float(theta[i] - theta[k]) * ELO for i, m in enumerate(models)}


def head_to_head(votes: Sequence[Vote], model: str, opponent: str) -> HeadToHead:
    score, n = 0.0, 0
    for a, b, s in outcomes(votes):
        if {a, b} == {model, opponent}:
            score += s if a == model else 1 - s
            n += 1
    low, high = wilson(score, n)
    return HeadToHead(model, opponent, score, n, low, high)


def placed(votes: Sequence[Vote], model: str, opponent: str, budget: int) -> str | None:
    """'won' or 'lost' when the votes separate `model` from its opponent, 'budget' when they
    have `budget` verdicts between them without that, else None (it waits for more votes)."""
    found = head_to_head(votes, model, opponent)
    return found.verdict or ("budget" if found.votes >= budget else None)


def interval(found: HeadToHead, opponent_rating: float) -> tuple[float, float]:
    """The model's rating interval (Elo over the base): the opponent's rating plus the gaps at
    which the model wins the low and the high end of its share (±inf: no bound)."""
    def gap(share: float) -> float:
        return -math.inf if share <= 0 else math.inf if share >= 1 else elo_gap(share)

    return opponent_rating + gap(found.low), opponent_rating + gap(found.high)
