"""`tunelab run`, `worker`, `enqueue`, `confirm`, `rerun`: the commands that train.

The training stack is imported inside each command, so the other commands start without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.store.errors import TunelabError
from tunelab.tui.cli.layout import fit
from tunelab.tui.cli.options import (
    DEFAULT_STORE,
    RetryOption,
    SetOption,
    StorageOption,
    StoreOption,
    WorkersOption,
)
from tunelab.tui.cli.output import console, errors, width
from tunelab.tui.cli.reporter import ConsoleReporter
from tunelab.tui.cli.results import print_trials, trial_ref


def reporter_for(exp: Any) -> ConsoleReporter:
    """The console reporter of an experiment: its objective, which way is better, its stage."""
    return ConsoleReporter(exp.name, exp.search.direction, exp.search.objective,
                           exp.method.stage)


def _quiet_optuna() -> None:
    # Optuna marks the journal storage and several samplers "experimental" on every trial
    warnings.filterwarnings("ignore", message=".*experimental feature.*")


def _sweep(file: Path, store: Path, set_: list[str] | None, storage: str | None, smoke: bool,
           new_study: bool, workers: int | None, retry_failed: bool, command: str) -> None:
    from tunelab.engine.run.identity import settle_study
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    loaded = load_spec(file, set_ or [], store)
    spec = settle_study(loaded, store, new_study=new_study, smoke=smoke)
    _quiet_optuna()
    name = spec.experiment.name
    reporter = reporter_for(spec.experiment)
    runner = Runner(spec, store, reporter, storage=storage, smoke=smoke, workers=workers,
                    retry_failed=retry_failed)
    if new_study and name != loaded.experiment.name:
        console.print(f"[bold]{name}[/]: a new study beside {loaded.experiment.name!r}")
    try:
        runner.run()
    except KeyboardInterrupt:
        reporter.finish()
        errors.print("stopped by Ctrl-C; finished trials are kept. "
                     f"Run `tunelab {command} {file}` again to resume.")
        raise typer.Exit(130) from None
    except BaseException:
        reporter.finish()  # the live block goes before the error is said
        raise
    reporter.finish()
    console.print()
    print_trials(store, name)
    if smoke:
        console.print(f"smoke run passed: every stage ran. Next: tunelab run {file}")
        return
    console.print(fit([f"next: tunelab trials {name}",
                       'tunelab sql "select state, count(*) from trials group by 1"'],
                      width(), " · ", 6))


def run(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage: an RDB URL (postgresql://…) or a journal file. "
             "Default: a journal file beside the store.")] = None,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="The whole pipeline on a tiny model of the same family, a few dozen "
                        "examples and two short trials, in a separate study NAME-smoke.")] = False,
    new_study: Annotated[bool, typer.Option(
        "--new-study", help="The file changed since its study ran: start NAME-v2 beside it.")] = False,
    workers: WorkersOption = None,
    retry_failed: RetryOption = False,
) -> None:
    """Run an experiment: prepare the data, evaluate the baseline, run the sweep.

    Running it again resumes a stopped sweep; finished trials are kept. Ctrl-C once: the
    running trials stop after their current evaluation; twice: they stop now.
    """
    _sweep(file, store, set_, storage, smoke, new_study, workers, retry_failed, "run")


def worker(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML), the same on every machine.")],
    storage: Annotated[str, typer.Option(
        help="The study's shared Optuna storage, e.g. postgresql://user:pw@host/tunelab.")],
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
    workers: WorkersOption = None,
    retry_failed: RetryOption = False,
) -> None:
    """Join a study shared by several machines: take trials from it until it has enough.

    Each machine writes its own store file; `tunelab sql --store a.duckdb --store b.duckdb`
    queries them as one.
    """
    _sweep(file, store, set_, storage, False, False, workers, retry_failed, "worker")


def _spec_of(experiment: str, store: Path, set_: list[str] | None = None) -> Any:
    """An experiment file, or the name of an experiment of the store (its file is read)."""
    from tunelab.engine.spec import load_spec

    path = Path(experiment)
    if not (path.suffix == ".toml" and path.exists()):
        source = st.experiment_source(store, experiment) if store.exists() else None
        if source is None or not Path(source).exists():
            raise TunelabError(f"{experiment!r} is neither an experiment file nor an experiment "
                               f"of {store} whose file is still there", "unknown experiment")
        path = Path(source)
    return load_spec(path, set_ or [], store)


def _toml_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def enqueue(
    experiment: Annotated[str, typer.Argument(help="The experiment file, or its name in the store.")],
    set_: Annotated[list[str], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="A parameter of the search space, e.g. --set train.learning_rate=2e-4 "
             "(repeatable; those not given are sampled).")],
    store: StoreOption = DEFAULT_STORE,
    storage: StorageOption = None,
) -> None:
    """Queue a known configuration: the sweep tries it before sampling new ones."""
    from tunelab.engine.run.runner import Runner

    spec = _spec_of(experiment, store)
    space = spec.experiment.search.space
    params: dict[str, Any] = {}
    for item in set_:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise TunelabError(f"--set {item!r}: expected KEY=VALUE", "bad --set")
        if key not in space:
            raise TunelabError(f"{key} is not in search.space of {spec.experiment.name} "
                               f"(searched: {', '.join(space) or 'nothing'})", "not searched")
        params[key] = _toml_value(value.strip())
    _check_conditions(spec.experiment, params)
    runner = Runner(spec, store, reporter_for(spec.experiment), storage=storage)
    runner.enqueue(params)
    shown = ", ".join(f"{fmt.param_name(k)} {v}" for k, v in params.items())
    console.print(f"queued for {runner.exp.name}: {shown}. "
                  f"The next trial of `tunelab run {spec.path}` takes it.")


def _check_conditions(exp: Any, params: dict[str, Any]) -> None:
    """A queued value of a conditional key must be one its trial would use: its condition has to
    hold with the other values given (a trial never carries a key its condition rules out)."""
    from tunelab.engine.spec import conditions as cond

    for key, condition in cond.conditions(exp).items():
        if key not in params or not condition:
            continue
        missing = [k for k in condition if k in exp.search.space and k not in params]
        if missing:
            raise TunelabError(
                f"{key} is searched {cond.describe(condition)}: give "
                f"{' and '.join(f'--set {k}=…' for k in missing)} too", "conditional key")
        if not cond.holds(condition, params, exp):
            raise TunelabError(
                f"{key} is searched {cond.describe(condition)}, which these values "
                f"rule out: drop --set {key}", "conditional key")


def confirm(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    top: Annotated[int, typer.Option(help="How many of the best trials to re-check.", min=1)] = 3,
    seeds: Annotated[int, typer.Option(help="Runs of each with another seed.", min=1)] = 3,
    store: StoreOption = DEFAULT_STORE,
    storage: StorageOption = None,
) -> None:
    """Re-run the best trials with other seeds and show mean and spread, so that a winner is
    not picked by seed noise."""
    import statistics

    from tunelab.engine.run.runner import Runner

    st.flush_orphans(store)
    record = st.get_experiment(store, experiment)
    if record is None:
        raise TunelabError(f"no experiment {experiment!r} in {store}", "unknown experiment")
    done = [t for t in st.list_trials(store, experiment)
            if t.state == "complete" and t.value is not None and "train.seed" not in t.params]
    if not done:
        raise TunelabError(f"{experiment} has no complete trial yet", "no best trial")
    best = objectives.ranked(done, lambda t: t.value or 0.0, record.direction)[:top]
    spec = _spec_of(experiment, store)
    _quiet_optuna()
    reporter = reporter_for(spec.experiment)
    runner = Runner(spec, store, reporter, storage=storage)
    base_seed = spec.experiment.train.seed
    plan = [(t.number, base_seed + k + 1) for t in best for k in range(seeds)]
    console.print(f"re-running trials {', '.join(str(t.number) for t in best)} with seeds "
                  f"{', '.join(str(base_seed + k + 1) for k in range(seeds))} "
                  f"({len(plan)} trials)")
    try:
        outcomes = runner.confirm(plan)
    except KeyboardInterrupt:
        reporter.stop_live()
        errors.print("stopped by Ctrl-C; the re-runs that finished are kept as trials.")
        raise typer.Exit(130) from None
    table = Table(title=f"{experiment} · the best {len(best)} trials with {seeds} more seeds",
                  title_justify="left")
    for column in ("trial", "first run", "seeds", "mean", "spread (sd)", "min", "max"):
        table.add_column(column, justify="right")
    for t in best:
        values = [o.result.value for n, o in outcomes if n == t.number
                  and o.result.state == "complete" and o.result.value is not None]
        values = [v for v in values if v is not None]  # (for the type checker: filtered above)
        runs = [t.value or 0.0, *values]  # t.value is set: `done` keeps complete trials with one
        sd = statistics.stdev(runs) if len(runs) > 1 else None
        table.add_row(str(t.number), fmt.number(t.value), str(len(values)),
                      fmt.number(statistics.fmean(runs)), fmt.number(sd), fmt.number(min(runs)),
                      fmt.number(max(runs)))
    console.print(table)
    console.print("mean and spread over the first run and the re-runs; a lead smaller than the "
                  "spread is seed noise.")


def rerun(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    trial: Annotated[str, typer.Argument(help="best, trial:N or N.")],
    seed: Annotated[int | None, typer.Option(help="Another seed (default: the same).")] = None,
    store: StoreOption = DEFAULT_STORE,
    storage: StorageOption = None,
) -> None:
    """Run a trial again with the same parameters (and another seed), as a new trial."""
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    record = trial_ref(store, experiment, trial)
    source = st.experiment_source(store, experiment)
    if source is None or not Path(source).exists():
        raise TunelabError(f"the experiment file of {experiment} ({source}) is gone; "
                           "rerun needs it", "experiment file missing")
    spec = load_spec(source, store=store)
    reporter = reporter_for(spec.experiment)
    _quiet_optuna()
    runner = Runner(spec, store, reporter, storage=storage)
    outcome = runner.rerun(record.number, seed)
    console.print(f"trial {outcome.number} re-ran trial {record.number}"
                  + (f" with seed {seed}" if seed is not None else "")
                  + f": {outcome.result.state}, {fmt.number(outcome.result.value)} "
                    f"(was {fmt.number(record.value)})")
