"""The review statistics, simulated: what the ranks claim and what they cost in votes.

Simulated raters vote as Bradley–Terry says with known strengths, on the real schedule, with the
real order and the real rank rule (`tunelab.engine.review.simulate`). These figures are counts
over seeded simulations, not timings: load on the machine does not change them.

1. Votes to separate: strengths 150 rating points apart (a 70 % win share between neighbours),
   3, 5 and 8 models; votes until the rank rule gives every model a rank of its own. Three
   orders on the same seeds (paired: the same items and the same rater's dice): random, the
   adaptive order, and the old rule (this repository's order before the D-optimal step: pairs
   where one model won every vote and groups no vote links first, else the vote that adds most
   to the log-determinant of the whole Fisher information). A review holds enough items that no
   run is capped. Also: how often the order was wrong when the rank rule settled.
2. False separations: equal models (3 and 5), after 20, 50 and 100 votes, the share of reviews
   in which any pair is ranked apart: the rank rule (Holm over score tests of the differences)
   and the old rule (marginal intervals that do not overlap), in both orders.
3. Coverage: the share of models whose stated 95 % interval (or bound) holds its true rating
   (centred on the fitted part), equal models and 150 apart, 3 and 5 models, 20/50/100 votes.

Run: python bench/bench_review.py [--seeds 30] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.engine.review import order as orders
from tunelab.engine.review import ranks
from tunelab.engine.review.bradley_terry import ratings
from tunelab.engine.review.simulate import voting
from tunelab.engine.review.votes import Vote, outcomes, wilson

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, write_rows  # noqa: E402

ITEMS = {3: 600, 5: 1200, 8: 3000}  # enough that no run is capped
ORDERS = ("random", "adaptive", "old rule")


def strengths(n: int, step: float = 150.0) -> dict[str, float]:
    return {f"m{k}": 1000 + step * (n - 1) / 2 - step * k for k in range(n)}


def old_choose(items: Sequence[Any], votes: Sequence[Vote], rater: str, order: str = "adaptive",
               steer: Any = None) -> Any:
    """The old rule (before the D-optimal step on the contrasts in doubt), for comparison:
    repeats as now; a neighbouring pair where one model won every vote against the other, or
    two groups no vote links, first; else the pair whose vote adds most to log det of the whole
    Fisher information, log(1 + p(1 − p) var(θi − θj))."""
    mine = {v.item for v in votes if v.rater == rater}
    left = [i for i in items if i.item not in mine and i.repeat_of is None]
    if not left:
        return None
    models = sorted({m for i in items for m in (i.model_a, i.model_b)})
    theta, info = orders.quick_fit(votes, models)
    open_pairs = {frozenset((i.model_a, i.model_b)) for i in left}
    scores: dict[frozenset[str], list[float]] = {}
    for a, b, s in outcomes(votes):
        scores.setdefault(frozenset((a, b)), []).append(s if a < b else 1 - s)
    linked = {m for pair in scores for m in pair}
    bound = [frozenset(p) for p in orders.neighbours(models, theta)
             if not set(p) <= linked or len(set(scores.get(frozenset(p), [0.5]))) == 1
             and scores.get(frozenset(p), [0.5])[0] in (0.0, 1.0)]
    wanted = next((p for p in bound if p in open_pairs), None)
    if wanted is None:
        cov = np.linalg.inv(info)
        index = {m: k for k, m in enumerate(models)}

        def gain(pair: frozenset[str]) -> tuple[float, list[str]]:
            i, j = (index[m] for m in sorted(pair))
            p = 1 / (1 + math.exp(theta[j] - theta[i]))
            return p * (1 - p) * (cov[i, i] + cov[j, j] - 2 * cov[i, j]), sorted(pair)

        wanted = max(open_pairs, key=gain)
    return next(i for i in left if frozenset((i.model_a, i.model_b)) == wanted)


CHOOSERS = {"random": ("random", orders.choose), "adaptive": ("adaptive", orders.choose),
            "old rule": ("adaptive", old_choose)}


def to_separate(n: int, how: str, seed: int, items: int) -> tuple[int | None, bool]:
    """(votes until every model has a rank of its own, or None; whether that order was right)."""
    truth = strengths(n)
    order, choose = CHOOSERS[how]
    for votes, ranking in voting(truth, order, seed, items, choose):
        if ranking.settled(list(truth)):
            found = list(ranking.groups[0].models)
            return len(votes), found == sorted(truth, key=lambda m: -truth[m])
    return None, True


def spread(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" \
        if len(values) > 1 else f"{values[0]:.1f}"


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of a − b with a 95 % t interval."""
    from scipy.stats import t

    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.mean(d)
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def separation(models: list[int], seeds: int, prompts: int | None) -> list[Row]:
    print("\n## Votes to separate (150 rating points apart; mean ± sd over seeds)")
    print(f"{'models':>6} {'order':>9} {'votes':>15} {'capped':>6} {'wrong order':>11}  "
          "per seed")
    rows = []
    for n in models:
        items = prompts or ITEMS[n]
        found: dict[str, list[float]] = {}
        for how in ORDERS:
            started = time.perf_counter()
            runs = [to_separate(n, how, seed, items) for seed in range(seeds)]
            found[how] = [items if v is None else v for v, _ in runs]
            capped = sum(v is None for v, _ in runs)
            wrong = sum(not right for _, right in runs)
            print(f"{n:>6} {how:>9} {spread(found[how]):>15} {capped:>6} {wrong:>11}  "
                  f"{' '.join(str(v) for v, _ in runs)}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)
        for other in ("random", "old rule"):
            mean, low, high = paired(found["adaptive"], found[other])
            cut = -mean / statistics.mean(found[other])
            print(f"{n:>6} adaptive − {other}: {mean:+.1f} votes (95 % paired interval "
                  f"{low:+.1f} … {high:+.1f}), {cut:.0%} fewer")
        adaptive, plain = statistics.mean(found["adaptive"]), statistics.mean(found["random"])
        target = {3: 70, 5: 150, 8: 450}.get(n)
        _, _, high = paired(found["adaptive"], found["random"])
        met = adaptive <= target if target else adaptive <= plain
        if n >= 5 and target:  # bool(): the interval's end is a numpy float, JSON wants a bool
            met = bool(met and adaptive <= 0.7 * plain and high < 0)
        rows.append(Row(f"review: votes to separate {n} models, adaptive vs random order "
                        f"(mean of {seeds} seeds, ≤ {items:,} items)", adaptive, plain, "votes",
                        f"≤ {target}" + (", ≥ 30 % under random" if n >= 5 else "")
                        if target else "≤ random", met,
                        statistics.stdev(found["adaptive"]) if seeds > 1 else None,
                        statistics.stdev(found["random"]) if seeds > 1 else None))
    return rows


def any_apart_old(votes: list[Vote]) -> bool:
    """The old rule: two models ranked apart when their marginal intervals do not overlap."""
    found = [r for r in ratings(votes, bootstrap=200) if r.rating is not None]
    return any(x.group == y.group and (x.low > y.high or y.low > x.high)
               for x in found for y in found if x.model < y.model)


CHECKS = (20, 50, 100)  # votes at which a simulated review is looked at


def checkpoints(truth: dict[str, float], how: str, seed: int) -> dict[int, list[Vote]]:
    """One simulated review per seed, looked at after 20, 50 and 100 votes."""
    order, choose = CHOOSERS[how]
    found: dict[int, list[Vote]] = {}
    for votes, _ in voting(truth, order, seed, 2 * max(CHECKS), choose):
        if len(votes) in CHECKS:
            found[len(votes)] = list(votes)
        if len(votes) >= max(CHECKS):
            break
    return found


def rate(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k / n:.1%} ({low:.1%}–{high:.1%})"


def false_separations(seeds: int) -> list[Row]:
    print(f"\n## False separations: equal models, any pair ranked apart ({seeds} seeds per "
          "cell; Wilson 95 % interval)")
    print(f"{'models':>6} {'votes':>5} {'order':>9} {'rank rule':>18} {'old rule':>18}")
    rows = []
    for n in (3, 5):
        equal = strengths(n, 0.0)
        for how in ORDERS:
            new = dict.fromkeys(CHECKS, 0)
            old = dict.fromkeys(CHECKS, 0)
            for seed in range(seeds):
                for count, votes in checkpoints(equal, how, seed).items():
                    new[count] += any(t.separated for t in ranks.rank(votes).tests.values())
                    old[count] += any_apart_old(votes)
            for count in CHECKS:
                print(f"{n:>6} {count:>5} {how:>9} {rate(new[count], seeds):>18} "
                      f"{rate(old[count], seeds):>18}", flush=True)
                rows.append(Row(f"review: false separations, {n} equal models, {count} votes, "
                                f"{how} order ({seeds} seeds; rank rule vs old rule)",
                                new[count] / seeds, old[count] / seeds, "share", "≤ 5 %",
                                new[count] / seeds <= 0.05))
    return rows


def covered(found: list[Any], truth: dict[str, float], hits: dict[str, list[bool]]) -> None:
    """Adds whether each stated interval (or bound) holds the true rating, centred as the
    fitted part is, to `hits` by how the interval was found."""
    fitted = [r for r in found if r.finite]
    if not fitted:
        return
    centre = statistics.mean(truth[r.model] for r in fitted) - 1000
    for r in found:
        if r.method in hits:
            hits[r.method].append(r.low <= truth[r.model] - centre <= r.high)


def coverage(seeds: int) -> list[Row]:
    print(f"\n## Coverage of the stated 95 % intervals ({seeds} seeds per cell, random order)")
    print(f"{'models':>6} {'apart':>5} {'votes':>5} {'covered':>8} {'models':>6} "
          f"{'bootstrap':>9} {'profile':>9} {'bounds':>9}")
    rows = []
    for n in (3, 5):
        for step in (0.0, 150.0):
            truth = strengths(n, step)
            hits = {c: {"bootstrap": [], "profile": [], "pooled": []} for c in CHECKS}
            for seed in range(seeds):
                for count, votes in checkpoints(truth, "random", seed).items():
                    covered(ratings(votes, seed=seed), truth, hits[count])
            for count in CHECKS:
                every = [h for v in hits[count].values() for h in v]
                share = sum(every) / len(every)
                parts = [f"{sum(v) / len(v):.3f}" if v else "—" for v in hits[count].values()]
                print(f"{n:>6} {step:>5.0f} {count:>5} {share:>8.3f} {len(every):>6} "
                      + " ".join(f"{p:>9}" for p in parts), flush=True)
                rows.append(Row(f"review: coverage of the 95 % intervals, {n} models "
                                f"{step:.0f} apart, {count} votes ({seeds} seeds)", share, None,
                                "share", "0.93–0.97", 0.93 <= share <= 0.97))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="30 (3 with --quick)")
    parser.add_argument("--prompts", type=int, default=None,
                        help="items per review (default: enough that no run is capped)")
    parser.add_argument("--models", type=int, nargs="*", default=None,
                        help="3 5 8 (5 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="votes to separate only, with fewer seeds")
    parser.add_argument("--false-seeds", type=int, default=150,
                        help="seeds per cell of the false separations")
    parser.add_argument("--coverage-seeds", type=int, default=40)
    parser.add_argument("--only", choices=["separate", "false", "coverage"],
                        help="one part of the report (the three can run side by side)")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.quick else 30)
    models = args.models or ([5] if args.quick else [3, 5, 8])
    parts = ["separate"] if args.quick else [args.only] if args.only else \
        ["separate", "false", "coverage"]
    rows = separation(models, seeds, args.prompts) if "separate" in parts else []
    if "false" in parts:
        rows += false_separations(args.false_seeds)
    if "coverage" in parts:
        rows += coverage(args.coverage_seeds)
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
