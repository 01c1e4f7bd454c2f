"""Which searched parameters mattered: Optuna's importance evaluators over a study.

The study is read from its Optuna storage (the journal file beside the store, or an RDB URL),
so the distributions are the ones the sampler used. Optuna is imported here, inside the function:
the TUI calls this from a worker thread and must start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# fANOVA first: on sweeps of 8-12 trials it names the parameter that drives the objective, a
# categorical that splits the trials, and a conditional one within its branch; PED-ANOVA at
# its default quantile (the top 10 %: one trial of ten) mostly does not. The evidence is
# bench/bench_importance.py.
EVALUATORS = ("fanova", "ped-anova", "mean-decrease-impurity")
DEFAULT_EVALUATOR = "fanova"
MIN_BRANCH_TRIALS = 3  # a conditional parameter's share is computed from at least this many
# A random forest's cost grows faster than the trials (measured under load: fANOVA 0.75 s at 12
# trials, 4.6 s at 100, 20 s at 300): above this many it is fitted on a seeded random sample.
FOREST_TRIALS = 100


@dataclass(frozen=True)
class ValueMean:
    """The trials that took one value of a categorical parameter: their mean objective."""

    value: str
    mean: float
    count: int


@dataclass(frozen=True)
class Importance:
    method: str                           # the evaluator that produced the numbers
    trials: int                           # complete trials they are computed from
    values: tuple[tuple[str, float], ...]  # (parameter, share of importance), largest first
    note: str = ""                        # why there are no numbers, when there are none
    # parameters that only some trials sampled (a conditional space): (parameter, its share
    # among the parameters of the trials that sampled it, None when too few, how many trials)
    within: tuple[tuple[str, float | None, int], ...] = ()
    # categorical parameters: the mean objective and the count of each value, in its order
    means: tuple[tuple[str, tuple[ValueMean, ...]], ...] = ()

    def means_of(self, param: str) -> tuple[ValueMean, ...]:
        return dict(self.means).get(param, ())


def journal_for(store: str | Path) -> Path:
    """The default Optuna journal of a store (as `tunelab run` places it)."""
    store = Path(store)
    return store.parent / f"{store.stem}.optuna.journal"


def _evaluator(method: str):  # noqa: ANN202 - an optuna object, imported lazily
    import optuna

    if method == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    if method == "mean-decrease-impurity":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return optuna.importance.PedAnovaImportanceEvaluator()


def _objective(trial: Any) -> float:
    return float(trial.values[0])  # the first objective of a Pareto sweep: the one shown


def _shares(trials: list[Any], directions: list[Any], params: list[str],
            method: str) -> dict[str, float]:
    """The evaluator over these trials and parameters (an in-memory study holding them)."""
    import random
    import warnings

    import optuna

    if method != "ped-anova" and len(trials) > FOREST_TRIALS:
        trials = random.Random(0).sample(trials, FOREST_TRIALS)
    study = optuna.create_study(directions=directions)
    study.add_trials(trials)
    target = None  # one objective: the evaluator reads the study's direction itself
    if len(directions) > 1:  # the first objective; PED-ANOVA takes a target as lower-is-better
        sign = -1.0 if directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        target = lambda t: sign * _objective(t)  # noqa: E731
    with warnings.catch_warnings():  # PED-ANOVA's reminder that a target is minimised: it is
        warnings.simplefilter("ignore", UserWarning)
        found = optuna.importance.get_param_importances(
            study, evaluator=_evaluator(method), params=params, target=target)
    return {k: float(v) for k, v in found.items()}


def _common(trials: list[Any]) -> list[str]:
    """The parameters every one of these trials has, varying among them (in first-seen order)."""
    names = [k for k in trials[0].params if all(k in t.params for t in trials)]
    return [k for k in names if len({repr(t.params[k]) for t in trials}) > 1]


def _means(trials: list[Any]) -> tuple[tuple[str, tuple[ValueMean, ...]], ...]:
    from optuna.distributions import CategoricalDistribution

    out = []
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    for name in names:
        dist = next(t.distributions[name] for t in trials if name in t.params)
        if not isinstance(dist, CategoricalDistribution):
            continue
        rows = []
        for choice in dist.choices:
            found = [_objective(t) for t in trials if name in t.params and t.params[name] == choice]
            if found:
                rows.append(ValueMean(str(choice), sum(found) / len(found), len(found)))
        out.append((name, tuple(rows)))
    return tuple(out)


def study_importance(study: Any, method: str = DEFAULT_EVALUATOR) -> Importance:
    """The importance of each searched parameter for the (first) objective of a study.

    Every complete trial counts for the parameters all of them have (normalised to sum to 1).
    A parameter that only some trials sampled is rated among the parameters of those trials
    (`within`), so a conditional space neither drops it nor drops the trials without it.
    """
    import optuna

    if method not in EVALUATORS:
        raise ValueError(f"unknown importance evaluator {method!r}; one of {', '.join(EVALUATORS)}")
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if len(complete) < 2:
        return Importance(method, len(complete), (),
                          f"{len(complete)} complete trial(s): importance needs at least 2")
    directions = list(study.directions)
    means = _means(complete)
    common = _common(complete)
    try:
        found = _shares(complete, directions, common, method) if common else {}
        within = []
        for name in dict.fromkeys(k for t in complete for k in t.params):
            branch = [t for t in complete if name in t.params]
            if len(branch) == len(complete):
                continue
            params = _common(branch)
            share = None
            if len(branch) >= MIN_BRANCH_TRIALS and name in params:
                try:  # a branch the evaluator cannot rate leaves the others' numbers standing
                    share = _shares(branch, directions, params, method).get(name)
                except (RuntimeError, ValueError):
                    share = None
            within.append((name, share, len(branch)))
    except ImportError:  # fANOVA and MDI fit a random forest
        return Importance(method, len(complete), (),
                          f"{method} needs scikit-learn (pip install scikit-learn); ped-anova "
                          "does not", means=means)
    except (RuntimeError, ValueError) as error:
        return Importance(method, len(complete), (), f"{method}: {error}", means=means)
    values = tuple(sorted(found.items(), key=lambda kv: -kv[1]))
    note = "" if values or within else "no parameter varies across the complete trials"
    if method != "ped-anova" and len(complete) > FOREST_TRIALS and values:
        note = f"the forest is fitted on a random {FOREST_TRIALS} of them (its cost grows fast)"
    return Importance(method, len(complete), values, note, tuple(within), means)


def parameter_importance(storage: str | Path, study_name: str,
                         method: str = DEFAULT_EVALUATOR) -> Importance:
    """`study_importance` of a study in its Optuna storage (a journal file path or an RDB URL).

    `method`: fanova (the default), ped-anova or mean-decrease-impurity. A missing storage or
    study, or fewer than two complete trials, give an empty result with a note.
    """
    import optuna

    from tunelab.engine.run.study import open_storage

    if method not in EVALUATORS:
        raise ValueError(f"unknown importance evaluator {method!r}; one of {', '.join(EVALUATORS)}")
    url = str(storage)
    if "://" not in url and not Path(url).exists():
        return Importance(method, 0, (), f"no Optuna study storage at {url}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from tunelab.engine.run.journal import JournalDamaged

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        return Importance(method, 0, (), f"no study {study_name!r} in {url}")
    except JournalDamaged as error:  # read only here: the next run repairs it
        return Importance(method, 0, (), error.message)
    return study_importance(study, method)
