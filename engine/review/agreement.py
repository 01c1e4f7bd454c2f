"""How far an LLM judge can stand in for a person: per judge, its agreement with each human
rater, its position preference and its length preference. The statistics screen, `review
stats` and `review judge` show them (engine.review.words writes them).

Agreement is counted on the items both judged, one verdict each (a human's item and its swapped
repeat count once: engine.review.votes.counted; the judge's vote already combines both orders).
Verdicts are a, b or tie ("both bad" and "both good" are ties here: neither answer is better).
With ties: the share of shared items given the same verdict, and Cohen's κ on those three
labels. Without ties: the share among the items both judged decisively, as MT-bench reports it.

Position preference: of the judge's decisive verdicts in single orders (each item twice), the
share that went to the answer shown first, with a two-sided binomial test; and how often the
two orders agreed. Length preference: of the decisive verdicts (the judge's combined votes, a
human's counted ones) between answers of different lengths, the share won by the longer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.engine.review.judge import ORDERS, is_judge
from tunelab.engine.review.votes import DECISIVE, Vote, counted
from tunelab.store import Judgement


def label(choice: str) -> str:
    """a, b or tie: what a verdict says about which answer is better."""
    return choice if choice in DECISIVE else "tie"


@dataclass(frozen=True)
class Agreement:
    judge: str
    human: str
    shared: int  # items both judged
    agreed: int  # … with the same verdict (ties counted)
    decisive: int  # items both judged decisively (a or b)
    agreed_decisive: int
    kappa: float  # Cohen's κ on a / b / tie over the shared items (NaN: undefined)

    @property
    def with_ties(self) -> float:
        return self.agreed / self.shared if self.shared else float("nan")

    @property
    def without_ties(self) -> float:
        return self.agreed_decisive / self.decisive if self.decisive else float("nan")


@dataclass(frozen=True)
class Leaning:
    """A rater's preference for a position or for length, beside how it was counted."""

    rater: str
    judged: int  # items judged in both orders (a human: 0)
    consistent: int  # … with the same verdict both times
    first_decisive: int  # decisive single-order verdicts
    first_wins: int  # … won by the answer shown first
    p_value: float  # two-sided binomial test of first_wins against one half
    length_decisive: int  # decisive verdicts between answers of different lengths
    longer_wins: int

    @property
    def share_first(self) -> float:
        return self.first_wins / self.first_decisive if self.first_decisive else float("nan")

    @property
    def share_longer(self) -> float:
        return self.longer_wins / self.length_decisive if self.length_decisive else float("nan")

    @property
    def share_consistent(self) -> float:
        return self.consistent / self.judged if self.judged else float("nan")


def verdicts(votes: Sequence[Vote]) -> dict[str, dict[tuple[str, int], Vote]]:
    """rater -> (review, item) -> the rater's one counted verdict there."""
    found: dict[str, dict[tuple[str, int], Vote]] = defaultdict(dict)
    for v in counted(votes):
        # a repeat judged without its original counts under the original's item
        found[v.rater][(v.review, v.item if v.repeat_of is None else v.repeat_of)] = v
    return found


def agreements(votes: Sequence[Vote]) -> list[Agreement]:
    """Each judge against each human, on the items both judged."""
    from tunelab.engine.review.stats import cohen_kappa

    by_rater = verdicts(votes)
    out = []
    for judge in sorted(r for r in by_rater if is_judge(r)):
        for human in sorted(r for r in by_rater if not is_judge(r)):
            shared = sorted(set(by_rater[judge]) & set(by_rater[human]))
            if not shared:
                continue
            mine = [_as_original(by_rater[judge][k]) for k in shared]
            theirs = [_as_original(by_rater[human][k]) for k in shared]
            decisive = [(a, b) for a, b in zip(mine, theirs, strict=True)
                        if a in DECISIVE and b in DECISIVE]
            out.append(Agreement(
                judge, human, len(shared), sum(a == b for a, b in zip(mine, theirs, strict=True)),
                len(decisive), sum(a == b for a, b in decisive), cohen_kappa(mine, theirs)))
    return out


def _as_original(v: Vote) -> str:
    """The verdict in the sides of the original item (a repeat shows them swapped)."""
    found = label(v.choice)
    if v.repeat_of is not None and found in DECISIVE:
        return "b" if found == "a" else "a"
    return found


