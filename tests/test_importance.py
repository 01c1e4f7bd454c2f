"""Parameter importance on small sweeps whose answer is known: real Optuna studies (trials added
with `create_trial`), 8-12 trials, read through tunelab's importance (fANOVA by default)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from tunelab.engine.run.importance import (
    DEFAULT_EVALUATOR,
    parameter_importance,
    study_importance,
)
from tunelab.engine.run.study import open_storage

LR = FloatDistribution(1e-5, 1e-2, log=True)
WD = FloatDistribution(0, 0.1)
KIND = CategoricalDistribution(["full", "lora"])
RANK = CategoricalDistribution([4, 8, 16, 32])


def _study(rows: list[tuple[dict[str, Any], float]], directions: list[str] | None = None,
           storage: Any = None, name: str | None = None) -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=directions or ["minimize"], storage=storage,
                                study_name=name)
    dists = {"train.learning_rate": LR, "train.weight_decay": WD, "method.kind": KIND,
             "method.r": RANK}
    for params, value in rows:
        values = [value, 1.0] if directions and len(directions) > 1 else None
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=None if values else value, values=values))
    return study


def _draw(rng: random.Random, i: int) -> dict[str, Any]:
    return {"train.learning_rate": 10 ** rng.uniform(-5, -2),
            "train.weight_decay": rng.uniform(0, 0.1),
            "method.kind": ("full", "lora")[i % 2] if i < 2 else rng.choice(["full", "lora"])}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_parameter_that_drives_the_objective_comes_first(seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(10):
        p = _draw(rng, i)
        rows.append((p, 1 + 2 * (math.log10(p["train.learning_rate"]) + 5) / 3 + rng.gauss(0, 0.05)))
    imp = study_importance(_study(rows))
    assert imp.method == DEFAULT_EVALUATOR == "fanova" and imp.trials == 10
    assert imp.values[0][0] == "train.learning_rate" and imp.values[0][1] > 0.5, imp.values
    assert math.isclose(sum(v for _, v in imp.values), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_categorical_that_splits_the_trials_comes_first_with_its_means(seed: int) -> None:
    """The quickstart's shape: full 0.74-0.91, lora 2.8-3.9, the learning rate a small slope.
    (PED-ANOVA at its default quantile rates method.kind about 0 here.)"""
    rng = random.Random(seed)
    rows = []
    for i in range(10):
        p = _draw(rng, i)
        base = rng.uniform(0.74, 0.91) if p["method.kind"] == "full" else rng.uniform(2.8, 3.9)
        rows.append((p, base + 0.2 * (math.log10(p["train.learning_rate"]) + 5) / 3))
    imp = study_importance(_study(rows))
    assert imp.values[0][0] == "method.kind" and imp.values[0][1] > 0.5, imp.values
    means = {m.value: (m.mean, m.count) for m in imp.means_of("method.kind")}
    for kind in ("full", "lora"):
        values = [v for p, v in rows if p["method.kind"] == kind]
        assert means[kind][1] == len(values)
        assert math.isclose(means[kind][0], sum(values) / len(values))
    assert imp.means_of("train.learning_rate") == ()  # a range has no per-value means


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_conditional_parameter_is_rated_within_its_branch_and_no_trial_drops_out(
        seed: int) -> None:
    """method.r exists in lora trials only and drives them; full trials are flat."""
    rng = random.Random(seed)
    rows = []
    for i in range(12):
        p = _draw(rng, i)
        if p["method.kind"] == "lora":
            p["method.r"] = rng.choice([4, 8, 16, 32])
            rows.append((p, 1 + 2 * (math.log2(p["method.r"]) - 2) / 3 + rng.gauss(0, 0.05)))
        else:
            rows.append((p, 1.5 + rng.gauss(0, 0.05)))
    imp = study_importance(_study(rows))
    assert imp.trials == 12  # every trial, with or without method.r
    assert {k for k, _ in imp.values} == {"train.learning_rate", "train.weight_decay",
                                          "method.kind"}
    lora = sum(1 for p, _ in rows if p["method.kind"] == "lora")
    [(name, share, count)] = imp.within
    assert name == "method.r" and count == lora
    assert share is not None and share > 0.5, imp.within  # the largest of its branch
    assert sum(m.count for m in imp.means_of("method.r")) == lora


def test_a_branch_of_too_few_trials_has_no_share_but_is_listed() -> None:
    rows = [({"train.learning_rate": 1e-4 * (i + 1), "method.kind": "full"}, 1.0 + i / 10)
            for i in range(7)]
    rows.append(({"train.learning_rate": 3e-4, "method.kind": "lora", "method.r": 8}, 2.0))
    imp = study_importance(_study(rows))
    assert imp.within == (("method.r", None, 1),)
    assert imp.values and imp.values[0][0] in ("train.learning_rate", "method.kind")


def test_a_sweep_of_several_objectives_is_rated_on_the_first() -> None:
    rng = random.Random(5)
    rows = []
    for i in range(10):
        p = _draw(rng, i)
        rows.append((p, (3.0 if p["method.kind"] == "lora" else 1.0) + rng.gauss(0, 0.05)))
    imp = study_importance(_study(rows, ["minimize", "minimize"]))
    assert imp.values[0][0] == "method.kind", imp


def test_importance_reads_the_study_from_its_journal(tmp_path: Path) -> None:
    journal = tmp_path / "s.optuna.journal"
    rng = random.Random(0)
    rows = []
    for i in range(9):
        p = _draw(rng, i)
        rows.append((p, (3.0 if p["method.kind"] == "lora" else 0.8) + rng.uniform(0, 0.1)))
    _study(rows, storage=open_storage(str(journal)), name="sweep")
    imp = parameter_importance(journal, "sweep")
    assert imp.method == "fanova" and imp.trials == 9 and imp.values[0][0] == "method.kind"
    assert parameter_importance(journal, "nope").note == f"no study 'nope' in {journal}"
    one = parameter_importance(journal, "sweep", "ped-anova")
    assert one.method == "ped-anova" and len(one.values) == 3
    with pytest.raises(ValueError, match="unknown importance evaluator"):
        parameter_importance(journal, "sweep", "shap")


def test_a_large_sweep_is_rated_on_a_sample_and_says_so() -> None:
    from tunelab.engine.run.importance import FOREST_TRIALS

    rng = random.Random(3)
    rows = []
    for i in range(FOREST_TRIALS + 20):
        p = _draw(rng, i)
        rows.append((p, (3.0 if p["method.kind"] == "lora" else 1.0) + rng.gauss(0, 0.05)))
    imp = study_importance(_study(rows))
    assert imp.trials == FOREST_TRIALS + 20 and imp.values[0][0] == "method.kind"
    assert f"a random {FOREST_TRIALS} of them" in imp.note


@pytest.mark.parametrize("multi", [False, True])
def test_a_maximised_objective_is_rated_for_its_high_values(multi: bool) -> None:
    """PED-ANOVA rates what sets the best trials apart: maximising v must rate as minimising -v
    (and not as minimising v), a first objective of several as a single one."""
    rng = random.Random(1)
    rows = []
    for i in range(12):
        p = _draw(rng, i)
        rows.append((p, 10 * (math.log10(p["train.learning_rate"]) + 5) + 30 * p["train.weight_decay"]
                     + (5 if p["method.kind"] == "lora" else 0)))
    high = study_importance(_study(rows, ["maximize", "minimize"] if multi else ["maximize"]),
                            "ped-anova")
    flipped = study_importance(_study([(p, -v) for p, v in rows]), "ped-anova")
    low = study_importance(_study(rows), "ped-anova")
    assert dict(high.values) == pytest.approx(dict(flipped.values))
    assert dict(high.values) != pytest.approx(dict(low.values))
