"""`tunelab trials`, `export`, `export-store` and `gc`: what a sweep left, shown, shipped or
cleaned up. `print_trials` is also the summary at the end of `tunelab run`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunelab import store as st
from tunelab.engine import baselines, objectives
from tunelab.engine import format as fmt
from tunelab.engine.refs import ModelRef
from tunelab.store.errors import TunelabError
from tunelab.store.overview import trial_costs
from tunelab.tui.cli import pareto
from tunelab.tui.cli.layout import wrap
from tunelab.tui.cli.options import DEFAULT_STORE, StoreOption
from tunelab.tui.cli.output import console, print_wide, width
from tunelab.tui.states import state_markup


def print_trials(store: Path, name: str) -> None:
    st.flush_orphans(store)
    experiment = st.require_experiment(store, name)
    trials = st.list_trials(store, name)
    evaluations = st.evaluations(store, name)
    baseline = evaluations.get("base", {})
    plain_spec = st.experiment_spec(store, name)
    success: dict[str, str] = plain_spec.get("success") or {}
    front, others = _objectives(store, name, plain_spec, trials, evaluations)
    tested = _test_metrics(success, (plain_spec.get("eval") or {}).get("metrics") or [],
                           evaluations)
    keys: list[str] = []
    for t in trials:
        keys += [k for k in t.params if k not in keys]
    objective = experiment.objective or "objective"
    # a preference sweep's objective is each trial's placement: its rating over the base model
    # when its votes placed it (engine.review.standing), told to the search
    preference = objective == objectives.PREFERENCE
    title = fmt.objective_title(objective)

    def shown_value(value: float | None) -> str:
        return fmt.objective_value(objective, value)
    marks = "◆ Pareto front" if others else "★ best"
    table = Table(title=f"{name} · {fmt.counted(len(trials), 'trial')} ({marks})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("state")
    for key in keys:
        table.add_column(fmt.param_name(key), justify="right")
    table.add_column(title, justify="right")
    for other in others:
        table.add_column(other, justify="right")
    for metric in tested:
        table.add_column(f"test {metric}", justify="right")
    if success:
        table.add_column("success")
    table.add_column("duration", justify="right")
    best = st.best_trial(trials, experiment.direction)
    for t in trials:
        state = state_markup(t.state)
        if t.state == "failed" and t.fail_reason:
            state += f" ({t.fail_reason})"
        star = "★" if best is not None and t.number == best.number and not others else ""
        star = "◆" if t.number in front else star
        values = evaluations.get(str(ModelRef.trial(t.number)), {})
        judged = [fmt.number(values.get(f"test/{m}")) for m in tested]
        if success:
            judged.append("" if t.state != "complete" else _verdict_mark(success, values))
        table.add_row(f"{star}{t.number}", state, *[_param(t.params, k) for k in keys],
                      shown_value(t.value), *[fmt.number(others[o].get(t.number)) for o in others],
                      *judged, fmt.duration(t.duration_s))
    print_wide(table)
    # the baseline's value of the objective (a dpo stage's eval_loss is on its held-out pairs)
    stage = objectives.stage_of(plain_spec)
    dpo = stage != "sft"  # a preference stage: its parent is the baseline
    start = objectives.objective_value(objective, stage, baseline) if plain_spec else None
    if preference:
        start = 0.0  # the ratings are over the base model
    if baseline:
        extra = "".join(f" · test {m} {fmt.number(baseline.get(f'test/{m}'))}" for m in tested)
        what = "the parent" if dpo else "the base model"
        console.print(wrap(f"baseline ({what}): {title} {shown_value(start)}{extra}", width()))
    for prompted in baselines.baselines(evaluations)[1:]:  # with examples in the prompt
        judged = [m for m in tested if objectives.judged_key(m) in prompted.values]
        shown = " · ".join(f"test {m} {fmt.number(prompted.values[objectives.judged_key(m)])}"
                           for m in judged) or "no metric of the table measured"
        console.print(wrap(f"baseline ({prompted.words}): {shown}", width()))
    if best is not None:
        shown = ", ".join(f"{fmt.param_name(k)} {fmt.number(v)}" for k, v in best.params.items())
        gain = ""
        if start is not None and best.value is not None and not preference:
            gain = f" vs baseline {shown_value(start)}"
        shown = f" ({shown})" if shown else ""  # nothing searched: no empty brackets
        over = " over the base" if preference else ""
        console.print(wrap(f"[bold]best:[/] trial {best.number}{shown} {title} "
                           f"{shown_value(best.value)}{over}{gain}", width()))
        if success:
            ok = objectives.succeeded(success, evaluations.get(str(ModelRef.trial(best.number)), {}))
            needs = " and ".join(f"{m} {c}" for m, c in success.items())
            word = ("unknown: not measured" if ok is None  # its evaluations were lost
                    else "[green]yes[/]" if ok else "[red]no[/]")
            console.print(wrap(f"success: {word} (needs {needs} on the test split)", width()))
    meets = baselines.meets_words(success, evaluations) if success and not dpo else None
    if meets:
        console.print(wrap(f"[bold]{meets}[/]", width()))


def _param(params: dict[str, Any], key: str) -> str:
    """A trial's value of a searched key; "–" when its condition ruled the key out (a full
    fine-tune has no LoRA rank), as in the TUI's trials table."""
    return fmt.number(params[key]) if key in params else "[dim]–[/]"