def _longer(v: Vote) -> bool | None:
    """Whether the longer answer won a decisive verdict (None: not decisive, same length)."""
    if v.choice not in DECISIVE or v.length == 0:
        return None
    return (v.choice == "a") == (v.length > 0)


def leanings(votes: Sequence[Vote], judged: Sequence[Judgement]) -> list[Leaning]:
    """Every rater's position and length preference (a judge's position from both orders)."""
    from scipy.stats import binomtest

    by_rater = verdicts(votes)
    orders: dict[str, dict[int, dict[str, str | None]]] = defaultdict(lambda: defaultdict(dict))
    for j in judged:
        orders[j.rater][j.item][j.shown] = j.verdict
    out = []
    for rater in sorted(set(by_rater) | set(orders)):
        both = [o for o in orders[rater].values() if all(o.get(s) is not None for s in ORDERS)]
        singles = [(shown, verdict) for o in orders[rater].values() for shown, verdict in o.items()
                   if verdict in DECISIVE]
        if not orders[rater]:  # a human: each first verdict as it was shown
            singles = [(ORDERS[0], v.choice) for v in by_rater[rater].values()
                       if v.choice in DECISIVE]
        first = sum((verdict == "a") == (shown == ORDERS[0]) for shown, verdict in singles)
        longer = [w for w in map(_longer, by_rater[rater].values()) if w is not None]
        p = float(binomtest(first, len(singles), 0.5).pvalue) if singles else 1.0
        out.append(Leaning(rater, len(both), sum(o[ORDERS[0]] == o[ORDERS[1]] for o in both),
                           len(singles), first, p, len(longer), sum(longer)))
    return out


def self_disagreements(judged: Sequence[Judgement]) -> dict[str, set[int]]:
    """judge -> the items whose two orders it judged differently (its doubts)."""
    orders: dict[tuple[str, int], dict[str, str | None]] = defaultdict(dict)
    for j in judged:
        orders[(j.rater, j.item)][j.shown] = j.verdict
    found: dict[str, set[int]] = defaultdict(set)
    for (rater, item), o in orders.items():
        if all(o.get(s) is not None for s in ORDERS) and o[ORDERS[0]] != o[ORDERS[1]]:
            found[rater].add(item)
    return dict(found)


@dataclass(frozen=True)
class JudgeStats:
    agreements: list[Agreement]
    leanings: list[Leaning]

    @property
    def judged(self) -> bool:
        return any(is_judge(r.rater) for r in self.leanings)


RATERS = ("humans", "judges", "all")  # whose votes a fit of the ratings counts


def check_raters(raters: str) -> None:
    if raters not in RATERS:
        from tunelab.engine.errors import DataError

        raise DataError(f"raters = {raters!r}: expected one of {', '.join(RATERS)}", "bad setting")


def by_raters(votes: Sequence[Vote], raters: str = "humans") -> list[Vote]:
    """The votes of the people (the default), of the LLM judges, or of all."""
    check_raters(raters)
    if raters == "all":
        return list(votes)
    return [v for v in votes if is_judge(v.rater) == (raters == "judges")]


def judge_doubts(items: Sequence[Any], votes: Sequence[Vote], judged: Sequence[Judgement],
                 rater: str) -> list[Any]:
    """The items (ReviewItems) `rater` has not voted on where a judge doubts: first those whose
    two orders it judged differently, then those where its verdict contradicts the ratings the
    people's votes give now (it prefers the model they rate lower). A person's vote there says
    the most about whether the judge can be trusted, and about the models."""
    from tunelab.engine.review.bradley_terry import ratings

    mine = {v.item for v in votes if v.rater == rater}
    left = {i.item: i for i in items if i.item not in mine and i.repeat_of is None}
    unsure = set().union(*self_disagreements(judged).values()) & set(left)
    rated = {r.model: r.rating for r in ratings(by_raters(votes), bootstrap=0)
             if r.finite and r.rating is not None}
    against: set[int] = set()
    for j in judged:
        item = left.get(j.item)
        if item is None or j.verdict not in DECISIVE or j.item in unsure:
            continue
        won, lost = ((item.model_a, item.model_b) if j.verdict == "a"
                     else (item.model_b, item.model_a))
        if won in rated and lost in rated and rated[won] < rated[lost]:
            against.add(j.item)
    return [left[k] for k in left if k in unsure] + [left[k] for k in left if k in against]
