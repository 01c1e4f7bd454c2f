"""`tunelab run`, `worker`, `enqueue`, `confirm`, `rerun`: the commands that train.

The training stack is imported inside each command, so the other commands start without it.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.engine.spec.sections import SEED_MAX
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
    _notes_to_terminal()


class _Notes(logging.Handler):
    """What tunelab has to say while it works (a journal repaired, a store held or gone),
    wrapped between words (Python's own last-resort printing cut sentences mid-word). On a
    terminal through the console that draws the live block, so a note goes above it instead of
    into it; into a pipe or a log on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        (console if console.is_terminal else errors).print(
            record.getMessage(), markup=False, highlight=False)


def _notes_to_terminal() -> None:
    logger = logging.getLogger("tunelab")
    if not any(isinstance(h, _Notes) for h in logger.handlers):
        logger.addHandler(_Notes(logging.WARNING))


@dataclass(frozen=True)
class SweepRequest:
    """What `run` and `worker` were asked for, each option by name."""

    command: str  # run | worker
    file: Path
    store: Path
    sets: tuple[str, ...] = ()
    storage: str | None = None
    workers: int | None = None
    smoke: bool = False
    new_study: bool = False
    retry_failed: bool = False

    def again(self) -> str:
        """The command that resumes this sweep: the same file, --set, store and storage. Not
        --new-study: a study it started is the study of this version of the file, which a
        plain run goes on with (engine.run.identity)."""
        words = ["tunelab", self.command, str(self.file)]
        words += [w for item in self.sets for w in ("--set", item)]
        if self.store != DEFAULT_STORE:
            words += ["--store", str(self.store)]
        if self.storage:
            words += ["--storage", self.storage]
        if self.smoke:
            words.append("--smoke")
        return shlex.join(words)


def _sweep(request: SweepRequest) -> None:
    from tunelab.engine.run.identity import settle_study
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    store = request.store
    loaded = load_spec(request.file, list(request.sets), store)
    settled = settle_study(loaded, store, new_study=request.new_study, smoke=request.smoke,
                           sets=request.sets)
    spec = settled.spec
    _quiet_optuna()
    name = spec.experiment.name
    reporter = reporter_for(spec.experiment)
    runner = Runner(spec, store, reporter, storage=request.storage, smoke=request.smoke,
                    workers=request.workers, retry_failed=request.retry_failed)
    if settled.how == "new":
        console.print(f"[bold]{name}[/]: a new study beside {loaded.experiment.name!r}")
    elif settled.how == "version":
        console.print(f"[bold]{name}[/]: going on with the study of this version of "
                      f"{request.file.name} (started with --new-study)")
    try:
        runner.run()
    except KeyboardInterrupt:
        reporter.finish()
        errors.print("stopped by Ctrl-C; finished trials are kept. "
                     f"Run `{request.again()}` to resume.", markup=False)
        raise typer.Exit(130) from None
    except BaseException:
        reporter.finish()  # the live block goes before the error is said
        raise
    reporter.finish()
    console.print()
    try:
        print_trials(store, name)
    except st.StoreLocked as error:
        errors.print(f"the trials are not shown: {error.message}", markup=False)
    if request.smoke:
        console.print(f"smoke run passed: every stage ran. Next: tunelab run {request.file}")
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
        "--new-study", help="Start a new study NAME-v2 beside NAME (the file changed since "
                            "NAME ran, or NAME cannot go on). Running the file again later "
                            "goes on with NAME-v2.")] = False,
    workers: WorkersOption = None,
    retry_failed: RetryOption = False,
) -> None:
    """Run an experiment: prepare the data, evaluate the baseline, run the sweep.

    Running it again resumes a stopped sweep; finished trials are kept. Ctrl-C once: the
    running trials stop after their current evaluation; twice: they stop now.
    """
    _sweep(SweepRequest("run", file, store, tuple(set_ or ()), storage, workers, smoke=smoke,
                        new_study=new_study, retry_failed=retry_failed))


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
    _sweep(SweepRequest("worker", file, store, tuple(set_ or ()), storage, workers,
                        retry_failed=retry_failed))


