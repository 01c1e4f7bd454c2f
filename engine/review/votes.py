"""What a vote counts for: the one definition every statistic of a review starts from.

A vote compares the model shown on the left with the one on the right: `a` (left better),
`b` (right better), `tie`, `both_bad`, `both_good` or `skip`.

- A skip counts nowhere.
- A tie, a both-bad and a both-good are the same verdict for the ratings: neither answer is
  better (they differ for a kto stage, which learns from each answer alone). With
  `ties = "half"` (the default) each counts as half a win for both models; with
  `ties = "ignore"` they are left out of ratings and win rates (they are still counted and
  shown).
- A repeat (an item shown again later with the sides swapped) measures a rater's consistency
  and is not a second vote: a rater's verdicts on an item and its repeat count once. When
  they agree, that verdict counts; when they disagree, the item counts as a tie, since the
  rater could not tell the two answers apart reliably; a repeat whose original the rater
  skipped counts as the rater's one verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

Z95 = 1.959963984540054
DECISIVE = {"a", "b"}
HALF = {"tie", "both_bad", "both_good"}
TIES = ("half", "ignore")
SWAP = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad", "both_good": "both_good"}
# The share of items shown again later with the sides swapped, to measure consistency: a new
# review repeats about this share of its items, and the adaptive order keeps a rater's
# repeats at about this share of their votes.
REPEAT_SHARE = 0.1
# Each choice a vote can make, as a sentence says it ("voted: A is better", "you voted a tie"),
# on the review and the arena screens alike
CHOICE_WORDS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both bad",
                "both_good": "both good", "skip": "skipped"}


@dataclass(frozen=True)
class Vote:
    item: int
    rater: str
    choice: str  # a | b | tie | both_bad | both_good | skip
    left: str  # the model ref shown as A
    right: str  # the model ref shown as B
    repeat_of: int | None = None  # the item this one repeats with sides swapped
    review: str = ""  # item numbers are per review: pooled votes tell them apart by this
    length: float = 0.0  # (len left − len right) / (len left + len right) of the two answers


def check_ties(ties: str) -> None:
    if ties not in TIES:
        from tunelab.engine.errors import DataError

        raise DataError(f"ties = {ties!r}: expected one of {', '.join(TIES)}", "bad setting")


def ties_words(ties: str) -> str:
    """How ties count, as every table says it."""
    return ("ties and both-bad count half a win each" if ties == "half"
            else "ties and both-bad left out")


def counted(votes: Sequence[Vote]) -> list[Vote]:
    """One verdict per rater and item, repeats folded into their originals (see above); the
    original's sides are kept. Skips are dropped."""
    originals = {(v.review, v.rater, v.item): v for v in votes
                 if v.repeat_of is None and v.choice != "skip"}
    repeats = {(v.review, v.rater, v.repeat_of): v for v in votes
               if v.repeat_of is not None and v.choice != "skip"}
    out = []
    for key, v in originals.items():
        again = repeats.get(key)
        agrees = again is None or SWAP[again.choice] == v.choice
        out.append(v if agrees else replace(v, choice="tie"))
    out += [r for key, r in repeats.items() if key not in originals]
    return out


def first_verdicts(votes: Sequence[Vote]) -> list[Vote]:
    """Each rater's first verdict on each item, as it was shown (the original, or the repeat
    when the original was skipped): what the side-bias test looks at."""
    judged = {(v.review, v.rater, v.item) for v in votes
              if v.repeat_of is None and v.choice != "skip"}
    return [v for v in votes if v.choice != "skip" and
            (v.repeat_of is None or (v.review, v.rater, v.repeat_of) not in judged)]


def outcomes(votes: Sequence[Vote], ties: str = "half") -> list[tuple[str, str, float]]:
    """(left, right, score of left) for every counted verdict."""
    check_ties(ties)
    found = []
    for v in counted(votes):
        if v.choice == "a":
            found.append((v.left, v.right, 1.0))
        elif v.choice == "b":
            found.append((v.left, v.right, 0.0))
        elif v.choice in HALF and ties == "half":
            found.append((v.left, v.right, 0.5))
    return found


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes may be fractional: ties count half)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
