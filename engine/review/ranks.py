"""The rank rule, the one every surface uses (the statistics screen, `tunelab review stats`, the
`leaderboard` view, the voting screen's stop and the preference sweep's placement).

Two models are ranked apart only when a test of their rating difference rejects "equal" with
the Holm correction over every pair of their comparison group, at 5 % familywise: with equal
models, the chance that any pair of the group is ranked apart is at most 5 %.

The test of one pair is the score (Rao) test of θa = θb in the Bradley–Terry fit of the whole
group: the ratings are fitted with the two held equal, and the slope of the likelihood there,
over its standard error, says how far the votes pull the two apart. For two models alone it is
exactly the Wilson interval of the win share excluding one half. Unlike a Wald test (the fitted
difference over its standard error), it exists when one model won every vote (the fitted
difference is then infinite), and unlike the likelihood-ratio test it does not call three
unanimous votes of three significant. Holm rather than a simultaneous bootstrap band: it needs
no resampling, so it is exact to recompute after every vote, and it holds at the smallest counts
where a bootstrap has too few distinct draws to say anything. Holm over every pair rather than
over the neighbours a ranking claims costs nothing at the stop: the far pairs have the smallest
p and are tested first, so the neighbours meet the levels ALPHA / (n − 1), …, ALPHA that Holm
over the n − 1 neighbours alone would give (simulated, 5 models 150 points apart: the two
stopped after 185.9 votes in the mean of the same 20 reviews).

A model's rank is a range, as Chatbot Arena shows it: from 1 + the models ranked apart above
it to the group's size − the models ranked apart below it ("rank 1–3"). Within a group the
models are listed by a penalised fit (a weak prior keeps every strength finite, so a model
that won every vote still has a place in the order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tunelab.engine.review import fit as bt
from tunelab.engine.review import graph
from tunelab.engine.review.votes import Vote, outcomes

ALPHA = 0.05  # familywise, per comparison group
PRIOR = 0.05  # the order's weak Gaussian prior (logits⁻²): finite for any votes
NULL_PRIOR = 1e-4  # keeps a null fit finite where a model won every vote; moves nothing else
# A pair leaves the adaptive order's doubts only when ranked apart with this much to spare (its
# Holm-adjusted p at most ALPHA · SETTLED), and then still weighs SPARE (see `order`): a pair
# ranked apart by a chance lead and then given no more votes would keep that lead. Simulated
# with 3 equal models, 1,000 reviews looked at after 100 votes: some pair ranked apart in 5.8 %
# of them at 0.2, 4.5 % at 0.1 (4.1 % in the random order); votes to rank 5 models 150 points
# apart (30 seeds): 172 and 185. Weighing the pairs ranked apart but not with room to spare at
# 0.3 instead of 1 took 132 votes, and ranked equal models apart in 8 % of reviews
SETTLED = 0.1
SPARE = 0.02  # the weight of a pair ranked apart with room to spare in the adaptive order


@dataclass(frozen=True)
class PairTest:
    high: str  # the model the votes lean to
    low: str
    statistic: float  # the score statistic, χ² with one degree of freedom under "equal"
    p: float
    separated: bool  # rejected by Holm at 5 % over the group's pairs
    adjusted: float = 1.0  # the Holm-adjusted p (separated: at most ALPHA)
    # p times Holm's multiplier for its place (the adjusted p before the running maximum): over
    # ALPHA, how far p is from the level Holm tests this pair at; the pair with the largest is
    # the one that holds the others back
    scaled: float = 1.0


@dataclass(frozen=True)
class Group:
    models: tuple[str, ...]  # strongest first, by the penalised fit
    outcomes: bt.Outcomes = field(compare=False)
    strength: np.ndarray = field(compare=False)  # penalised logits, in `outcomes.models` order
    info: np.ndarray = field(compare=False)  # its Fisher information (with the prior)
    pending: int = 0  # pairs of the group not yet ranked apart

    def level(self) -> float:
        """The level the next pair of the group would be tested at by Holm."""
        return ALPHA / max(self.pending, 1)


@dataclass(frozen=True)
class Ranking:
    groups: tuple[Group, ...]  # the comparison groups, the most models first
    tests: dict[frozenset[str], PairTest]
    ranks: dict[str, tuple[int, int]]  # best and worst rank in the model's group

    def separated(self, a: str, b: str) -> bool:
        found = self.tests.get(frozenset((a, b)))
        return found is not None and found.separated

    def neighbours(self) -> list[tuple[str, str]]:
        """Each pair of models next to each other in a group's order, the higher first."""
        return [(x, y) for g in self.groups for x, y in zip(g.models, g.models[1:], strict=False)]

    def in_doubt(self, models: Sequence[str] = ()) -> list[tuple[str, str]]:
        """The comparisons more votes could still settle, which steer the adaptive order: each
        pair of a group not ranked apart with room to spare (see SETTLED; once the far pairs
        are settled, these are the neighbours of the rank order), and a pair for each two
        groups no vote links yet (their first models; a model of `models` without a counted
        vote is a group of its own)."""
        found = [(min(pair), max(pair)) for pair, t in self.tests.items()
                 if t.adjusted > ALPHA * SETTLED]
        firsts = [g.models[0] for g in self.groups] + sorted(set(models) - set(self.ranks))
        return sorted(found) + list(zip(firsts, firsts[1:], strict=False))

    def bottleneck(self, models: Sequence[str] = ()) -> tuple[str, str] | None:
        """Once the order is settled but for its neighbours (one group holding every model,
        every pair that is not a neighbour ranked apart with room to spare, see SETTLED), the
        neighbouring pair in doubt whose p is furthest above the level Holm tests it at: the
        pair the stop waits on. None before that, and when no neighbour is in doubt."""
        if len(self.groups) != 1 or not set(models) <= set(self.ranks):
            return None
        near = {frozenset(pair) for pair in self.neighbours()}
        if not all(t.adjusted <= ALPHA * SETTLED for pair, t in self.tests.items()
                   if pair not in near):
            return None
        doubt = [pair for pair in near if self.tests[pair].adjusted > ALPHA * SETTLED]
        if not doubt:
            return None
        worst = max(doubt, key=lambda pair: (self.tests[pair].scaled, sorted(pair)))
        return min(worst), max(worst)

    def steering(self, models: Sequence[str] = ()) -> list[tuple[str, str, float]]:
        """The contrasts that steer the adaptive order, each with its weight (see `order`):
        the bottleneck alone once there is one (`bottleneck`); before that each comparison in
        doubt (`in_doubt`) weighted 1, and each pair ranked apart with room to spare weighted
        SPARE, so that it is still asked about now and then."""
        if (worst := self.bottleneck(models)) is not None:
            return [(*worst, 1.0)]
        found = {(min(pair), max(pair)): SPARE for pair in self.tests}
        found.update(dict.fromkeys(self.in_doubt(models), 1.0))
        return [(a, b, w) for (a, b), w in sorted(found.items())]

    def settled(self, models: Sequence[str] = ()) -> bool:
        """One group holding every model (of `models` too), every neighbour ranked apart: each
        model has a rank of its own."""
        return (len(self.groups) == 1 and set(models) <= set(self.ranks)
                and all(lo == hi for lo, hi in self.ranks.values()))

    def group_of(self, model: str) -> Group | None:
        return next((g for g in self.groups if model in g.models), None)