def _spec_of(experiment: str, store: Path) -> Any:
    """The experiment a queued trial or a re-run is checked and run with: a file as it is now,
    or for an experiment's name the configuration its trials ran with (as the store recorded
    it, `--set`s included; the file may have changed since)."""
    from tunelab.engine.spec import load_spec
    from tunelab.engine.spec.trial import recorded_spec

    path = Path(experiment)
    if path.suffix == ".toml" and path.exists():
        return load_spec(path, [], store)
    if not store.exists() or st.get_experiment(store, experiment) is None:
        raise TunelabError(f"{experiment!r} is neither an experiment file nor an experiment of "
                           f"{store}", "unknown experiment")
    return recorded_spec(st.experiment_spec(store, experiment),
                         st.experiment_source(store, experiment), experiment)


def enqueue(
    experiment: Annotated[str, typer.Argument(help="The experiment file, or its name in the store.")],
    set_: Annotated[list[str], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="A parameter of the search space, e.g. --set train.learning_rate=2e-4 "
             "(repeatable; those not given are sampled).")],
    store: StoreOption = DEFAULT_STORE,
    storage: StorageOption = None,
) -> None:
    """Queue a known configuration: the sweep tries it before sampling new ones. It is checked
    as its trial will run: searched keys, values the space takes, a valid experiment."""
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec.trial import queued_params

    _quiet_optuna()
    spec = _spec_of(experiment, store)
    params = queued_params(spec, set_)
    runner = Runner(spec, store, reporter_for(spec.experiment), storage=storage)
    runner.enqueue(params)
    shown = ", ".join(f"{fmt.param_name(k)} {v}" for k, v in params.items())
    console.print(f"queued for {runner.exp.name}: {shown}. "
                  f"The next trial of `tunelab run {spec.path}` takes it.")


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
    spec = _spec_of(experiment, store)  # the trials' own configuration, not the file's now
    _quiet_optuna()
    reporter = reporter_for(spec.experiment)
    runner = Runner(spec, store, reporter, storage=storage)
    base_seed = spec.experiment.train.seed
    plan = [(t.number, base_seed + k + 1) for t in best for k in range(seeds)]
    console.print(f"re-running trials {', '.join(str(t.number) for t in best)} with seeds "
                  f"{', '.join(str(base_seed + k + 1) for k in range(seeds))} "
                  f"({fmt.counted(len(plan), 'trial')})")
    try:
        outcomes = runner.confirm(plan)
    except KeyboardInterrupt:
        reporter.stop_live()
        errors.print("stopped by Ctrl-C; the re-runs that finished are kept as trials.")
        raise typer.Exit(130) from None
    title = f"the best {fmt.counted(len(best), 'trial')} with {fmt.counted(seeds, 'more seed')}"
    table = Table(title=f"{experiment} · {title}", title_justify="left")
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
    seed: Annotated[int | None, typer.Option(
        help="Another seed (default: the same).", min=0, max=SEED_MAX)] = None,
    store: StoreOption = DEFAULT_STORE,
    storage: StorageOption = None,
) -> None:
    """Run a trial again as a new trial: its parameters and the configuration it ran with (as
    the store recorded it, whatever the file says now), with another seed if given."""
    from tunelab.engine.run.runner import Runner

    record = trial_ref(store, experiment, trial)
    spec = _spec_of(experiment, store)
    reporter = reporter_for(spec.experiment)
    _quiet_optuna()
    runner = Runner(spec, store, reporter, storage=storage)
    outcome = runner.rerun(record.number, seed)
    console.print(f"trial {outcome.number} re-ran trial {record.number}"
                  + (f" with seed {seed}" if seed is not None else "")
                  + f": {outcome.result.state}, {fmt.number(outcome.result.value)} "
                    f"(was {fmt.number(record.value)})")
