"""`tunelab check`, `schema` and `data`: an experiment file and its data, before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunelab import store as st
from tunelab.store.errors import TunelabError
from tunelab.tui.cli.options import DEFAULT_STORE, SetOption, StoreOption
from tunelab.tui.cli.output import console


def check_preferences(spec: Any, store: Path) -> None:
    """A preference stage's pairs (kto: single answers): how many are usable, what is measured
    on the votes, and whether a run would refuse them."""
    from tunelab.engine.review import stage_data
    from tunelab.tui.cli import data_view

    report, refusal = stage_data.check(spec, store)
    data_view.print_preferences(console, spec.experiment.name, spec.experiment.method.from_,
                                report)
    if refusal:
        raise TunelabError(refusal, "a run would refuse these votes")


def check(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    explain: Annotated[bool, typer.Option(
        "--explain", help="Print every resolved key, defaults marked.")] = False,
    set_: SetOption = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Check an experiment file without running it: every mistake, or the resolved plan.
    A preference stage is checked against its parent and its votes in the store."""
    from tunelab.engine.run.devices import fits_this_machine
    from tunelab.engine.spec import explain as ex
    from tunelab.engine.spec import load_spec

    spec = load_spec(file, set_ or [])
    parent_known = False
    if spec.experiment.method.stage != "sft":  # resolved against its parent, once it exists
        parent = spec.experiment.method.parent[0]
        parent_known = store.exists() and st.get_experiment(store, parent) is not None
        if parent_known:
            spec = load_spec(file, set_ or [], store)
    exp = spec.experiment
    fits_this_machine(exp)  # what `run` refuses on this machine is refused here too
    console.print(f"[bold]{exp.name}[/] ({file}) [green]✓ valid[/]")
    if exp.method.stage != "sft" and parent_known:
        check_preferences(spec, store)
    elif exp.method.stage != "sft":
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
        return
    if not out.parent.is_dir():
        raise TunelabError(f"--out {out}: the folder {out.parent} does not exist; create it "
                           "first or choose another path", "bad option")
    if out.is_dir():
        raise TunelabError(f"--out {out} is a folder; give a file name", "bad option")
    try:
        out.write_text(text)
    except OSError as error:
        raise TunelabError(f"--out {out}: cannot be written: {error.strerror or error}",
                           "cannot write") from None
    console.print(f"wrote {out}")


def data(
    file: Annotated[Path, typer.Argument(help="The experiment file (TOML).")],
    show: Annotated[int, typer.Option(
        help="Print this many training examples exactly as the model sees them.")] = 0,
    store: StoreOption = DEFAULT_STORE,
    force: Annotated[bool, typer.Option(
        help="Go on with fewer examples than data.min_examples.")] = False,
    set_: SetOption = None,
) -> None:
    """Prepare the data and print the report: counts per split, lengths in tokens, duplicates and
    rows removed and why. The prepared splits are cached for `tunelab run`.
    """
    from tunelab.engine.data import prepare as data_prep
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.data.checks import batch_over_split
    from tunelab.engine.run.runner import paths
    from tunelab.engine.spec import load_spec
    from tunelab.tui.cli import data_view

    spec = load_spec(file, set_ or [], store)
    name = spec.experiment.name
    if spec.experiment.method.stage != "sft":  # its data are votes
        check_preferences(spec, store)
        return
    runs, _ = paths(store, name)
    try:
        prepared = data_prep.prepare(spec, runs / "data", force=force)
    except data_prep.DataRejected as rejected:
        data_view.print_report(console, name, data_prep.fingerprint(spec), rejected.report)
        raise
    data_view.print_report(console, name, prepared.fingerprint, prepared.report)
    too_big = batch_over_split(spec.experiment, prepared.report.counts.get("train", 0))
    if too_big:
        console.print(f"[yellow]warning:[/] {too_big}")
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
