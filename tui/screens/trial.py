"""One trial: its loss curves, its evaluation against the baseline, the resolved experiment,
samples, and the log tail (the failure reason and traceback first, for a failed trial)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static, TabbedContent, TabPane

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.tui import source
from tunelab.tui.screens.base import StoreScreen
from tunelab.tui.widgets.curves import X_AXES, Curves
from tunelab.tui.widgets.plot import LinePlot, Series
from tunelab.tui.widgets.table import VimTable


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

    rows: list[tuple[str, Any, str]] = []

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and not prefix.endswith("space."):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
            return
        key = prefix.rstrip(".")
        rows.append((key, value, ""))

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
    found = []
    for key, value, _ in rows:
        if key in params:
            note = "searched"
        elif key in defaults and defaults[key] == value:
            note = "default"
        else:
            note = ""
        found.append((key, value, note))
    return found


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


HARDEST = 5  # examples listed under "hardest examples"; the rest are a query away


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
            right = (w.output or "").strip() == (w.reference or "").strip()
            text.append(f"  {when:<10} ", style="bold green" if right else "bold")
            text.append((w.output or "").rstrip().replace("\n", " ⏎ ") + "\n")
        text.append("reference  ", style="bold")
        text.append((answers[0].reference or "").rstrip() + "\n\n")
    return text


def hardest_text(hardest: list[st.ExampleLoss]) -> Text:
    """The examples the best checkpoint finds hardest: often mislabelled or off-format."""
    text = Text()
    if not hardest:
        return text
    text.append("\n── hardest examples (highest loss under the best checkpoint)\n", style="bold")
    for e in hardest:
        text.append(f"  {fmt.number(e.loss):>8}  ", style="bold")
        text.append(f"{e.split:<10} {e.origin or f'row {e.position}'}\n")
    text.append("  all of them: select * from example_losses order by loss desc\n", style="dim")
    return text


class TrialScreen(StoreScreen):
    BINDINGS = [
        Binding("x", "x_axis", "x: step/epoch/tokens"),
        Binding("L", "log_y", "log y", show=False),
        Binding("left_square_bracket", "step(-1)", "Prev", key_display="["),
        Binding("right_square_bracket", "step(1)", "Next", key_display="]"),
        Binding("1", "tab('curves')", "Curves", show=False),
        Binding("2", "tab('evaluation')", "Eval", show=False),
        Binding("3", "tab('config')", "Config", show=False),
        Binding("4", "tab('samples')", "Samples", show=False),
        Binding("5", "tab('log')", "Log", show=False),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload", show=False),
        Binding("question_mark", "app.help", "Help", key_display="?"),
    ]

    @dataclass
    class Loaded(Message):
        trial: source.Trial
        curve: st.TrialCurve
        fresh: bool                  # True: replaces the curves; False: rows since the last read
        evaluations: dict[str, dict[str, float]]
        spec: dict[str, Any]
        samples: list[st.Sample]
        log: list[str]
        config: list[tuple[str, Any, str]] | None = None  # exact rows, when the file allows
        watched: list[st.WatchSample] = field(default_factory=list)  # eval.watch, per evaluation
        hardest: list[st.ExampleLoss] = field(default_factory=list)  # highest example losses

    def __init__(self, experiment: source.Experiment, trial: source.Trial,
                 trials: list[source.Trial] | None = None) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial = trial
        self.neighbours = trials or [trial]
        self.curves = Curves()
        self.x_axis = "step"
        self.log_y = False
        self.evaluations: dict[str, dict[str, float]] = {}
        self.spec: dict[str, Any] = {}
        self._fresh = True
        self._log_shown = False

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title")
        yield Static("", id="summary", classes="detail")
        with TabbedContent(id="tabs", initial="curves"):
            with TabPane("1 Curves", id="curves"):
                yield LinePlot(id="plot")
            with TabPane("2 Evaluation", id="evaluation"):
                yield Static("", id="verdict")
                yield VimTable(id="metrics")
            with TabPane("3 Config", id="config"):
                yield VimTable(id="resolved")
            with TabPane("4 Samples", id="samples"):
                with VerticalScroll():
                    yield Static("", id="sample-text")
            with TabPane("5 Log", id="log"):
                with VerticalScroll(id="log-scroll"):
                    yield Static("", id="log-text")
        yield Footer()

    def on_mount(self) -> None:
        self._title()
        super().on_mount()

    def _title(self) -> None:
        o = self.trial.overview
        self.query_one("#title", Static).update(
            f"tunelab · {self.experiment.summary.name} · trial {o.number} ({o.state})")

    def reload(self) -> None:
        self._load(self._fresh)

    def action_reload(self) -> None:
        self._fresh = True
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="trial")
    def _load(self, fresh: bool) -> None:
        try:
            name, number, path = self.experiment.summary.name, self.trial.number, self.trial.store
            found = next((t for t in source.trials((path,), name) if t.number == number), self.trial)
            if fresh:
                curve = st.trial_curve(path, name, number, max_points=2000)
            else:  # only the rows logged since the last read
                curve = st.curve_since(path, name, number, self.curves.last_steps())
            evaluations = source.evaluations(self.experiment.stores, name)
            spec = self.spec or source.spec(self.experiment.stores, name)
            samples = st.samples(path, name, f"trial:{number}", limit=20)
            watched = st.watch_samples(path, name, number)
            hardest = st.hardest_examples(path, name, number, limit=HARDEST)
            log = st.log_tail(Path(found.overview.artifact_dir or "") / "trial.log", 400) \
                if found.overview.artifact_dir else []
            config = None
            if fresh:
                try:
                    config = exact_rows(path, name, found.overview.params)
                except Exception:  # noqa: BLE001 - the stored spec is shown instead
                    config = None
            self.post_message(self.Loaded(found, curve, fresh, evaluations, spec, samples, log, config,
                                          watched, hardest))
        except Exception as error:  # noqa: BLE001
            self.report(error)

    def on_trial_screen_loaded(self, event: Loaded) -> None:
        if event.trial.number != self.trial.number:
            return  # a read for the trial shown before [ or ]
        self.loaded_once = True
        self.trial = event.trial
        self._title()
        if event.fresh:
            self.curves = Curves()
        self.curves.add(event.curve)
        self._fresh = False
        self.live = self.trial.overview.state == "running"
        self.evaluations, self.spec = event.evaluations, event.spec
        self._summary()
        self._plot()
        self._evaluation()
        if event.config is not None or not self.query_one("#resolved", VimTable).row_count:
            self._config(event.config)
        self._samples(event.samples, event.watched, event.hardest)
        self._log(event.log)

    # -- the parts
    def _summary(self) -> None:
        o, s = self.trial.overview, self.experiment.summary
        objective = s.objective or "eval_loss"
        base = self.evaluations.get("base", {})
        baseline = base.get(objectives.metric_key(objective, objectives.stage_of(self.spec)))
        value = o.value if o.value is not None else o.best_value
        text = Text()
        text.append(f"{o.method_kind or '?'} · ")
        text.append(", ".join(f"{fmt.param_name(k)} {fmt.number(v)}" for k, v in o.params.items()
                              if k != "method.kind") or "no searched parameters")
        text.append(f"\n{objective} ")
        text.append(fmt.number(value) + (" (so far)" if o.state == "running" else ""), style="bold")
        if baseline is not None:
            text.append(f" vs baseline {fmt.number(baseline)}")
        if o.success is not None:
            text.append(" · success ")
            text.append("✓ yes" if o.success else "✗ no", style="bold green" if o.success else "bold red")
        extra = [fmt.duration(o.duration_s) if o.duration_s else "",
                 f"{o.steps} steps" if o.steps else (f"step {o.last_step}" if o.last_step else ""),
                 f"{fmt.count(o.tokens)} tokens" if o.tokens else "", o.device or "",
                 f"${o.cost:.2f}" if o.cost else ""]
        text.append(" · " + " · ".join(e for e in extra if e) if any(extra) else "")
        if o.state == "failed":
            text.append(f"\nfailed: {o.fail_reason or 'unknown'} (the Log tab has the traceback)",
                        style="bold red")
        self.query_one("#summary", Static).update(text)

    def _plot(self) -> None:
        x = self.x_axis
        series = []
        for split, label, marker, lines in (("train", "train loss", "braille", True),
                                            ("validation", "validation loss", "x", True)):
            xs, ys = self.curves.series(split, "loss", x)
            if xs:
                series.append(Series(label, xs, ys, marker=marker, lines=lines))
        # the base model's loss where the validation curve is measured: a dpo stage's is its
        # DPO loss on the held-out pairs, not the parent's supervised loss
        base = self.evaluations.get("base", {}).get(
            objectives.metric_key("eval_loss", objectives.stage_of(self.spec)))
        if base is not None and series:
            lo = min(min(s.xs) for s in series)
            hi = max(max(s.xs) for s in series)
            series.append(Series("baseline validation", [lo, hi], [base, base], marker="-"))
        plot = self.query_one(LinePlot)
        plot.empty_text = "no metrics logged yet" if self.loaded_once else "loading…"
        plot.show(series, title=f"loss by {x}" + (" (log y)" if self.log_y else ""),
                  xlabel=x, ylog=self.log_y)

    def _evaluation(self) -> None:
        ref = f"trial:{self.trial.number}"
        mine, base = self.evaluations.get(ref, {}), self.evaluations.get("base", {})
        success: dict[str, str] = self.spec.get("success") or {}
        rows = []
        for key in sorted(set(mine) | set(base), key=lambda k: (k.split("/")[0] != "test", k)):
            m, b = mine.get(key), base.get(key)
            change = Text("—", style="dim")
            metric = key.split("/", 1)[1]
            if m is not None and b:
                better = objectives.better(m, b, objectives.default_direction(metric))
                change = Text(f"{(m - b) / abs(b):+.0%}", style="green" if better else "red")
            judged: Any = ""
            if key.startswith("test/") and metric in success:
                ok = objectives.passes(success[metric], m)
                judged = Text(f"{success[metric]} {'✓' if ok else '✗'}", style="green" if ok else "red")
            rows.append((key, [key, fmt.number(m), fmt.number(b), change, judged]))
        self.query_one("#metrics", VimTable).fill(
            [("metric", "split/metric"), ("trial", f"trial {self.trial.number}"), ("base", "baseline"),
             ("change", "vs baseline"), ("criterion", "success criterion")], rows)
        verdict = Text()
        if success:
            needs = " and ".join(f"{k} {v}" for k, v in success.items())
            if not mine:
                verdict.append(f"success ({needs} on test): not evaluated yet", style="dim")
            else:
                ok = bool(objectives.succeeded(success, mine))
                verdict.append("success: ")
                verdict.append("✓ yes" if ok else "✗ no", style="bold green" if ok else "bold red")
                verdict.append(f" (needs {needs} on the test split)")
        elif not mine:
            verdict.append("not evaluated (the trial did not complete)", style="dim")
        self.query_one("#verdict", Static).update(verdict)

    def _config(self, exact: list[tuple[str, Any, str]] | None = None) -> None:
        if not self.spec and exact is None:
            return
        rows = []
        for key, value, note in exact or resolved_rows(self.spec, self.trial.overview.params):
            shown = fmt.number(value) if isinstance(value, float) else str(value)
            style = "bold" if note == "searched" else ("dim" if note == "default" else "")
            rows.append((key, [Text(key, style=style), Text(note, style="italic"),
                               Text(shown, style=style)]))
        self.query_one("#resolved", VimTable).fill(
            [("key", "key"), ("note", ""), ("value", "value")], rows)

    def _samples(self, samples: list[st.Sample], watched: list[st.WatchSample],
                 hardest: list[st.ExampleLoss]) -> None:
        text = Text()
        if samples:
            for i, s in enumerate(samples, 1):
                right = (s.output or "").strip() == (s.reference or "").strip()
                text.append(f"── sample {i} ", style="bold")
                text.append("(matches the reference)\n" if right else "(differs from the reference)\n",
                            style="green" if right else "yellow")
                text.append("prompt     ", style="bold")
                text.append((s.prompt or "").rstrip() + "\n")
                text.append("output     ", style="bold")
                text.append((s.output or "").rstrip() + "\n")
                text.append("reference  ", style="bold")
                text.append((s.reference or "").rstrip() + "\n\n")
        else:
            text.append("no samples: they are generated on the test split once a trial completes\n",
                        style="dim")
        text.append_text(watch_text(watched))
        text.append_text(hardest_text(hardest))
        self.query_one("#sample-text", Static).update(text)

    def _log(self, lines: list[str]) -> None:
        o = self.trial.overview
        text = Text()
        if o.state == "failed":
            text.append(f"failed: {o.fail_reason or 'unknown reason'}\n", style="bold red")
            if o.error:
                text.append(o.error.rstrip() + "\n", style="red")
            text.append("\n")
        if lines:
            text.append(f"── {o.artifact_dir}/trial.log (last {len(lines)} lines)\n", style="dim")
            text.append("\n".join(lines))
        else:
            text.append("no log file" + (f" at {o.artifact_dir}/trial.log" if o.artifact_dir else ""),
                        style="dim")
        self.query_one("#log-text", Static).update(text)
        scroll = self.query_one("#log-scroll", VerticalScroll)
        if self.live or not self._log_shown:  # a tail: open at its end, follow it while it grows
            self._log_shown = True
            scroll.scroll_end(animate=False)

    # -- actions
    def action_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        self._plot()
        self.notify(f"x axis: {self.x_axis}", timeout=1.5)

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self._plot()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_step(self, by: int) -> None:
        numbers = [t.number for t in self.neighbours]
        if self.trial.number not in numbers:
            return
        i = numbers.index(self.trial.number) + by
        if 0 <= i < len(numbers):
            self.trial = self.neighbours[i]
            self.curves = Curves()
            self.query_one("#resolved", VimTable).clear()
            self._title()
            self._fresh = True
            self.reload()

    def commands(self):  # noqa: ANN201
        yield ("Switch the x axis", "step, epoch, tokens", self.action_x_axis)
        yield ("Toggle a log y axis", "for losses that span decades", self.action_log_y)
        for tab in ("curves", "evaluation", "config", "samples", "log"):
            yield (f"Show {tab}", f"the {tab} tab", lambda tab=tab: self.action_tab(tab))