def _test_metrics(success: dict[str, str], metrics: list[str],
                  evaluations: dict[str, dict[str, float]]) -> list[str]:
    """The test-split metrics the table shows: those [success] judges; without [success], the
    test loss and the file's eval.metrics that the trials have."""
    if success:
        return list(success)
    found = {k.removeprefix("test/") for ref, values in evaluations.items()
             if not baselines.is_baseline(ref)
             for k in values if k.startswith("test/")}
    return [m for m in ("loss", *metrics) if m in found]


def _objectives(store: Path, name: str, spec: dict[str, Any], trials: list[st.TrialRecord],
                evaluations: dict[str, dict[str, float]]) -> tuple[set[int], dict[str, dict]]:
    """For a study of several objectives: the numbers of the trials on the Pareto front and,
    per objective after the first, each trial's value."""
    search = spec.get("search") or {}
    names = search.get("objectives") or []
    directions = search.get("directions") or []
    if len(names) < 2:
        return set(), {}
    costs = trial_costs(store, name) if "cost" in names else {}
    others = {k: v for k, v in pareto.objective_values(
        names, trials, evaluations, costs, objectives.stage_of(spec)).items() if k != names[0]}
    points = {t.number: [t.value, *(others[o].get(t.number) for o in names[1:])]
              for t in trials if t.state == "complete"}
    return pareto.front(points, directions), others


def _verdict_mark(success: dict[str, str], values: dict[str, float]) -> str:
    ok = objectives.succeeded(success, values)
    return "—" if ok is None else "[green]✓ pass[/]" if ok else "[red]✗ fail[/]"


def trials(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """List the trials of an experiment with their parameters, objective and state."""
    print_trials(store, experiment)


def trial_ref(store: Path, experiment: str, ref: str) -> st.TrialRecord:
    """`best`, `trial:7` or `7` → the trial."""
    st.flush_orphans(store)
    record = st.require_experiment(store, experiment)
    trials = st.list_trials(store, experiment)
    if ref == "best":
        found = st.best_trial(trials, record.direction)
        if found is None:
            raise TunelabError(f"{experiment} has no complete trial yet", "no best trial")
        return found
    try:
        parsed = ModelRef.parse(ref)
    except TunelabError:
        parsed = ModelRef("base")  # refused below, in this command's words
    if parsed.kind != "trial" or parsed.experiment not in (None, experiment):
        raise TunelabError(f"{ref!r}: expected best, trial:N or N", "bad trial")
    for t in trials:
        if t.number == parsed.number:
            return t
    raise TunelabError(f"{experiment} has no trial {parsed.number}", "unknown trial")


def export(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    trial: Annotated[str, typer.Argument(help="best, trial:N or N.")],
    out: Annotated[Path, typer.Option("--out", help="The folder to write (new or empty).")],
    merge: Annotated[bool, typer.Option(
        "--merge", help="Fold a LoRA/QLoRA adapter into the base weights.")] = False,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Export a trial's best checkpoint (adapter or merged weights) with a model card."""
    from tunelab.engine.serve.export import export_trial

    record = trial_ref(store, experiment, trial)
    values = st.evaluations(store, experiment).get(str(ModelRef.trial(record.number)), {})
    with console.status(f"exporting trial {record.number}…"):
        folder = export_trial(record, values, out, merge)
    console.print(f"exported trial {record.number} of {experiment} to {folder}")


def size(n: int) -> str:
    """Bytes for people: 812 B, 3.4 MiB, 1.8 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"



def export_store(
    folder: Annotated[Path, typer.Argument(help="The folder to write TABLE.parquet files into.")],
    store: StoreOption = DEFAULT_STORE,
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
        table.add_row(item.table, f"{item.rows:,}", item.path.name, size(item.bytes))
    console.print(table)


def gc(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    keep: Annotated[int, typer.Option(
        help="Keep the checkpoints of this many best complete trials.")] = 3,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    store: StoreOption = DEFAULT_STORE,
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
                      ", ".join(str(f) for f in t.folders), size(t.bytes))
    print_wide(table)  # whole folder paths in a pipe: `tunelab gc x | tee plan.txt`
    console.print(f"frees {size(plan.bytes_freed)} · the trials' rows stay in the store")
    if not yes:
        if not sys.stdin.isatty():
            console.print("nothing deleted: run again with --yes to delete")
            return
        if not typer.confirm("delete these checkpoints?", default=False):
            console.print("nothing deleted")
            return
    freed = st.apply_gc(plan)
    console.print(f"deleted {sum(len(t.folders) for t in plan.remove)} folders, "
                  f"freed {size(freed)}")