def text(rank: tuple[int, int]) -> str:
    """A rank range as a reader sees it: "2", or "1–3" when the votes allow any of those."""
    best, worst = rank
    return str(best) if best == worst else f"{best}–{worst}"


def pair_tests(o: bt.Outcomes, pairs: list[tuple[int, int]],
               start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score statistics, leans, null fits) of θa = θb for each pair (a, b): lean > 0 when the
    votes pull a above b; `start` one strength vector or a row per pair. Every pair at once:
    row k of each array belongs to pairs[k]."""
    null = bt.held_equal(o, pairs, prior=NULL_PRIOR, start=start)
    n, design = len(o.models), o.design
    p = 1 / (1 + np.exp(np.clip(-(null @ design.T), -700, 700)))  # P(left wins), per fit
    u = (o.w * (o.s - p)) @ design  # the score of each null fit
    info = np.einsum("kn,fk,km->fnm", design, o.w * p * (1 - p), design)
    ones = np.ones((n, n)) / n  # mean-zero strengths, as `bt.covariance` pins them
    sigma = np.linalg.inv(info + ones + 1e-9 * np.eye(n)) - ones
    a, b = (np.array([pair[c] for pair in pairs], dtype=int) for c in (0, 1))
    rows = np.arange(len(pairs))
    leans = (u[rows, a] - u[rows, b]) / 2  # at the null fit the slope lies along e_a − e_b
    variance = sigma[rows, a, a] + sigma[rows, b, b] - 2 * sigma[rows, a, b]
    return leans * leans * variance, leans, null


def p_value(statistic: float) -> float:
    """The upper tail of χ² with one degree of freedom."""
    return math.erfc(math.sqrt(max(statistic, 0.0) / 2))


def holm_scaled(p: dict[frozenset[str], float]) -> dict[frozenset[str], float]:
    """Each p times Holm's multiplier for its place: the smallest times m, the next times
    m − 1, … (a pair is tested at ALPHA over its multiplier), in the order of the p-values."""
    ordered = sorted(p.items(), key=lambda kv: (kv[1], sorted(kv[0])))
    return {pair: (len(ordered) - k) * value
            for k, (pair, value) in enumerate(ordered)}


def holm(p: dict[frozenset[str], float]) -> dict[frozenset[str], float]:
    """Holm's step-down adjusted p-values: a pair is rejected at ALPHA familywise when its
    adjusted p is at most ALPHA (the smallest p against ALPHA / m, the next against
    ALPHA / (m − 1), … until the first that fails)."""
    adjusted, running = {}, 0.0
    for pair, value in holm_scaled(p).items():
        running = max(running, min(1.0, value))
        adjusted[pair] = running
    return adjusted


def rank(votes: Sequence[Vote], ties: str = "half") -> Ranking:
    """The rank rule on a review's votes (see the module docstring)."""
    tally = Tally()
    for left, right, score in outcomes(votes, ties):
        tally.add(left, right, score)
    return tally.ranking()


