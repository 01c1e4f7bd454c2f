"""Where a trial of a preference sweep stands: its placement (the rating over the base model
told to the search), and whether the votes against the model it was shown beside (its
opponent: the incumbent when it finished) place it yet.

The placement is the penalised Bradley–Terry fit the adaptive order uses (a weak Gaussian prior
keeps every rating finite, even for a model that won every vote, which a sweep meets all the
time in its first votes), in Elo points relative to the base model, so that it does not move
because other trials join the review. It is fixed when the trial is placed. The statistics of
the review (`bradley_terry`) are another number: the current fit of all its votes, on a scale
where 1000 is the average model, with only a bound for a model that won every vote.

A trial is placed when the rank rule's test (`ranks.compare`: the score test of the difference
in the fit of the whole review; one comparison, so nothing to correct) ranks it apart from its
opponent, above ("won") or below ("lost"); for two models alone that is the Wilson interval of
the win share excluding one half, four unanimous votes. Or when the trial has `budget` verdicts
against its opponent: more votes would not be worth the wait.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tunelab.engine.review import order, ranks
from tunelab.engine.review.votes import Vote, outcomes

ELO = 400 / math.log(10)  # Elo points per logit
BASE = "base"


@dataclass(frozen=True)
class HeadToHead:
    model: str
    opponent: str
    score: float  # the model's wins, ties counting half
    votes: int  # counted verdicts between the two
    verdict: str | None  # won | lost: the rank rule ranks them apart; None: not yet


def ratings(votes: Sequence[Vote], base: str = BASE) -> dict[str, float]:
    """Every voted model's rating in Elo points over the base (the base is 0): what a trial
    is placed at."""
    models = sorted({m for a, b, _ in outcomes(votes) for m in (a, b)} | {base})
    theta, _ = order.quick_fit(votes, models)
    k = models.index(base)
    return {m: float(theta[i] - theta[k]) * ELO for i, m in enumerate(models)}


def head_to_head(votes: Sequence[Vote], model: str, opponent: str) -> HeadToHead:
    score, n = 0.0, 0
    for a, b, s in outcomes(votes):
        if {a, b} == {model, opponent}:
            score += s if a == model else 1 - s
            n += 1
    test = ranks.compare(votes, model, opponent) if n else None
    verdict = None
    if test is not None and test.separated:
        verdict = "won" if test.high == model else "lost"
    return HeadToHead(model, opponent, score, n, verdict)


def placed(votes: Sequence[Vote], model: str, opponent: str, budget: int) -> str | None:
    """'won' or 'lost' when the rank rule ranks `model` apart from its opponent, 'budget' when
    they have `budget` verdicts between them without that, else None (it waits for votes)."""
    found = head_to_head(votes, model, opponent)
    return found.verdict or ("budget" if found.votes >= budget else None)
