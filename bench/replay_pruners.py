"""Pruners replayed on the recorded validation curves of an unpruned sweep: what each would have
saved, and whether it would have kept the best, in seconds instead of a sweep each.

Run: python bench/replay_pruners.py [CURVES.json ...] [--orders N] [--quick] [--json PATH]
     python bench/replay_pruners.py --record STORE --out CURVES.json [--about TEXT]

The sweep is the quickstart's with the random sampler (bench_runner.py): the configurations
and their order do not depend on the pruner, and a trial that is not pruned trains exactly as it
did unpruned (one thread per trial, TUNELAB_THREADS=1, so its sums run in the same order). So
replaying is exact: a real in-memory Optuna study with the pruner tunelab builds
(`build_pruner`, under the quickstart's study name, which Hyperband's brackets depend on) is
told the trials in the same order, each reporting its validation loss per evaluation until the
pruner stops it; a stopped trial spent the steps up to that evaluation.

`--orders N` replays every setting over N shuffled orders of the same trials too (any order is
a sweep the random sampler could as well have run): how often each keeps the best, and which a
default should be (`choose`).

`--record STORE --out CURVES.json` keeps a sweep's curves (from the store's `metrics` and
`trials` tables) as a small JSON file; bench/results/ holds the 24-trial sweeps at 3 and 12
epochs, so the suite's pruning rows need no sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent))

from measure import Row, write_rows  # noqa: E402

STUDY = "quickstart"  # Hyperband puts a trial in a bracket by a hash of study name and number


@dataclass(frozen=True)
class Curve:
    """One trial of an unpruned sweep: the train step and validation loss at each evaluation,
    and the objective it finished with (None: it did not complete)."""

    number: int
    steps: tuple[int, ...]
    losses: tuple[float, ...]
    value: float | None


@dataclass(frozen=True)
class Outcome:
    steps: int  # train steps the sweep spends with this pruner
    full_steps: int  # ... and without one
    best: float | None  # best objective among the trials it lets finish
    full_best: float | None
    pruned: int

    @property
    def saved(self) -> float:
        return 1 - self.steps / max(1, self.full_steps)

    @property
    def kept(self) -> bool:
        """The best within 1 % of the unpruned sweep's best (eval_loss: lower is better)."""
        return self.best is not None and self.full_best is not None \
            and self.best <= self.full_best * 1.01

    @property
    def met(self) -> bool:
        return self.saved >= 0.5 and self.kept


def record(store: Path) -> list[Curve]:
    """The curves of every finished trial in a store, in trial order."""
    from tunelab import store as st

    trials = st.query(store, "select number, state, value, steps from trials "
                             "where state != 'running' order by number").rows
    points = st.query(store, "select trial, step, value from metrics where split = 'validation' "
                             "and name = 'loss' order by trial, step").rows
    curves = []
    for number, state, value, steps in trials:
        mine = [(s, v) for t, s, v in points if t == number]
        assert mine and mine[-1][0] <= (steps or 0), f"trial {number}: curve past its steps"
        curves.append(Curve(number, tuple(s for s, _ in mine), tuple(v for _, v in mine),
                            value if state == "complete" else None))
    return curves


def save(curves: list[Curve], path: Path, about: str) -> None:
    path.write_text(json.dumps({"about": about, "curves": [asdict(c) for c in curves]}, indent=0))


def load(path: Path) -> list[Curve]:
    return [Curve(c["number"], tuple(c["steps"]), tuple(c["losses"]), c["value"])
            for c in json.loads(path.read_text())["curves"]]


