"""Which importance evaluator names the right parameter on small sweeps: synthetic Optuna studies
of 8, 10 and 12 trials whose answer is known, many seeds each, the evaluators side by side.

Run: python bench/bench_importance.py [--quick] [--json PATH]
Cases (lr: log-uniform 1e-5..1e-2; weight decay and method.kind ∈ {full, lora} are noise unless
said):
- numeric: the learning rate drives the objective (1 → 3 across its range, noise 0.05);
- categorical: method.kind splits the trials as the quickstart's does (full 0.74–0.91, lora
  2.8–3.9), the learning rate adds 0.2 across its range;
- conditional: method.r ∈ {4, 8, 16, 32}, sampled in lora trials only, drives their objective;
  rated among the trials that sampled it (what tunelab's importance does for such a key).
A hit: the evaluator's largest share is the driver. Counts are exact (no timing): not disturbed
by load.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, write_rows  # noqa: E402

KINDS = CategoricalDistribution(["full", "lora"])
RANKS = CategoricalDistribution([4, 8, 16, 32])


def trials(case: str, n: int, seed: int) -> tuple[list[Any], str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lr, wd = 10 ** rng.uniform(-5, -2), rng.uniform(0, 0.1)
        kind = ("full", "lora")[i % 2] if i < 2 else rng.choice(["full", "lora"])  # both kinds
        params: dict[str, Any] = {"train.learning_rate": lr, "train.weight_decay": wd,
                                  "method.kind": kind}
        dists: dict[str, Any] = {"train.learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
                                 "train.weight_decay": FloatDistribution(0, 0.1),
                                 "method.kind": KINDS}
        lr_part = (math.log10(lr) + 5) / 3  # 0 … 1 across the range
        if case == "numeric":
            value = 1 + 2 * lr_part + rng.gauss(0, 0.05)
        elif case == "categorical":
            base = rng.uniform(0.74, 0.91) if kind == "full" else rng.uniform(2.8, 3.9)
            value = base + 0.2 * lr_part
        elif kind == "lora":
            r = rng.choice([4, 8, 16, 32])
            params["method.r"], dists["method.r"] = r, RANKS
            value = 1 + 2 * (math.log2(r) - 2) / 3 + rng.gauss(0, 0.05)
        else:
            value = 1.5 + rng.gauss(0, 0.05)
        out.append(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    driver = {"numeric": "train.learning_rate", "categorical": "method.kind"}.get(case, "method.r")
    return out, driver


def evaluators(n: int) -> dict[str, Any]:
    quantile = min(0.5, max(0.1, 3 / n))  # at least three trials in PED-ANOVA's "good" set
    return {"fanova": optuna.importance.FanovaImportanceEvaluator(seed=0),
            "ped-anova": optuna.importance.PedAnovaImportanceEvaluator(),
            "ped-anova 3/n": optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)}


def top(found: list[Any], evaluator: Any, conditional: bool) -> str | None:
    if conditional:  # among the trials that sampled method.r, with their varying parameters
        found = [t for t in found if "method.r" in t.params]
    study = optuna.create_study()
    study.add_trials(found)
    params = ["method.r", "train.learning_rate", "train.weight_decay"] if conditional else None
    try:
        shares = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    except (RuntimeError, ValueError):
        return None
    best = max(shares, key=shares.get) if shares else None
    return best if best is not None and shares[best] > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 seeds per case instead of 30")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    seeds = range(10 if args.quick else 30)
    rows: list[Row] = []
    print(f"{'case':>12} {'trials':>6}  hits of {len(seeds)} sweeps")
    for case in ("numeric", "categorical", "conditional"):
        for n in (8, 10, 12):
            hits: dict[str, int] = {}
            for seed in seeds:
                found, driver = trials(case, n, seed)
                for name, evaluator in evaluators(n).items():
                    hit = top(found, evaluator, case == "conditional") == driver
                    hits[name] = hits.get(name, 0) + hit
            print(f"{case:>12} {n:>6}  " + "  ".join(f"{k} {v}" for k, v in hits.items()),
                  flush=True)
            rows.append(Row(f"importance names the driver: {case}, {n} trials",
                            hits["fanova"] / len(seeds), hits["ped-anova"] / len(seeds),
                            "share of sweeps", note=f"plain: PED-ANOVA at its default quantile; "
                            f"at 3/n it found {hits['ped-anova 3/n']}/{len(seeds)}"))
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
