"""The Optuna side: storage, study, sampler, pruner, and sampling a trial's parameters."""

from __future__ import annotations

import hashlib
import uuid
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
    """An RDB URL (postgresql://, sqlite://) as is; anything else is a journal file path, read
    and written through tunelab's `Journal` (engine.run.journal: torn lines, locks)."""
    from optuna.storages.journal import JournalStorage

    from tunelab.engine.run.journal import Journal

    if "://" in url:
        return _rdb(rdb_url(url))
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(Journal(url))


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
    votes instead, engine.run.preference); `tunelab check` says why from the same property."""
    return not (exp.search.pruner_spec.kind == "none" or exp.search.pruner_off)


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
    """The file's sampler, seeded by trial (see `seeded_by_trial`)."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # "``group`` is an experimental feature", on every command
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return seeded_by_trial(_sampler(exp), exp.search.seed)


def _sampler(exp: Experiment) -> Any:
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


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number`'s draws: the file's seed for trial 0 (so a sweep's first trial
    is what it always was), a hash of both for the others."""
    if number == 0:
        return seed % 2**32
    return int.from_bytes(hashlib.sha256(f"{seed}/{number}".encode()).digest()[:4], "big")


def seeded_by_trial(sampler: Any, seed: int) -> Any:
    """The sampler's random state is set from (seed, trial number) before each trial. A sampler
    seeded once draws the same sequence in every process: each `tunelab run` of a study began
    that sequence again (its first new trial repeated trial 0), and two runs at once drew the
    same trials. Seeded by trial number, trial N draws the same whichever run asks for it, so a
    resumed sweep continues the sequence and two runs at once draw different trials. (Optuna
    asks `before_trial` before the trial's first draw; TPE still learns from every finished
    trial.)"""
    before_trial = sampler.before_trial

    def reseeded(study: Any, trial: Any) -> None:
        for state in _random_states(sampler):
            state.rng.seed(trial_seed(seed, trial.number))
        before_trial(study, trial)

    sampler.before_trial = reseeded
    return sampler


def _random_states(sampler: Any) -> list[Any]:
    """Every LazyRandomState of a sampler and of the samplers and strategies it holds."""
    from optuna.samplers._lazy_random_state import LazyRandomState

    found: list[Any] = []
    seen: set[int] = set()
    todo = [sampler]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        for value in vars(item).values():
            if isinstance(value, LazyRandomState):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
            elif type(value).__module__.startswith("optuna.samplers") and hasattr(value, "__dict__"):
                todo.append(value)
    return found


def open_study(exp: Experiment, storage: str | Any) -> Any:
    """The study of `exp` in `storage` (a URL or journal path, or a storage already open),
    created when it is not there yet."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage) if isinstance(storage, str) else storage
    if exp.name in {s.study_name for s in storage.get_all_studies()}:
        # not create_study(load_if_exists=True) for a study that is there: it appends a line to
        # the journal each time (a `create study` that Optuna then finds taken)
        return optuna.load_study(study_name=exp.name, storage=storage,
                                 sampler=build_sampler(exp), pruner=build_pruner(exp))
    return optuna.create_study(
        study_name=exp.name,
        storage=storage,
        sampler=build_sampler(exp),
        pruner=build_pruner(exp),
        directions=exp.search.all_directions,
        load_if_exists=True,
    )


def ask_fixed(study: Any, params: dict[str, Any], user_attrs: dict[str, Any]) -> Any:
    """A new running trial that takes these parameters (a re-run). Made directly, not through
    Optuna's queue: `ask()` hands out the oldest waiting trial, which may be one that `tunelab
    enqueue` queued, and the re-run would then run that one's parameters."""
    import optuna
    from optuna.trial import TrialState, create_trial

    template = create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": params},
                            user_attrs=user_attrs)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    # another worker's ask() may take a waiting trial first: then it runs these parameters,
    # and this re-run makes another
    if not study._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
        return ask_fixed(study, params, user_attrs)
    study._thread_local.cached_all_trials = None
    return optuna.Trial(study, trial_id)


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


def distribution(name: str, dimension: RangeSpec | ChoiceSpec | list[Any]) -> Any:
    """The Optuna distribution of one key of the space: what `sample` suggests from, and what a
    trial restored from the store is given (engine.run.reconcile)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    options = choices(dimension)
    if options is not None:
        return CategoricalDistribution(options)
    assert isinstance(dimension, RangeSpec)
    if field_is_int(name):
        return IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log,
                               step=int(dimension.step or 1))
    return FloatDistribution(dimension.low, dimension.high, log=dimension.log, step=dimension.step)


def same_value(a: Any, b: Any) -> bool:
    """Two values of one parameter are the same (floats within rounding of a JSON round trip)."""
    import math

    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _suggest(trial: Any, name: str, dimension: RangeSpec | ChoiceSpec | list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    found = distribution(name, dimension)
    if isinstance(found, CategoricalDistribution):
        return trial.suggest_categorical(name, found.choices)
    if isinstance(found, IntDistribution):
        return trial.suggest_int(name, found.low, found.high, step=found.step, log=found.log)
    return trial.suggest_float(name, found.low, found.high, step=found.step, log=found.log)


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


STUDY_KEY = "tunelab_study"  # a study's user attribute: the key of its trials' folders


def study_key(study: Any) -> str | None:
    """A short key that tells this Optuna study from any other of the same name (a journal lost
    and started again, another folder's journal): trial folders live under it, so trial 0 of
    one study never writes into the folder of another's. Set when the study is new; a study
    from an older tunelab that already has trials keeps its folders as they were (None)."""
    key = study.user_attrs.get(STUDY_KEY)
    if key is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(STUDY_KEY, uuid.uuid4().hex[:8])
        key = study.user_attrs.get(STUDY_KEY)  # two runs starting at once: the last one set
    return key


def tell(study: Any, trial: Any, values: Any = None, state: Any = None) -> None:
    """`study.tell`, where the grid sampler's last point does not end the run: GridSampler
    calls `study.stop()` once its grid is done, which Optuna refuses outside `optimize()`
    (a RuntimeError after the trial is told, in tell's `finally`). The runner stops asking when
    the grid is done (`grid_size`)."""
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
