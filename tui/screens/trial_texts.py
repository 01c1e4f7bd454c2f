"""The texts of the trial screen's tabs: the resolved experiment (Config), and the evidence
behind its numbers (Samples): the test outputs, misses first; the watched prompts as the trial
learned; the examples it finds hardest, each with its prompt and answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.tui.source import ExampleText

HARDEST = 5  # examples listed under "hardest examples"; the rest are a query away
EMPTY = "(empty)"  # what an empty output reads as: an empty box looks like a missing one


def shown(text: str | None) -> Text:
    """A model's output or a reference as written, `(empty)` (dim) when there is nothing."""
    text = (text or "").rstrip()
    return Text(text) if text.strip() else Text(EMPTY, style="dim italic")


def matches(output: str | None, reference: str | None) -> bool:
    return (output or "").strip() == (reference or "").strip()


def resolved_rows(spec: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(dotted key, value, note) for every leaf of the trial's experiment: the sampled values
    set, each key marked "searched" or "default" (equal to the field's default)."""
    from tunelab.engine.spec import Experiment

    defaults: dict[str, Any] = {}

    def walk_defaults(model: Any, prefix: str) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if hasattr(type(value), "model_fields"):
                walk_defaults(value, f"{prefix}{name}.")
            elif not info.is_required():
                defaults[f"{prefix}{name}"] = info.get_default(call_default_factory=True)

    leaves: list[tuple[str, Any]] = []

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and not prefix.endswith("space."):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
            return
        leaves.append((prefix.rstrip("."), value))

    try:
        walk_defaults(Experiment.model_validate(spec), "")
    except Exception:  # noqa: BLE001 - an older spec: no default marks, values still shown
        defaults = {}
    merged = {**spec}
    for dotted, v in params.items():
        section, _, key = dotted.partition(".")
        if isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], key: v}
    walk(merged, "")
    return [(key, value, "searched" if key in params else
             "default" if key in defaults and defaults[key] == value else "")
            for key, value in leaves]


def exact_rows(store: Path, experiment: str, params: dict[str, Any]
               ) -> list[tuple[str, Any, str]] | None:
    """The rows of `tunelab check --explain` for the trial, defaults known exactly, when the
    experiment file is still there and unchanged since the run (its spec hash matches)."""
    from tunelab.engine.spec import explain, load_spec, with_overrides

    record = st.get_experiment(store, experiment)
    path = st.experiment_source(store, experiment)
    if record is None or not path or not Path(path).is_file():
        return None
    try:
        spec = load_spec(path, store=store)
    except Exception:  # noqa: BLE001 - a file edited since: fall back to the stored spec
        return None
    if spec.spec_hash() != record.spec_hash or spec.experiment.name != experiment:
        return None
    exp = with_overrides(spec, params)
    return [(key, value, "searched" if key in params else "default" if default else "")
            for key, value, default in explain.resolved(exp)]


def config_table(rows: list[tuple[str, Any, str]]) -> Table:
    """The resolved experiment as a table whose long values wrap (a path, the description)."""
    table = Table(box=None, show_header=True, header_style="bold", padding=(0, 2, 0, 0),
                  expand=True)
    table.add_column("key", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("value", ratio=1, overflow="fold")
    for key, value, note in rows:
        text = fmt.number(value) if isinstance(value, float) else str(value)
        style = "bold" if note == "searched" else ("dim" if note == "default" else "")
        table.add_row(Text(key, style=style), Text(note, style="italic"), Text(text, style=style))
    return table


def samples_text(samples: list[st.Sample]) -> Text:
    """The test outputs, those that miss the reference first (the evidence behind a low score);
    each numbered as generated."""
    text = Text()
    if not samples:
        return Text("no samples: they are generated on the test split once a trial completes\n",
                    style="dim")
    numbered = list(enumerate(samples, 1))
    missed = [(i, s) for i, s in numbered if not matches(s.output, s.reference)]
    text.append(f"{len(missed)} of {len(samples)} outputs differ from the reference"
                + (", shown first\n\n" if missed else "\n\n"), style="bold")
    for i, s in missed + [(i, s) for i, s in numbered if matches(s.output, s.reference)]:
        right = matches(s.output, s.reference)
        text.append(f"── sample {i} ", style="bold")
        text.append("(matches the reference)\n" if right else "(differs from the reference)\n",
                    style="green" if right else "yellow")
        for name, value in (("prompt", s.prompt), ("output", s.output),
                            ("reference", s.reference)):
            text.append(f"{name:<11}", style="bold")
            text.append_text(shown(value))
            text.append("\n")
        text.append("\n")
    return text


def watch_text(watched: list[st.WatchSample]) -> Text:
    """The watched prompts (eval.watch), each with its answer at every evaluation, oldest first:
    the outputs changing as the trial learns."""
    text = Text()
    if not watched:
        return text
    steps = sorted({w.step for w in watched})
    text.append(f"\n── watched as it learned ({len(steps)} evaluations)\n", style="bold")
    by_prompt: dict[int, list[st.WatchSample]] = {}
    for w in watched:
        by_prompt.setdefault(w.position, []).append(w)
    for position in sorted(by_prompt):
        answers = by_prompt[position]
        text.append("prompt     ", style="bold")
        text.append((answers[0].prompt or "").rstrip() + "\n")
        for w in answers:
            when = f"epoch {w.epoch:.2g}" if w.epoch is not None else f"step {w.step}"
            text.append(f"  {when:<10} ", style="bold green" if matches(w.output, w.reference)
                        else "bold")
            text.append_text(shown((w.output or "").replace("\n", " ⏎ ")))
            text.append("\n")
        text.append("reference  ", style="bold")
        text.append((answers[0].reference or "").rstrip() + "\n\n")
    return text


def hardest_text(hardest: list[st.ExampleLoss],
                 texts: dict[tuple[str, int], ExampleText]) -> Text:
    """The examples the best checkpoint finds hardest (often mislabelled or off-format), each
    with where it came from and what it says."""
    text = Text()
    if not hardest:
        return text
    text.append("\n── hardest examples (highest loss under the best checkpoint)\n", style="bold")
    for e in hardest:
        text.append(f"loss {fmt.number(e.loss)}", style="bold")
        text.append(f"  {e.split} · {e.origin or f'row {e.position}'}\n")
        found = texts.get((e.split, e.position))
        if found is None:
            text.append("  (the prepared data is gone: its text is not known)\n", style="dim")
            continue
        for name, value in (("prompt", found.prompt), ("answer", found.answer)):
            text.append(f"  {name:<9}", style="bold")
            text.append_text(shown(value))
            text.append("\n")
    text.append("all of them: select * from example_losses order by loss desc\n", style="dim")
    return text
