"""Rater noise into DPO: the share of flipped votes, from the raters' own consistency.

A review shows about a tenth of its items again later with the sides swapped. A rater who
flips a verdict with probability ε (independently each time) judges an item and its repeat
alike with probability c = (1 − ε)² + ε², so

    ε = (1 − √(2c − 1)) / 2        (c in [0.5, 1]; c = 1 gives 0, c = 0.5 gives 0.5)

which is what robust DPO's `label_smoothing` is: the probability that a preference label is
flipped (Chowdhury et al. 2024). `method.label_smoothing = "from-consistency"` sets it from the
self-consistency c measured on the review the pairs come from, pooled over its raters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tunelab.engine.errors import SpecError
from tunelab.engine.format import percent
from tunelab.engine.review import stats as rs
from tunelab.engine.review.reviews import as_votes
from tunelab.engine.spec import Experiment
from tunelab.store import find_review, review_items, review_votes

FROM_CONSISTENCY = "from-consistency"


@dataclass(frozen=True)
class Smoothing:
    """The label smoothing a dpo stage trains with, and where it came from."""

    value: float
    consistency: float | None = None  # c, pooled over the raters (None: the file's number)
    repeats: int = 0  # the repeated items it was measured on
    source: str = ""  # review:NAME

    def words(self) -> str:
        if self.consistency is None:
            return f"label smoothing {self.value:.3g} (method.label_smoothing)"
        return (f"label smoothing {self.value:.3g} from consistency: the raters of "
                f"{self.source} judged {percent(self.consistency)} of {self.repeats} swapped "
                f"repeats alike, so ε = (1 − √(2c − 1))/2 = {self.value:.3g}")


def flip_rate(consistency: float) -> float:
    """ε from the share c of repeats judged alike (see the module); c ≤ 0.5 gives 0.5."""
    c = min(1.0, max(0.5, consistency))
    return (1 - math.sqrt(2 * c - 1)) / 2


def consistency(store: Path, name: str) -> tuple[int, float]:
    """(repeated items judged, share judged alike) over every rater of a review."""
    review = find_review(store, name)
    if review is None:
        raise SpecError(f"method.preferences: no review {name!r} in {store}")
    per_rater = rs.self_consistency(as_votes(review_items(store, review.id),
                                             review_votes(store, review.id)))
    judged = sum(n for n, _ in per_rater.values())
    alike = sum(n * share for n, share in per_rater.values())
    return judged, (alike / judged if judged else math.nan)


def smoothing(exp: Experiment, store: Path) -> Smoothing:
    """The label smoothing of a dpo stage: the file's number, or measured from its review's
    repeats; a SpecError says why it cannot be measured, and what to do."""
    method = exp.method
    if method.label_smoothing != FROM_CONSISTENCY:
        return Smoothing(float(method.label_smoothing))
    source = str(method.preferences)
    name = source.split(":", 1)[1]
    repeats, c = consistency(store, name)
    if not repeats:
        raise SpecError(
            f'method.label_smoothing = "{FROM_CONSISTENCY}": no rater of {source} has voted on '
            "an item and on its repeat (about a tenth of the items come back later with the "
            f"sides swapped): vote on to them (`tunelab review {name}`), or give the share of "
            "flipped votes as a number", "no consistency measured")
    if c <= 0.5:
        raise SpecError(
            f"method.label_smoothing: the raters of {source} judged only {percent(c)} of "
            f"{repeats} swapped repeats alike: no better than coin flips (ε = 0.5), so there "
            "is no preference to learn from these votes", "votes as good as random")
    return Smoothing(flip_rate(c), c, repeats, source)
