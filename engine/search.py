"""The Optuna side: storage, study, sampler, pruner, and sampling a trial's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.engine.spec import METHOD_KEYS_OF_KIND, Experiment, RangeSpec, field_is_int


def open_storage(url: str) -> Any:
    """An RDB URL (postgresql://, sqlite://) as is; anything else is a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in url:
        return optuna.storages.RDBStorage(url)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def build_pruner(exp: Experiment) -> Any:
    import optuna

    spec = exp.search.pruner_spec
    if spec.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_epochs
    )


def build_sampler(exp: Experiment) -> Any:
    import optuna

    if exp.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=exp.search.seed)
    return optuna.samplers.TPESampler(seed=exp.search.seed, multivariate=True, group=True)


def open_study(exp: Experiment, storage: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=exp.name,
        storage=open_storage(storage),
        sampler=build_sampler(exp),
        pruner=build_pruner(exp),
        direction=exp.search.direction,
        load_if_exists=True,
    )


def _suggest(trial: Any, name: str, dimension: RangeSpec | list[Any]) -> Any:
    if isinstance(dimension, list):
        return trial.suggest_categorical(name, dimension)
    if field_is_int(name):
        return trial.suggest_int(name, int(dimension.low), int(dimension.high),
                                 step=int(dimension.step or 1), log=dimension.log)
    return trial.suggest_float(name, dimension.low, dimension.high, step=dimension.step,
                               log=dimension.log)


def sample(trial: Any, exp: Experiment) -> dict[str, Any]:
    """The parameters of one trial. Keys of [method] that belong to some kinds only are
    sampled only in trials of those kinds when method.kind is itself searched."""
    space = exp.search.space
    values: dict[str, Any] = {}
    kind = exp.method.kind
    if "method.kind" in space:
        kind = _suggest(trial, "method.kind", space["method.kind"])
        values["method.kind"] = kind
    for name, dimension in space.items():
        if name == "method.kind":
            continue
        section, _, key = name.partition(".")
        if section == "method" and kind not in METHOD_KEYS_OF_KIND.get(key, {kind}):
            continue
        values[name] = _suggest(trial, name, dimension)
    return values