def replay(curves: list[Curve], pruner: Any, study_name: str = STUDY) -> Outcome:
    """The sweep of `curves` with `pruner` deciding after each evaluation, as the trial process
    does (report, should_prune, stop)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, direction="minimize", pruner=pruner)
    steps = pruned = 0
    finished: list[float] = []
    for curve in curves:
        trial = study.ask()
        stopped_at = _pruned_at(trial, curve)
        if stopped_at is not None:  # the steps up to that evaluation were spent
            steps += stopped_at
            pruned += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        steps += curve.steps[-1]
        if curve.value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            finished.append(curve.value)
            study.tell(trial, curve.value)
    full = [c.value for c in curves if c.value is not None]
    return Outcome(steps, sum(c.steps[-1] for c in curves), min(finished, default=None),
                   min(full, default=None), pruned)


def _pruned_at(trial: Any, curve: Curve) -> int | None:
    """The train step at which the pruner stops this trial (None: it runs to the end). As in a
    trial (engine/train/callbacks.py), the pruner is not asked at the last evaluation: the training is
    done, and pruning then would save nothing and throw the finished result away."""
    last = len(curve.steps)
    for evaluation, (step, loss) in enumerate(zip(curve.steps, curve.losses, strict=True),
                                              start=1):
        trial.report(loss, step=evaluation)
        if evaluation < last and trial.should_prune():
            return step
    return None


def tunelab_pruner(**setting: Any) -> Callable[[], Any]:
    """The pruner tunelab builds for the quickstart with `[search.pruner]` = `setting`."""
    from tunelab.engine.run.study import build_pruner
    from tunelab.engine.spec import PrunerSpec, load_spec

    exp = load_spec(ROOT / "experiments" / "quickstart.toml").experiment
    exp = exp.model_copy(update={"search": exp.search.model_copy(
        update={"pruner": PrunerSpec(**setting)})})
    return lambda: build_pruner(exp)


# the keys of [search.pruner] each kind reads
KEYS = {"median": ("startup_trials", "warmup_epochs"),
        "percentile": ("percentile", "startup_trials", "warmup_epochs"),
        "successive_halving": ("min_resource", "reduction_factor"),
        "hyperband": ("min_resource", "max_resource", "reduction_factor"), "none": ()}


def default_setting() -> dict[str, Any]:
    """`[search.pruner]` as a new experiment gets it: the kind and the keys it reads."""
    from tunelab.engine.spec import SearchSpec

    spec = SearchSpec().pruner_spec
    return {"kind": spec.kind, **{k: getattr(spec, k) for k in KEYS[spec.kind]}}


def candidates() -> dict[str, Callable[[], Any]]:
    """Every setting compared: tunelab's pruners through `build_pruner`, and Optuna settings
    tunelab's file cannot express yet (a patient wrapper, halving's early-stopping rate)."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out: dict[str, Callable[[], Any]] = {"the default": tunelab_pruner(**default_setting())}
    for startup in (1, 2, 3, 4, 5):
        for warmup in (0, 1, 2, 3, 4):
            out[f"median startup {startup} warmup {warmup}"] = tunelab_pruner(
                kind="median", startup_trials=startup, warmup_epochs=warmup)
    for percentile in (25.0, 60.0, 75.0, 85.0, 90.0, 95.0):
        for startup in (1, 2, 3, 4):
            for warmup in (0, 1, 2):
                out[f"percentile {percentile:g} startup {startup} warmup {warmup}"] = \
                    tunelab_pruner(kind="percentile", percentile=percentile,
                                   startup_trials=startup, warmup_epochs=warmup)
    for low in ("auto", 1, 2, 3):
        for factor in (2, 3, 4):
            out[f"halving min {low} factor {factor}"] = tunelab_pruner(
                kind="successive_halving", min_resource=low, reduction_factor=factor)
            out[f"hyperband min {low} factor {factor}"] = tunelab_pruner(
                kind="hyperband", min_resource=low, reduction_factor=factor)
    for rate in (1, 2):
        for factor in (2, 3):
            out[f"halving factor {factor} early-stopping rate {rate}"] = (
                lambda f=factor, r=rate: optuna.pruners.SuccessiveHalvingPruner(
                    reduction_factor=f, min_early_stopping_rate=r))
    for patience in (1, 2, 3):
        for startup in (1, 2, 4):
            out[f"median startup {startup}, patience {patience}"] = (
                lambda p=patience, s=startup: optuna.pruners.PatientPruner(
                    optuna.pruners.MedianPruner(n_startup_trials=s), patience=p))
    return out


def compare(sweeps: dict[str, list[Curve]], settings: dict[str, Callable[[], Any]]
            ) -> dict[str, dict[str, Outcome]]:
    return {name: {sweep: replay(curves, make()) for sweep, curves in sweeps.items()}
            for name, make in settings.items()}


@dataclass(frozen=True)
class Orders:
    """A setting over many orders of the same trials: how often it keeps the best (within 1 %),
    how often it meets the target, and the steps it saves (median, worst)."""

    kept: float
    met: float
    saved: float
    least_saved: float


