"""The `tunelab` command."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.store.errors import TunelabError

app = typer.Typer(
    name="tunelab",
    help="Declare, search, compare, judge and ship language-model fine-tunes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

StoreOption = Annotated[
    Path,
    typer.Option("--store", envvar="TUNELAB_STORE", help="The DuckDB store file."),
]


def _default_store() -> Path:
    return Path(os.environ.get("TUNELAB_STORE", st.DEFAULT_STORE))


# ---------------------------------------------------------------- run


class ConsoleReporter:
    """Shows a sweep as it goes. On a terminal: a live block (done/running/pruned/failed, best so
    far, ETA, then one line per running trial with its step and loss) above which a line per
    finished trial is printed. Otherwise (nohup, CI, logs): plain lines, one per evaluation and
    one per finished trial."""

    def __init__(self, name: str, direction: str = "minimize") -> None:
        self.name = name
        self.direction = direction
        self.live: Any = None
        self.running: dict[int, dict[str, Any]] = {}  # trial number -> what it shows
        self.target = 0
        self.finished = 0
        self.workers = 1
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.durations: list[float] = []
        self.best: tuple[float, int] | None = None
        self.note = ""  # shown in the live block (the baseline, stopping…)

    @property
    def current(self) -> dict[str, Any]:
        """The trial shown last (one worker: the trial)."""
        return next(reversed(self.running.values()), {})

    def _progress(self) -> str:
        """`3/8 · 2 running · 1 pruned · best 0.652 (trial 1) · ETA 2m10s`"""
        parts = [f"{self.finished}/{self.target}"]
        if len(self.running) > 1 or self.workers > 1:
            parts.append(f"{len(self.running)} running")
        for state in ("pruned", "failed"):
            if self.counts.get(state):
                parts.append(f"{self.counts[state]} {state}")
        if self.best is not None:
            parts.append(f"best {fmt.number(self.best[0])} (trial {self.best[1]})")
        if self.durations and self.finished < self.target:
            mean = sum(self.durations) / len(self.durations)
            left = self.target - self.finished
            parts.append(f"ETA {fmt.duration(mean * left / max(1, self.workers))}")
        return " · ".join(parts)

    def _trial_text(self, number: int, params: dict[str, Any], tail: str) -> str:
        parts = [f"trial {number:<3}"]
        for key, value in params.items():
            shown = fmt.number(value) if isinstance(value, float) else str(value)
            parts.append(shown if key == "method.kind" else f"{fmt.param_name(key)} {shown}")
        return "  ".join(parts) + "  " + tail

    def _running_text(self, c: dict[str, Any]) -> str:
        step = f"  step {c['step']}" if c.get("step") is not None else ""
        ev = f"  eval_loss {fmt.number(c['eval'])}" if c.get("eval") is not None else ""
        loss = f"  loss {fmt.number(c['loss'])}" if c.get("loss") is not None else ""
        where = f"epoch {c['epoch']}/{c['epochs']}" if c.get("started") else "starting…"
        return self._trial_text(c["number"], c["params"], f"{where}{step}{ev}{loss}")

    def _render(self) -> str:
        if not self.running:
            return self.note
        lines = [self._running_text(c) for c in self.running.values()]
        if len(lines) == 1 and self.workers == 1:
            return lines[0] + f"   [dim]{self._progress()}[/]"
        head = f"[bold]{self.name}[/] · {self._progress()}" + (f" · {self.note}" if self.note else "")
        return "\n".join([head, *("  " + line for line in lines)])

    def _refresh(self) -> None:
        if not console.is_terminal:
            return
        from rich.live import Live
        from rich.text import Text

        text = Text.from_markup(self._render())
        if self.live is None:
            self.live = Live(text, console=console, transient=True, refresh_per_second=4)
            self.live.start()
        else:
            self.live.update(text)

    def _status(self, text: str) -> None:
        if console.is_terminal:
            self.note = text
            self._refresh()
        else:
            console.print(text)

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _print(self, text: str, err: bool = False) -> None:
        """A line above the live block (which stays)."""
        (self.live.console if self.live is not None and not err else errors if err else console).print(text)

    def event(self, name: str, **data: Any) -> None:
        if name == "data":
            report = data["report"]
            counts = report.counts
            rejected = report.rows_rejected
            console.print(
                f"[bold]{self.name}[/] · {report.rows_read:,} examples → "
                f"{counts['train']}/{counts['validation']}/{counts['test']} (train/validation/test)"
                f" · {report.duplicates_removed} duplicates removed · {rejected} rows rejected"
            )
            warned = [f for f in getattr(report, "findings", []) if f.level == "warning"]
            if warned:
                console.print(f"[yellow]{len(warned)} data warning{'s' if len(warned) != 1 else ''}[/]"
                              f" (first: {warned[0].message}); `tunelab data FILE` shows the report")
        elif name == "preferences":
            from tunelab.tui import data_view

            data_view.print_preferences(console, self.name, data["parent"], data["report"])
        elif name == "building_base":
            console.print("building the scratch model and training its tokenizer on the data…")
        elif name == "stale":
            console.print(f"trial {data['number']} was left running by a stopped run: "
                          "marked failed")
        elif name == "retry":
            console.print(f"trial {data['number']} failed: queued again with the same parameters")
        elif name == "baseline_start":
            self._status("evaluating the base model (the baseline)…")
        elif name == "baseline":
            self.note = ""
            self._stop_live()
            v = data["values"]
            cached = " (from an earlier run)" if data["cached"] else ""
            console.print(f"baseline    eval_loss {fmt.number(v.get('validation/loss'))}"
                          f"   test loss {fmt.number(v.get('test/loss'))}{cached}")
            if "preferences/preference_accuracy" in v:  # a dpo stage: the parent is the baseline
                console.print(
                    "            the parent prefers the chosen answer in "
                    f"{fmt.percent(v['preferences/preference_accuracy'])} of held-out pairs, "
                    f"{fmt.percent(v.get('preferences_train/preference_accuracy'))} of training pairs")
        elif name == "baseline_failed":
            self.note = ""
            self._stop_live()
            errors.print(f"the baseline evaluation failed: {data['error']}")
        elif name == "sweep":
            self.target, self.finished = data["trials"], data["finished"]
            self.workers = data.get("workers", 1)
            left = data["trials"] - data["finished"]
            resumed = f", resuming after {data['finished']} finished" if data["finished"] else ""
            at_once = f", {self.workers} at a time" if self.workers > 1 else ""
            n = data.get("threads")
            cpu = f" ({n} CPU thread{'s' if n != 1 else ''} each)" if n else ""
            console.print(f"{left} trial{'s' if left != 1 else ''} to run{at_once}{resumed}{cpu}")
        elif name == "timeout":
            self._print(f"search.timeout ({fmt.duration(data['seconds'])}) reached: "
                        "no new trial starts")
        elif name in ("stopping", "stopping_now"):
            now = name == "stopping_now"
            running = ", ".join(str(n) for n in data["running"]) or "none"
            self.note = "stopping now…" if now else "stopping after the current evaluation…"
            self._print(f"[yellow]Ctrl-C: {'stopping now' if now else 'no new trial; trials '}"
                        f"{'' if now else running + ' stop after their current evaluation'}"
                        f"{'' if now else ' (Ctrl-C again to stop now)'}[/]")
            self._refresh()
        elif name == "trial_start":
            self.running[data["number"]] = {
                "number": data["number"], "params": data["params"], "epochs": data["epochs"],
                "epoch": 0, "eval": None, "loss": None, "step": None, "started": False}
            if console.is_terminal:
                self._refresh()
            elif self.workers > 1:
                console.print(self._trial_text(data["number"], data["params"], "started"))
        elif name == "trial_progress" and data["kind"] == "oom":
            self._print(f"trial {data['number']}: out of memory at micro-batch "
                        f"{data['micro_batch']}; retrying at {data['next']} with twice the "
                        "gradient accumulation (same effective batch)")
        elif name == "trial_progress":
            kind = data["kind"]
            c = self.running.get(data["number"])
            if c is None:
                return
            if kind in ("start", "log", "eval"):
                c["started"] = True
            if "step" in data:
                c["step"] = data["step"]
            if kind == "eval":
                c["epoch"] = round(data["epoch"])
                c["eval"] = data["eval_loss"]
            if kind == "log":
                c["loss"] = data["loss"]
            if console.is_terminal:
                self._refresh()
            elif kind == "eval":
                console.print(self._running_text({**c, "loss": None})
                              + f"   {self._progress()}")
        elif name == "trial_end":
            outcome = data["outcome"]
            result = outcome.result
            c = self.running.pop(outcome.number, None) or {"epoch": 0, "epochs": "?"}
            self.counts[result.state] = self.counts.get(result.state, 0) + 1
            self.durations.append(outcome.duration_s)
            if result.state in {"complete", "pruned"}:
                self.finished += 1
            if result.state == "complete" and result.value is not None:
                better = (self.best is None or (result.value > self.best[0]
                          if self.direction == "maximize" else result.value < self.best[0]))
                if better:
                    self.best = (result.value, outcome.number)
            mark = {"complete": "[green]✓ complete[/]", "pruned": "[yellow]✂ pruned[/]"}.get(
                result.state, f"[red]✗ failed ({result.fail_reason})[/]")
            tail = (f"epoch {c['epoch']}/{c['epochs']}  eval_loss {fmt.number(result.value)}  "
                    f"{mark}  {fmt.duration(outcome.duration_s)}   [dim]{self._progress()}[/]")
            self._print(self._trial_text(outcome.number, outcome.params, tail))
            if result.state == "failed" and result.error:
                last = result.error.strip().splitlines()[-1]
                errors.print(f"            {last}")
            if not self.running:
                self._stop_live()
            else:
                self._refresh()


WorkersOption = Annotated[int | None, typer.Option(
    "--workers", help="Trials at once on this machine (default: one per GPU, pinned to it; 1 on "
                      "a CPU machine).")]
RetryOption = Annotated[bool, typer.Option(
    "--retry-failed", help="Queue the failed trials again with the same parameters.")]


def _sweep(file: Path, store: Path, set_: list[str] | None, storage: str | None, smoke: bool,
           new_study: bool, workers: int | None, retry_failed: bool, command: str) -> None:
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    spec = load_spec(file, set_ or [], store)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    reporter = ConsoleReporter(spec.experiment.name, spec.experiment.search.direction)
    runner = Runner(spec, store, reporter, storage=storage, new_study=new_study, smoke=smoke,
                    workers=workers, retry_failed=retry_failed)
    name = reporter.name = runner.exp.name
    if new_study and name != spec.experiment.name:
        console.print(f"[bold]{name}[/]: a new study beside {spec.experiment.name!r}")
    try:
        runner.run()
    except KeyboardInterrupt:
        reporter._stop_live()
        errors.print("stopped by Ctrl-C; finished trials are kept. "
                     f"Run `tunelab {command} {file}` again to resume.")
        raise typer.Exit(130) from None
    console.print()
    _print_trials(store, name)
    if smoke:
        console.print(f"smoke run passed: every stage ran. Next: tunelab run {file}")
        return
    console.print(f"next: tunelab trials {name} · "
                  f"tunelab sql \"select state, count(*) from trials group by 1\"")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    store: StoreOption = Path(st.DEFAULT_STORE),
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key for this run, e.g. --set train.epochs=2 (repeatable).")] = None,
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


@app.command()
def worker(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML), the same on every machine.")],
    storage: Annotated[str, typer.Option(
        help="The study's shared Optuna storage, e.g. postgresql://user:pw@host/tunelab.")],
    store: StoreOption = Path(st.DEFAULT_STORE),
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key, as for run (use the same on every machine).")] = None,
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


@app.command()
def enqueue(
    experiment: Annotated[str, typer.Argument(help="The experiment file, or its name in the store.")],
    set_: Annotated[list[str], typer.Option(
        "--set", help="A parameter of the search space, e.g. --set train.learning_rate=2e-4 "
                      "(repeatable; those not given are sampled).")],
    store: StoreOption = Path(st.DEFAULT_STORE),
    storage: Annotated[str | None, typer.Option(help="Optuna storage, as for run.")] = None,
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
    runner = Runner(spec, store, ConsoleReporter(spec.experiment.name), storage=storage)
    runner.enqueue(params)
    shown = ", ".join(f"{fmt.param_name(k)} {v}" for k, v in params.items())
    console.print(f"queued for {runner.exp.name}: {shown}. "
                  f"The next trial of `tunelab run {spec.path}` takes it.")


@app.command()
def confirm(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    top: Annotated[int, typer.Option(help="How many of the best trials to re-check.", min=1)] = 3,
    seeds: Annotated[int, typer.Option(help="Runs of each with another seed.", min=1)] = 3,
    store: StoreOption = Path(st.DEFAULT_STORE),
    storage: Annotated[str | None, typer.Option(help="Optuna storage, as for run.")] = None,
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
    done.sort(key=lambda t: t.value, reverse=record.direction == "maximize")  # type: ignore[arg-type, return-value]
    best = done[:top]
    spec = _spec_of(experiment, store)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    reporter = ConsoleReporter(experiment, record.direction or "minimize")
    runner = Runner(spec, store, reporter, storage=storage)
    base_seed = spec.experiment.train.seed
    plan = [(t.number, base_seed + k + 1) for t in best for k in range(seeds)]
    console.print(f"re-running trials {', '.join(str(t.number) for t in best)} with seeds "
                  f"{', '.join(str(base_seed + k + 1) for k in range(seeds))} "
                  f"({len(plan)} trials)")
    try:
        outcomes = runner.confirm(plan)
    except KeyboardInterrupt:
        reporter._stop_live()
        errors.print("stopped by Ctrl-C; the re-runs that finished are kept as trials.")
        raise typer.Exit(130) from None
    table = Table(title=f"{experiment} · the best {len(best)} trials with {seeds} more seeds",
                  title_justify="left")
    for column in ("trial", "first run", "seeds", "mean", "spread (sd)", "min", "max"):
        table.add_column(column, justify="right")
    for t in best:
        values = [o.result.value for n, o in outcomes if n == t.number
                  and o.result.state == "complete" and o.result.value is not None]
        runs = [t.value, *values]
        sd = statistics.stdev(runs) if len(runs) > 1 else None
        table.add_row(str(t.number), fmt.number(t.value), str(len(values)),
                      fmt.number(statistics.fmean(runs)), fmt.number(sd), fmt.number(min(runs)),
                      fmt.number(max(runs)))
    console.print(table)
    console.print("mean and spread over the first run and the re-runs; a lead smaller than the "
                  "spread is seed noise.")


# ---------------------------------------------------------------- check, schema


def _check_preferences(spec: Any, store: Path) -> None:
    """A dpo stage's pairs: how many are usable, and whether that is enough to run."""
    from tunelab.engine.data import preferences
    from tunelab.tui import data_view

    _, _, report, refusal = preferences.checked_pairs(spec, store)
    data_view.print_preferences(console, spec.experiment.name, spec.experiment.method.from_,
                                report)
    if refusal:
        raise TunelabError(refusal, "too few preference pairs")


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    explain: Annotated[bool, typer.Option(
        "--explain", help="Print every resolved key, defaults marked.")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key, as with `tunelab run` (repeatable).")] = None,
    store: StoreOption = Path(st.DEFAULT_STORE),
) -> None:
    """Check an experiment file without running it: every mistake, or the resolved plan.
    A dpo stage is checked against its parent and its preference pairs in the store."""
    from tunelab.engine.spec import explain as ex
    from tunelab.engine.spec import load_spec

    spec = load_spec(file, set_ or [])
    parent_known = False
    if spec.experiment.method.stage == "dpo":  # resolved against its parent, once it exists
        parent = spec.experiment.method.parent[0]
        parent_known = store.exists() and st.get_experiment(store, parent) is not None
        if parent_known:
            spec = load_spec(file, set_ or [], store)
    exp = spec.experiment
    console.print(f"[bold]{exp.name}[/] ({file}) [green]✓ valid[/]")
    if exp.method.stage == "dpo" and parent_known:
        _check_preferences(spec, store)
    elif exp.method.stage == "dpo":
        console.print(f"[yellow]note:[/] its parent {exp.method.from_} is not in {store} yet: "
                      "run it first; its model, data and the preference pairs are checked then")
    if exp.description:
        console.print(exp.description)
    for line in ex.summary(exp):
        console.print("  " + line, markup=False)
    if exp.search.space:
        console.print(f"search space ({len(exp.search.space)} keys):")
        width = max(len(k) for k in exp.search.space)
        for key, what, when in ex.space(exp):
            console.print(f"  {key:<{width}}  {what}" + (f"  ({when})" if when else ""),
                          markup=False)
    unused_by_kind = ex.method_keys_unused(exp)
    unused = unused_by_kind & {
        f"method.{k}" for k in spec.raw.get("method", {}) if k != "kind"}
    for key in sorted(unused):
        console.print(f"[yellow]note:[/] {key} is set but method.kind = "
                      f"{exp.method.kind!r} does not use it")
    if explain:
        table = Table(title="resolved experiment", title_justify="left", box=None)
        table.add_column("key")
        table.add_column("value")
        table.add_column("")
        for dotted, value, default in ex.resolved(exp):
            shown = (value if isinstance(value, str) else f"{value:g}"
                     if isinstance(value, float) else json.dumps(value))
            note = "[dim]default[/]" if default else ""
            if dotted in unused_by_kind:
                note = f"[dim]unused by {exp.method.kind}[/]"
            table.add_row(dotted, shown, note)
        console.print(table)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """The JSON Schema of the experiment file, for editor completion and checking.

    With Taplo / Even Better TOML, put `#:schema ./tunelab.schema.json` on the file's first line.
    """
    from tunelab.engine.spec import Experiment

    text = json.dumps(Experiment.model_json_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


# ---------------------------------------------------------------- data


@app.command()
def data(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    show: Annotated[int, typer.Option(
        help="Print this many training examples exactly as the model sees them.")] = 0,
    store: StoreOption = Path(st.DEFAULT_STORE),
    force: Annotated[bool, typer.Option(
        help="Go on with fewer examples than data.min_examples.")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key, e.g. --set data.dedupe=exact (repeatable).")] = None,
) -> None:
    """Prepare the data and print the report: counts per split, lengths in tokens, duplicates and
    rows removed and why. The prepared splits are cached for `tunelab run`.
    """
    from tunelab.engine.data import prepare as data_prep
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.run.runner import paths
    from tunelab.engine.spec import load_spec
    from tunelab.tui import data_view

    spec = load_spec(file, set_ or [], store)
    name = spec.experiment.name
    if spec.experiment.method.stage == "dpo":  # its data are preference pairs
        _check_preferences(spec, store)
        return
    runs, _ = paths(store, name)
    try:
        prepared = data_prep.prepare(spec, runs / "data", force=force)
    except data_prep.DataRejected as rejected:
        data_view.print_report(console, name, data_prep.fingerprint(spec), rejected.report)
        raise
    data_view.print_report(console, name, prepared.fingerprint, prepared.report)
    with st.Spool(store, tag="data") as spool:
        spool.write([data_prep.report_event(name, prepared)])
    if show > 0:
        train = prepared.rows("train")
        tokenizer = data_prep.tokenizer_for(spec, train, runs)
        template = chat_render.template_text(spec.experiment.dataset.template, tokenizer)
        console.print()
        data_view.print_examples(console, train[:show], tokenizer, template)
    console.print(f"next: tunelab run {file} · "
                  f"tunelab sql \"select * from data_reports where experiment = '{name}'\"")


# ---------------------------------------------------------------- trials


def _print_trials(store: Path, name: str) -> None:
    st.flush_orphans(store)
    experiment = st.require_experiment(store, name)
    trials = st.list_trials(store, name)
    evaluations = st.evaluations(store, name)
    baseline = evaluations.get("base", {})
    plain_spec = st.experiment_spec(store, name)
    success: dict[str, str] = plain_spec.get("success") or {}
    front, others = _pareto(store, name, plain_spec.get("search") or {}, trials, evaluations)
    keys: list[str] = []
    for t in trials:
        keys += [k for k in t.params if k not in keys]
    objective = experiment.objective or "objective"
    marks = "◆ Pareto front" if others else "★ best"
    table = Table(title=f"{name} · {len(trials)} trials ({marks})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("state")
    for key in keys:
        table.add_column(fmt.param_name(key), justify="right")
    table.add_column(objective, justify="right")
    for other in others:
        table.add_column(other, justify="right")
    for metric in success:
        table.add_column(f"test {metric}", justify="right")
    if success:
        table.add_column("success")
    table.add_column("duration", justify="right")
    best = st.best_trial(trials, experiment.direction)
    for t in trials:
        state = {"complete": "[green]complete[/]", "pruned": "[yellow]pruned[/]",
                 "failed": "[red]failed[/]", "running": "[cyan]running[/]"}.get(t.state, t.state)
        if t.state == "failed" and t.fail_reason:
            state += f" ({t.fail_reason})"
        star = "★" if best is not None and t.number == best.number and not others else ""
        star = "◆" if t.number in front else star
        values = evaluations.get(f"trial:{t.number}", {})
        judged = [fmt.number(values.get(f"test/{m}")) for m in success]
        if success:
            judged.append("" if t.state != "complete" else _verdict_mark(success, values))
        table.add_row(f"{star}{t.number}", state, *[fmt.number(t.params.get(k)) for k in keys],
                      fmt.number(t.value), *[fmt.number(others[o].get(t.number)) for o in others],
                      *judged, fmt.duration(t.duration_s))
    console.print(table)
    # the baseline's value of the objective (a dpo stage's eval_loss is on its held-out pairs)
    from tunelab.engine.spec import Experiment
    from tunelab.engine.train.evaluate import objective_value

    dpo = (plain_spec.get("method") or {}).get("stage") == "dpo"
    start = objective_value(Experiment.model_validate(plain_spec), baseline) if plain_spec else None
    if baseline:
        extra = "".join(f" · test {m} {fmt.number(baseline.get(f'test/{m}'))}" for m in success)
        what = "the parent" if dpo else "the base model"
        console.print(f"baseline ({what}): {objective} {fmt.number(start)}{extra}")
    if best is not None:
        shown = ", ".join(f"{fmt.param_name(k)} {fmt.number(v)}" for k, v in best.params.items())
        gain = ""
        if start is not None and best.value is not None:
            gain = f" vs baseline {fmt.number(start)}"
        console.print(f"[bold]best:[/] trial {best.number} ({shown}) {objective} "
                      f"{fmt.number(best.value)}{gain}")
        if success:
            from tunelab.engine.train.evaluate import verdict

            judged = verdict(success, evaluations.get(f"trial:{best.number}", {}))
            needs = " and ".join(f"{m} {c}" for m, c in success.items())
            word = "[green]yes[/]" if all(judged.values()) else "[red]no[/]"
            console.print(f"success: {word} (needs {needs} on the test split)")


def _pareto(store: Path, name: str, search: dict[str, Any], trials: list[st.TrialRecord],
            evaluations: dict[str, dict[str, float]]) -> tuple[set[int], dict[str, dict]]:
    """For a study of several objectives: the numbers of the trials on the Pareto front and,
    per objective after the first, each trial's value."""
    objectives = search.get("objectives") or []
    directions = search.get("directions") or []
    if len(objectives) < 2:
        return set(), {}
    quoted = name.replace("'", "''")
    extra = {int(r[0]): (r[1], r[2]) for r in st.query(
        store, f"select number, cost, duration_s from trials where experiment = '{quoted}'").rows}
    others: dict[str, dict[int, float | None]] = {}
    for objective in objectives[1:]:
        values: dict[int, float | None] = {}
        for t in trials:
            if objective in ("cost", "duration_s"):
                values[t.number] = extra.get(t.number, (None, None))[0 if objective == "cost" else 1]
            else:
                key = "validation/loss" if objective == "eval_loss" else f"validation/{objective}"
                values[t.number] = evaluations.get(f"trial:{t.number}", {}).get(key)
        others[objective] = values
    points = {}
    for t in trials:
        row = [t.value, *(others[o].get(t.number) for o in objectives[1:])]
        if t.state == "complete" and all(v is not None for v in row):
            points[t.number] = [v if d == "minimize" else -v for v, d in zip(row, directions, strict=False)]

    def dominated(p: list[float]) -> bool:
        return any(all(a <= b for a, b in zip(q, p, strict=False)) and q != p for q in points.values())

    return {n for n, p in points.items() if not dominated(p)}, others


def _verdict_mark(success: dict[str, str], values: dict[str, float]) -> str:
    from tunelab.engine.train.evaluate import verdict

    return "[green]✓ pass[/]" if all(verdict(success, values).values()) else "[red]✗ fail[/]"


@app.command()
def trials(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    store: StoreOption = Path(st.DEFAULT_STORE),
) -> None:
    """List the trials of an experiment with their parameters, objective and state."""
    _print_trials(store, experiment)


def _trial_ref(store: Path, experiment: str, ref: str) -> st.TrialRecord:
    """`best`, `trial:7` or `7` → the trial."""
    st.flush_orphans(store)
    record = st.require_experiment(store, experiment)
    trials = st.list_trials(store, experiment)
    if ref == "best":
        found = st.best_trial(trials, record.direction)
        if found is None:
            raise TunelabError(f"{experiment} has no complete trial yet", "no best trial")
        return found
    number = ref.removeprefix("trial:")
    if not number.isdigit():
        raise TunelabError(f"{ref!r}: expected best, trial:N or N", "bad trial")
    for t in trials:
        if t.number == int(number):
            return t
    raise TunelabError(f"{experiment} has no trial {number}", "unknown trial")


@app.command()
def export(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    trial: Annotated[str, typer.Argument(help="best, trial:N or N.")],
    out: Annotated[Path, typer.Option("--out", help="The folder to write (new or empty).")],
    merge: Annotated[bool, typer.Option(
        "--merge", help="Fold a LoRA/QLoRA adapter into the base weights.")] = False,
    store: StoreOption = Path(st.DEFAULT_STORE),
) -> None:
    """Export a trial's best checkpoint (adapter or merged weights) with a model card."""
    from tunelab.engine.serve.export import export_trial

    record = _trial_ref(store, experiment, trial)
    values = st.evaluations(store, experiment).get(f"trial:{record.number}", {})
    with console.status(f"exporting trial {record.number}…"):
        folder = export_trial(record, values, out, merge)
    console.print(f"exported trial {record.number} of {experiment} to {folder}")


@app.command()
def rerun(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    trial: Annotated[str, typer.Argument(help="best, trial:N or N.")],
    seed: Annotated[int | None, typer.Option(help="Another seed (default: the same).")] = None,
    store: StoreOption = Path(st.DEFAULT_STORE),
    storage: Annotated[str | None, typer.Option(help="Optuna storage, as for run.")] = None,
) -> None:
    """Run a trial again with the same parameters (and another seed), as a new trial."""
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    record = _trial_ref(store, experiment, trial)
    source = st.experiment_source(store, experiment)
    if source is None or not Path(source).exists():
        raise TunelabError(f"the experiment file of {experiment} ({source}) is gone; "
                           "rerun needs it", "experiment file missing")
    spec = load_spec(source, store=store)
    reporter = ConsoleReporter(experiment)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    runner = Runner(spec, store, reporter, storage=storage)
    outcome = runner.rerun(record.number, seed)
    console.print(f"trial {outcome.number} re-ran trial {record.number}"
                  + (f" with seed {seed}" if seed is not None else "")
                  + f": {outcome.result.state}, {fmt.number(outcome.result.value)} "
                    f"(was {fmt.number(record.value)})")


# ---------------------------------------------------------------- sql


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    """A value as a person reads it in a table: short numbers, times to the second."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return fmt.number(value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


StoresOption = Annotated[
    list[Path] | None,
    typer.Option("--store", envvar="TUNELAB_STORE",
                 help="A store file; repeat it to query several files as one."),
]

FORMATS = ("table", "csv", "json", "parquet")


def _size(n: int) -> str:
    """Bytes for people: 812 B, 3.4 MiB, 1.8 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# A query may start with a comment ("-- the best trial…"): not an option, the query itself.
@app.command(context_settings={"ignore_unknown_options": True})
def sql(
    query: Annotated[str | None, typer.Argument(
        help="The SQL query; read from standard input when absent or '-'.")] = None,
    stores: StoresOption = None,
    format_: Annotated[str, typer.Option(
        "--format", help="table (for people); csv, json or parquet (for scripts).")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the result to this file (needed for parquet).")] = None,
) -> None:
    """Query the store with SQL (read-only).

    Tables: experiments, trials, trial_params, metrics, evaluations, samples, data_reports,
    reviews, review_items,
    votes. Views: best_trials, curves, trial_summary, leaderboard (see the README). With several
    --store files, each table is the union of the files' and each file is also reachable by its
    name (box1.duckdb → box1.trials).
    """
    import duckdb

    if format_ not in FORMATS:
        raise TunelabError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}",
                           "bad option")
    if format_ == "parquet" and out is None:
        raise TunelabError("--format parquet writes a file: add --out FILE.parquet", "bad option")
    paths = stores or [_default_store()]
    text = sys.stdin.read() if query in (None, "-") else query
    if not text or not text.strip():
        raise TunelabError("no query given", "bad query")
    st.check_read_only(text)
    for path in paths:
        if path.exists():
            st.flush_orphans(path)
    try:
        if format_ == "parquet":
            assert out is not None
            count = st.query_to_parquet(paths, text, out)
            errors.print(f"{count:,} row{'s' if count != 1 else ''} → {out}")
            return
        result = st.query(paths, text)
    except duckdb.Error as error:
        raise TunelabError(str(error), "query failed") from None
    if format_ in {"csv", "json"}:
        buffer = io.StringIO()
        if format_ == "csv":
            writer = csv.writer(buffer)
            writer.writerow(result.columns)
            writer.writerows([[_plain(v) for v in row] for row in result.rows])
        else:
            rows = [{c: _plain(v) for c, v in zip(result.columns, row, strict=True)}
                    for row in result.rows]
            buffer.write(json.dumps(rows, indent=1) + "\n")
        if out is not None:
            out.write_text(buffer.getvalue(), encoding="utf-8")
        else:
            sys.stdout.write(buffer.getvalue())
        return
    table = Table()
    for column, kind in zip(result.columns, result.types, strict=True):
        numeric = any(k in kind.upper() for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL"))
        table.add_column(column, justify="right" if numeric else "left")
    for row in result.rows:
        table.add_row(*[_cell(v) for v in row])
    count = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if out is None:
        # each column needs its title and a few characters of its values, plus the borders
        cells = [[_cell(v) for v in column] for column in zip(*result.rows, strict=True)]
        needed = sum(max(len(name), min(max((len(c) for c in column), default=0), 12)) + 3
                     for name, column in zip(result.columns, cells or [[]] * len(result.columns),
                                             strict=True)) + 1
        if needed > console.width:
            # too wide to read squeezed: one block per row, a column a line (psql's \x)
            for number, row in enumerate(result.rows, start=1):
                record = Table(show_header=False, box=None, padding=(0, 1), title_justify="left",
                               title=f"── row {number} ──")
                record.add_column(style="bold", no_wrap=True)
                record.add_column()
                for column, value in zip(result.columns, row, strict=True):
                    record.add_row(column, _cell(value))
                console.print(record)
        else:
            console.print(table)
        console.print(count)
        return
    with out.open("w", encoding="utf-8") as f:
        target = Console(file=f, width=200, highlight=False)
        target.print(table)
        target.print(count)


# ---------------------------------------------------------------- export-store


@app.command("export-store")
def export_store(
    folder: Annotated[Path, typer.Argument(help="The folder to write TABLE.parquet files into.")],
    store: StoreOption = Path(st.DEFAULT_STORE),
) -> None:
    """Write every table of the store to Parquet, for a data warehouse or a notebook."""
    st.flush_orphans(store)
    done = st.export_store(store, folder)
    table = Table(title=f"{store} → {folder}", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("file")
    table.add_column("size", justify="right")
    for item in done:
        table.add_row(item.table, f"{item.rows:,}", item.path.name, _size(item.bytes))
    console.print(table)


# ---------------------------------------------------------------- gc


@app.command()
def gc(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    keep: Annotated[int, typer.Option(
        help="Keep the checkpoints of this many best complete trials.")] = 3,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    store: StoreOption = Path(st.DEFAULT_STORE),
) -> None:
    """Delete the checkpoints of trials that are not among the best N; their rows stay.

    Shows what goes and the disk it frees first, then asks (or goes ahead with --yes).
    """
    st.flush_orphans(store)
    plan = st.plan_gc(store, experiment, keep)
    kept = ", ".join(str(t.number) for t in plan.kept) or "none"
    console.print(f"{experiment}: keeping the checkpoints of the best {keep} complete "
                  f"trial{'s' if keep != 1 else ''} ({kept})")
    if not plan.remove:
        console.print("nothing to delete")
        return
    table = Table(title="checkpoints to delete", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("state")
    table.add_column("objective", justify="right")
    table.add_column("folders")
    table.add_column("size", justify="right")
    for t in plan.remove:
        table.add_row(str(t.number), t.state, fmt.number(t.value),
                      ", ".join(str(f) for f in t.folders), _size(t.bytes))
    console.print(table)
    console.print(f"frees {_size(plan.bytes_freed)} · the trials' rows stay in the store")
    if not yes:
        if not sys.stdin.isatty():
            console.print("nothing deleted: run again with --yes to delete")
            return
        if not typer.confirm("delete these checkpoints?", default=False):
            console.print("nothing deleted")
            return
    freed = st.apply_gc(plan)
    console.print(f"deleted {sum(len(t.folders) for t in plan.remove)} folders, "
                  f"freed {_size(freed)}")


# ---------------------------------------------------------------- tui


@app.command()
def tui(stores: StoresOption = None) -> None:
    """Open the terminal UI: experiments, live trials, loss curves, compare, SQL (read-only).

    `tunelab` with no arguments, in a terminal, opens it too. Repeat --store to browse several
    store files as one.
    """
    from tunelab.tui.app import run as run_tui

    run_tui(stores or [_default_store()])


from tunelab.tui.chat_cli import chat as _chat  # noqa: E402
from tunelab.tui.review_cli import review_app  # noqa: E402 - registered after the commands above

app.add_typer(review_app, name="review")
app.command("chat")(_chat)


def main() -> None:
    if len(sys.argv) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
        sys.argv.append("tui")  # `tunelab` alone in a terminal opens the UI
    try:
        app()
    except TunelabError as error:
        from tunelab.engine.errors import SpecError

        errors.print(f"[bold red]{error.title}[/]")
        errors.print(error.message, markup=False)
        sys.exit(2 if isinstance(error, SpecError) else 1)


if __name__ == "__main__":
    main()