class Tally:
    """The rank rule kept up to date one vote at a time (a simulated review asks for a ranking
    after every vote): the votes counted per pair of models, the comparison groups, and each
    group's last fits, which start the next ranking's fits. A vote moves the fits little, so
    Newton needs three or four steps from them where a cold start needs dozens; the ranking is
    the one `rank` gives on the same votes (the fits are the same maxima)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[float]] = {}  # (a, b), a < b: [votes, a's score]
        self._groups: list[list[str]] | None = None
        self._fits: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def add(self, left: str, right: str, score: float) -> None:
        """One counted verdict: `score` is the left model's (1 won, ½ tie, 0 lost)."""
        key, own = ((left, right), score) if left < right else ((right, left), 1 - score)
        if key not in self.counts:
            self.counts[key] = [0.0, 0.0]
            self._groups = None  # a new edge of the comparison graph
        self.counts[key][0] += 1
        self.counts[key][1] += own

    def outcomes(self, members: Sequence[str]) -> bt.Outcomes:
        """The group's votes as one kind per pair (a tie is half a win: the likelihood needs
        only each pair's votes and score)."""
        index = {m: k for k, m in enumerate(members)}
        kept = [(index[a], index[b], n, s) for (a, b), (n, s) in self.counts.items()
                if a in index]
        i, j, n, s = (np.array([k[c] for k in kept], dtype=float) for c in range(4))
        return bt.Outcomes(tuple(members), i.astype(int), j.astype(int), s / np.maximum(n, 1),
                           n)

    def ranking(self) -> Ranking:
        if self._groups is None:
            models = sorted({m for pair in self.counts for m in pair})
            self._groups = graph.comparison_groups(models, list(self.counts))
        groups, tests, ranks = [], {}, {}
        for members in self._groups:
            group, group_tests, fits = _rank_group(self.outcomes(members),
                                                   self._fits.get(tuple(members)))
            self._fits[tuple(members)] = fits
            groups.append(group)
            tests.update(group_tests)
            for m in group.models:
                above = sum(1 for t in group_tests.values() if t.separated and t.low == m)
                below = sum(1 for t in group_tests.values() if t.separated and t.high == m)
                ranks[m] = (1 + above, len(members) - below)
        return Ranking(tuple(groups), tests, ranks)


def _rank_group(o: bt.Outcomes, warm: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[Group, dict[frozenset[str], PairTest], tuple[np.ndarray, np.ndarray]]:
    """The group's order, its pair tests and the fits that found them (the penalised fit and
    the null fit of each pair), which `warm` (the same group's fits before the last vote)
    starts from."""
    strength = bt.fit(o, prior=PRIOR, start=None if warm is None else warm[0])
    info = bt.information(o, strength) + PRIOR * np.eye(len(o.models))
    start = bt.fit(o, prior=NULL_PRIOR, start=strength) if warm is None else warm[1]
    names = o.models
    pairs = [(a, b) for a in range(len(names)) for b in range(a + 1, len(names))]
    statistics, leans, nulls = pair_tests(o, pairs, start)
    raw: dict[frozenset[str], tuple[float, float, str, str]] = {}
    for (a, b), statistic, lean in zip(pairs, statistics, leans, strict=True):
        high, low = (names[a], names[b]) if lean >= 0 else (names[b], names[a])
        raw[frozenset((names[a], names[b]))] = (float(statistic), p_value(statistic), high, low)
    scaled = holm_scaled({pair: v[1] for pair, v in raw.items()})
    adjusted = holm({pair: v[1] for pair, v in raw.items()})
    tests = {pair: PairTest(high, low, statistic, p, adjusted[pair] <= ALPHA, adjusted[pair],
                            scaled[pair]) for pair, (statistic, p, high, low) in raw.items()}
    order = sorted(range(len(names)), key=lambda k: (-strength[k], names[k]))
    rejected = sum(1 for t in tests.values() if t.separated)
    group = Group(tuple(names[k] for k in order), o, strength, info, len(raw) - rejected)
    return group, tests, (strength, nulls)


def compare(votes: Sequence[Vote], a: str, b: str, ties: str = "half") -> PairTest | None:
    """The rank rule's test of one comparison made alone (a preference sweep placing a trial
    against its opponent): the same score test on the fit of their whole group, with one
    comparison nothing to correct for. None when no chain of votes links the two."""
    found = outcomes(votes, ties)
    models = sorted({m for x, y, _ in found for m in (x, y)})
    for members in graph.comparison_groups(models, [(x, y) for x, y, _ in found]):
        if a in members and b in members:
            inside = set(members)
            o = bt.outcomes_of([x for x in found if x[0] in inside], members)
            i, j = members.index(a), members.index(b)
            start = bt.fit(o, prior=NULL_PRIOR)
            (statistic,), (lean,), _ = pair_tests(o, [(i, j)], start)
            p = p_value(statistic)
            high, low = (a, b) if lean >= 0 else (b, a)
            return PairTest(high, low, float(statistic), p, p <= ALPHA)
    return None
