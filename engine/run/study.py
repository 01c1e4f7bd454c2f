"""The Optuna side: storage, study, sampler, pruner, and sampling a trial's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.engine.objectives import EXTRA_OBJECTIVES, PREFERENCE, metric_key
from tunelab.engine.spec import ChoiceSpec, Experiment, RangeSpec, field_is_int
from tunelab.engine.spec.conditions import choices, conditions, holds, order


def rdb_url(url: str) -> str:
    """`postgresql://…` through psycopg 3 when psycopg2 is not installed (SQLAlchemy's default
    driver for the plain scheme is psycopg2)."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str) -> Any:
    """An RDB URL (postgresql://, sqlite://) as is; anything else is a journal file path."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in url:
        return _rdb(rdb_url(url))
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


HEARTBEAT_S = 60  # an RDB study's running trial without a heartbeat for 3 minutes has failed


def heartbeat(study: Any, trial_id: int) -> Any:
    """Started: records that the trial is alive (an RDB storage; nothing for a journal) until
    `.join()`. A machine that dies stops beating, and the other workers fail its trial."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    thread = get_heartbeat_thread(trial_id, study._storage)
    thread.start()
    return thread


def fail_dead_trials(study: Any) -> None:
    """Trials of workers (any machine) whose heartbeat stopped are marked failed."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _rdb(url: str) -> Any:
    """Optuna's RDB storage. Workers started together on an empty database race to create its
    tables (`type "studydirection" already exists`): the loser tries again and finds them."""
    import random
    import time

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=3 * HEARTBEAT_S)
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def is_multi(exp: Experiment) -> bool:
    return len(exp.search.all_objectives) > 1


def prunes(exp: Experiment) -> bool:
    """Whether a pruner may stop this sweep's trials early. A preference sweep is not pruned on
    the loss: the loss is not what it maximises (a trial that loses clearly stops collecting
    votes instead, engine.run.preference)."""
    return not (exp.search.pruner_spec.kind == "none" or is_multi(exp)
                or PREFERENCE in exp.search.all_objectives)


def build_pruner(exp: Experiment) -> Any:
    """Decides on the validation loss reported at each evaluation. A sweep of several
    objectives is never pruned (Optuna has no pruning for a Pareto front)."""
    import optuna

    spec = exp.search.pruner_spec
    if not prunes(exp):
        return optuna.pruners.NopPruner()
    # Steps are evaluations counted from 1, and Optuna may prune at step >= n_warmup_steps: so
    # warmup_epochs evaluations happen before any pruning at warmup + 1 (with warmup itself, 1
    # was the same as 0)
    warmup = spec.warmup_epochs + 1
    if spec.kind == "percentile":
        return optuna.pruners.PercentilePruner(spec.percentile, n_startup_trials=spec.startup_trials,
                                               n_warmup_steps=warmup)
    if spec.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.min_resource,
                                                      reduction_factor=spec.reduction_factor)
    if spec.kind == "hyperband":
        low = 1 if spec.min_resource == "auto" else spec.min_resource
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource=spec.max_resource,
                                              reduction_factor=spec.reduction_factor)
    return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=warmup)


def grid(exp: Experiment) -> dict[str, list[Any]]:
    """The grid of the file's space: lists as they are, stepped ranges as their values. A space
    with conditions is refused when the file is loaded (conditions.condition_problems): Optuna's
    grid would repeat a trial once per value of a key it leaves out."""
    out: dict[str, list[Any]] = {}
    for name, dim in exp.search.space.items():
        if not isinstance(dim, RangeSpec):
            out[name] = choices(dim) or []
            continue
        if dim.step is None:
            raise ValueError(f"the grid sampler needs a list or a step for {name}")
        count = int(round((dim.high - dim.low) / dim.step)) + 1
        values = [dim.low + i * dim.step for i in range(count) if dim.low + i * dim.step <= dim.high + 1e-12]
        out[name] = [int(round(v)) for v in values] if field_is_int(name) else [round(v, 12) for v in values]
    return out


def grid_size(exp: Experiment) -> int:
    size = 1
    for values in grid(exp).values():
        size *= len(values)
    return size


def build_sampler(exp: Experiment) -> Any:
    import optuna

    kind, seed = exp.search.sampler, exp.search.seed
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid(exp), seed=seed)
    if kind == "cmaes":
        # CMA-ES handles the numeric ranges; categorical keys are sampled at random
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    # a preference sweep asks for new trials while earlier ones wait for votes (RUNNING in
    # Optuna): the constant liar gives each pending trial the worst value seen, so TPE does not
    # propose the same region again before the votes are in
    liar = PREFERENCE in exp.search.all_objectives
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                      constant_liar=liar)


def open_study(exp: Experiment, storage: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=exp.name,
        storage=open_storage(storage),
        sampler=build_sampler(exp),
        pruner=build_pruner(exp),
        directions=exp.search.all_directions,
        load_if_exists=True,
    )


def objective_values(exp: Experiment, value: float | None, info: dict[str, Any]) -> list[float] | None:
    """The values told to Optuna for a complete trial: the objective, then any others (`cost`,
    `duration_s` measured by the runner, `preference`: the trial's rating over the base model
    once its votes place it, validation metrics). None when one is missing."""
    out: list[float] = []
    metrics = info.get("values") or {}
    for name in exp.search.all_objectives:
        if name == PREFERENCE:
            found = info.get(PREFERENCE)
        elif name == exp.search.objective:
            found = value
        elif name in EXTRA_OBJECTIVES:
            found = info.get(name)
        else:
            found = metrics.get(metric_key(name, exp.method.stage))
        if found is None:
            return None
        out.append(float(found))
    return out


def _suggest(trial: Any, name: str, dimension: RangeSpec | ChoiceSpec | list[Any]) -> Any:
    options = choices(dimension)
    if options is not None:
        return trial.suggest_categorical(name, options)
    assert isinstance(dimension, RangeSpec)
    if field_is_int(name):
        return trial.suggest_int(name, int(dimension.low), int(dimension.high),
                                 step=int(dimension.step or 1), log=dimension.log)
    return trial.suggest_float(name, dimension.low, dimension.high, step=dimension.step,
                               log=dimension.log)


def sample(trial: Any, exp: Experiment) -> dict[str, Any]:
    """The parameters of one trial, define-by-run: each key after the keys its condition names,
    and only when its condition holds (a `when` of the file, or the implicit rule that keys of
    [method] read by some kinds only are sampled in trials of those kinds). So no trial carries a
    parameter that its configuration ignores."""
    space = exp.search.space
    when = conditions(exp)
    values: dict[str, Any] = {}
    for name in order(exp):
        if holds(when[name], values, exp):
            values[name] = _suggest(trial, name, space[name])
    return values
