"""Votes a review needs before its ratings separate every model, in the random and the adaptive
order: simulated raters (Bradley–Terry with the true strengths below) on reviews of 3, 5 and 8
models, the real schedule, order and ratings (`tunelab.engine.review.simulate`).

Run: python bench/bench_review.py [--seeds 6] [--prompts 1200] [--quick] [--json PATH]
The strengths are 150 rating points apart (a 70 % win share between neighbours). A run that
does not separate them within the review's items counts as every item voted ("≥ N").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from tunelab.engine.review.simulate import votes_to_separate

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, write_rows  # noqa: E402


def strengths(n: int, step: float = 150.0) -> dict[str, float]:
    return {f"m{k}": 1000 + step * (n - 1) / 2 - step * k for k in range(n)}


def _rows(means: dict[tuple[int, str], float], models: list[int], seeds: int,
          prompts: int) -> list[Row]:
    """The adaptive order against the random one: the votes a review of n models needs."""
    rows = []
    for n in models:
        adaptive, plain = means[n, "adaptive"], means[n, "random"]
        rows.append(Row(f"review: votes to separate {n} models, adaptive vs random order "
                        f"(mean of {seeds} seeds, ≤ {prompts:,} items)", adaptive, plain,
                        "votes", "≤ random", adaptive <= plain))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="6 (3 with --quick)")
    parser.add_argument("--prompts", type=int, default=1200)
    parser.add_argument("--models", type=int, nargs="*", default=None,
                        help="3 5 8 (5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and reviews")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    # --quick: about 20 s of CPU. Five models, not three: with three the random order already
    # separates them in about 100 votes and the adaptive one gains nothing (measured 108 vs 100)
    args.seeds = args.seeds or (3 if args.quick else 6)
    args.models = args.models or ([5] if args.quick else [3, 5, 8])
    # the mean over seeds for the report: with the few seeds of --quick a median is one seed
    means: dict[tuple[int, str], float] = {}
    print(f"{'models':>6} {'order':>9} {'median':>7} {'mean':>7}  votes to separation per seed")
    for n in args.models:
        for order in ("random", "adaptive"):
            started = time.perf_counter()
            found = [votes_to_separate(strengths(n), order, seed, prompts=args.prompts)
                     for seed in range(args.seeds)]
            counted = [args.prompts if v is None else v for v in found]
            means[n, order] = statistics.mean(counted)
            runs = " ".join(f"≥{args.prompts}" if v is None else str(v) for v in found)
            print(f"{n:>6} {order:>9} {statistics.median(counted):>7.0f} "
                  f"{statistics.mean(counted):>7.0f}  {runs}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_rows(args.json, _rows(means, args.models, args.seeds, args.prompts))


if __name__ == "__main__":
    main()

