"""Which searched parameters mattered: Optuna's importance evaluators over a study.

The study is read from its Optuna storage (the journal file beside the store, or an RDB URL),
so the distributions are the ones the sampler used. Optuna is imported here, inside the function:
the TUI calls this from a worker thread and must start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EVALUATORS = ("ped-anova", "fanova", "mean-decrease-impurity")


@dataclass(frozen=True)
class Importance:
    method: str                           # the evaluator that produced the numbers
    trials: int                           # complete trials they are computed from
    values: tuple[tuple[str, float], ...]  # (parameter, share of importance), largest first
    note: str = ""                        # why there are no numbers, when there are none


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


def parameter_importance(storage: str | Path, study_name: str, method: str = "ped-anova"
                         ) -> Importance:
    """The importance of each searched parameter for the objective, normalised to sum to 1.

    `method`: ped-anova (Optuna's default, no extra dependency), fanova or
    mean-decrease-impurity (both need scikit-learn).

    `storage` is a journal file path or an RDB URL. Fewer than two complete trials, or a
    parameter space with a single parameter value, give an empty result with a note.
    """
    import optuna

    from tunelab.engine.run.study import open_storage

    if method not in EVALUATORS:
        raise ValueError(f"unknown importance evaluator {method!r}; one of {', '.join(EVALUATORS)}")
    url = str(storage)
    if "://" not in url and not Path(url).exists():
        return Importance(method, 0, (), f"no Optuna study storage at {url}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        return Importance(method, 0, (), f"no study {study_name!r} in {url}")
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if len(complete) < 2:
        return Importance(method, len(complete), (),
                          f"{len(complete)} complete trial(s): importance needs at least 2")
    try:
        found = optuna.importance.get_param_importances(study, evaluator=_evaluator(method))
    except ImportError:  # fANOVA and MDI fit a random forest
        return Importance(method, len(complete), (),
                          f"{method} needs scikit-learn (pip install scikit-learn); ped-anova does not")
    except (RuntimeError, ValueError) as error:
        return Importance(method, len(complete), (), f"{method}: {error}")
    values = tuple(sorted(((k, float(v)) for k, v in found.items()), key=lambda kv: -kv[1]))
    return Importance(method, len(complete), values)
