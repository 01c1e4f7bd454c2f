"""Votes a review needs before its ratings separate every model, in the random and the adaptive
order: simulated raters (Bradley–Terry with the true strengths below) on reviews of 3, 5 and 8
models, the real schedule, order and ratings (`tunelab.engine.review.simulate`).

Run: python bench/bench_review.py [--seeds 6] [--prompts 1200]
The strengths are 150 rating points apart (a 70 % win share between neighbours). A run that
does not separate them within the review's items counts as every item voted ("≥ N").
"""

from __future__ import annotations

import argparse
import statistics
import time

from tunelab.engine.review.simulate import votes_to_separate


def strengths(n: int, step: float = 150.0) -> dict[str, float]:
    return {f"m{k}": 1000 + step * (n - 1) / 2 - step * k for k in range(n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=1200)
    parser.add_argument("--models", type=int, nargs="*", default=[3, 5, 8])
    args = parser.parse_args()
    print(f"{'models':>6} {'order':>9} {'median':>7} {'mean':>7}  votes to separation per seed")
    for n in args.models:
        for order in ("random", "adaptive"):
            started = time.perf_counter()
            found = [votes_to_separate(strengths(n), order, seed, prompts=args.prompts)
                     for seed in range(args.seeds)]
            counted = [args.prompts if v is None else v for v in found]
            runs = " ".join(f"≥{args.prompts}" if v is None else str(v) for v in found)
            print(f"{n:>6} {order:>9} {statistics.median(counted):>7.0f} "
                  f"{statistics.mean(counted):>7.0f}  {runs}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