def orders(curves: list[Curve], make: Callable[[], Any], count: int, seed: int = 0) -> Orders:
    """The random sampler draws its configurations independently, so any order of a sweep's
    trials is a sweep it could as well have run: the replay over `count` shuffled orders (and
    study names, which decide Hyperband's brackets) says how much a setting's result on the
    one recorded order owes to luck."""
    import random

    rng = random.Random(seed)
    outcomes = []
    for i in range(count):
        shuffled = list(curves)
        rng.shuffle(shuffled)
        outcomes.append(replay(shuffled, make(), study_name=f"{STUDY}-{i}"))
    saved = sorted(o.saved for o in outcomes)
    return Orders(sum(o.kept for o in outcomes) / count, sum(o.met for o in outcomes) / count,
                  saved[count // 2], saved[0])


def orders_table(sweeps: dict[str, list[Curve]], settings: dict[str, Callable[[], Any]],
                 count: int) -> str:
    lines = [f"over {count} shuffled orders of each sweep's trials: how often the best is kept "
             "(within 1 %), how often the target is met, median and least steps saved",
             f"{'':48}" + "".join(f"{s:>30}" for s in sweeps),
             f"{'':48}" + "".join(f"{'kept   met  saved  least':>30}" for _ in sweeps)]
    found: dict[str, list[Orders]] = {}
    for name, make in settings.items():
        found[name] = [orders(curves, make, count) for curves in sweeps.values()]
        cells = [f"{o.kept:>8.0%}{o.met:>6.0%}{o.saved:>7.0%}{o.least_saved:>7.0%}"
                 for o in found[name]]
        lines.append(f"{name:48}" + "".join(f"{c:>30}" for c in cells))
    lines.append(f"kept in at least {KEPT_IN:.0%} of the orders of every sweep, then the most "
                 f"steps saved: {choose(found)}")
    return "\n".join(lines)


KEPT_IN = 2 / 3  # a default that loses the best in one sweep of three is not one to give people


def choose(found: dict[str, list[Orders]]) -> str:
    """The setting a default should be: one that keeps the best in most orders of every sweep
    (losing the best defeats the sweep; saving less only costs time), then the one saving the
    most steps (the mean over the sweeps of the median saved)."""
    safe = {name: sum(o.saved for o in outs) / len(outs) for name, outs in found.items()
            if all(o.kept >= KEPT_IN for o in outs)}
    return max(safe, key=lambda name: safe[name]) if safe else "none"


def table(results: dict[str, dict[str, Outcome]]) -> str:
    sweeps = list(next(iter(results.values())))
    lines = [f"{'':48}" + "".join(f"{s:>28}" for s in sweeps),
             f"{'':48}" + "".join(f"{'saved  pruned  best  ':>28}" for _ in sweeps)]
    for name, outcomes in results.items():
        cells = []
        for o in outcomes.values():
            best = f"{o.best:.4f}" if o.best is not None else "—"
            mark = "✓" if o.met else ("kept" if o.kept else "lost")
            cells.append(f"{o.saved:>6.0%}{o.pruned:>6}  {best}  {mark:>4}")
        lines.append(f"{name:48}" + "".join(f"{c:>28}" for c in cells))
    full = next(iter(results.values()))
    lines.append("unpruned: " + ", ".join(f"{s}: {o.full_steps} steps, best {o.full_best:.4f}"
                                         for s, o in full.items() if o.full_best is not None))
    return "\n".join(lines)


def rows(results: dict[str, dict[str, Outcome]], names: list[str]) -> list[Row]:
    out = []
    for name in names:
        for sweep, o in results[name].items():
            out.append(Row(f"pruning, {name}: train steps of the {sweep} quickstart sweep "
                           "(replayed)", o.steps, o.full_steps, "steps",
                           "≥ 50 % saved, best within 1 %", o.met,
                           note=f"{o.saved:.0%} saved, best {o.best and round(o.best, 4)} vs "
                                f"{o.full_best and round(o.full_best, 4)}"))
    return out


SWEEPS = {"24×3": RESULTS / "curves-24x3.json", "24×12": RESULTS / "curves-24x12.json"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("curves", nargs="*", type=Path,
                        help="recorded sweeps (default: the 24-trial sweeps in bench/results)")
    parser.add_argument("--record", type=Path, help="a store whose unpruned sweep to keep")
    parser.add_argument("--out", type=Path, help="where --record writes the curves")
    parser.add_argument("--about", default="", help="what --record's sweep was")
    parser.add_argument("--quick", action="store_true", help="the default and the three kinds only")
    parser.add_argument("--orders", type=int, default=0,
                        help="also replay each setting over this many shuffled orders")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.record:
        if not args.out:
            parser.error("--record needs --out")
        save(record(args.record), args.out, args.about)
        print(f"kept {args.out}")
        return
    paths = {p.stem: p for p in args.curves} or {k: v for k, v in SWEEPS.items() if v.exists()}
    sweeps = {name: load(path) for name, path in paths.items()}
    settings = candidates()
    if args.quick:
        settings = {k: v for k, v in settings.items()
                    if k in ("the default", "median startup 2 warmup 0",
                             "halving min auto factor 3", "hyperband min auto factor 3")}
    results = compare(sweeps, settings)
    print(table(results))
    if args.orders:
        print()
        print(orders_table(sweeps, settings, args.orders))
    write_rows(args.json, rows(results, [n for n in settings if n == "the default"]))


if __name__ == "__main__":
    main()
