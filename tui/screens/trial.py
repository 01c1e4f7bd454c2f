"""One trial: its loss curves, its evaluation against the baselines (a classifier's confusion
matrix above it), the resolved experiment, samples, and the log tail (the failure reason and
traceback first, for a failed trial)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static, TabbedContent, TabPane

from tunelab import store as st
from tunelab.engine import baselines, objectives
from tunelab.engine import format as fmt
from tunelab.engine.refs import ModelRef
from tunelab.engine.train import confusion
from tunelab.tui import keys, source
from tunelab.tui.screens import trial_texts as texts
from tunelab.tui.screens.base import TabbedScreen
from tunelab.tui.widgets.curves import X_AXES, Curves
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.plot import LinePlot, Series
from tunelab.tui.widgets.scroll import VimScroll
from tunelab.tui.widgets.table import VimTable
from tunelab.tui.widgets.title import ScreenTitle


class TrialScreen(TabbedScreen):
    KEYS_OF = "trial"
    BINDINGS = keys.bindings(KEYS_OF)
    TABS = ("curves", "evaluation", "config", "samples", "log")
    TAB_KEYS = {"x_axis": "curves", "log_y": "curves"}  # keys that act on one tab only

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
        hard_texts: dict[tuple[str, int], source.ExampleText] = field(default_factory=dict)

    def __init__(self, experiment: source.Experiment, trial: source.Trial,
                 trials: list[source.Trial] | None = None) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial = trial
        self.trials = trials or [trial]  # the neighbours [ and ] step through
        self.curves = Curves()
        self.x_axis = "step"
        self.log_y = False
        self.evaluations: dict[str, dict[str, float]] = {}
        self.spec: dict[str, Any] = {}
        self._fresh = True
        self._log_shown = False
        self._config_shown = False

    def compose(self) -> ComposeResult:
        yield ScreenTitle(id="title")
        yield Static("", id="summary", classes="detail")
        with TabbedContent(id="tabs", initial="curves"):
            with TabPane("1 Curves", id="curves"):
                yield LinePlot(id="plot")
            with TabPane("2 Evaluation", id="evaluation"):
                yield Static("", id="verdict")
                # a classifier's (method.head = "classification"): read, not moved through
                yield VimTable(id="confusion", show_cursor=False)
                yield VimTable(id="metrics")
            with TabPane("3 Config", id="config"):
                with VimScroll(id="config-scroll"):
                    yield Static("", id="config-text")
            with TabPane("4 Samples", id="samples"):
                with VimScroll(id="samples-scroll"):
                    yield Static("", id="sample-text")
            with TabPane("5 Log", id="log"):
                with VimScroll(id="log-scroll"):
                    yield Static("", id="log-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._title()
        super().on_mount()

    def _title(self) -> None:
        o = self.trial.overview
        self.title = f"{self.experiment.summary.name} · trial {o.number} ({o.state})"

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
            samples = st.samples(path, name, str(ModelRef.trial(number)), limit=20)
            watched = st.watch_samples(path, name, number)
            hardest = st.hardest_examples(path, name, number, limit=texts.HARDEST)
            hard_texts = source.example_texts(path, found.overview.artifact_dir, hardest)
            log = st.log_tail(Path(found.overview.artifact_dir or "") / "trial.log", 400) \
                if found.overview.artifact_dir else []
            config = None
            if fresh:
                try:
                    config = texts.exact_rows(path, name, found.overview.params)
                except Exception:  # noqa: BLE001 - the stored spec is shown instead
                    config = None
            self.post_message(self.Loaded(found, curve, fresh, evaluations, spec, samples, log,
                                          config, watched, hardest, hard_texts))
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
        if event.config is not None or not self._config_shown:
            self._config(event.config)
        text = texts.samples_text(event.samples)
        text.append_text(texts.watch_text(event.watched))
        text.append_text(texts.hardest_text(event.hardest, event.hard_texts))
        self.query_one("#sample-text", Static).update(text)
        self._log(event.log)

    # -- the parts
    def _summary(self) -> None:
        """Three lines, each whole: how it was trained; the objective against the baseline and
        the verdict; what it cost."""
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
        if any(extra):
            text.append("\n" + " · ".join(e for e in extra if e))
        if o.state == "failed":
            text.append(f"\nfailed: {o.fail_reason or 'unknown'} (the Log tab has the traceback)",
                        style="bold red")
        self.query_one("#summary", Static).update(text)

    def _plot(self) -> None:
        x = self.x_axis
        series = []
        for split, label, marker in (("train", "train loss", "braille"),
                                     ("validation", "validation loss", "x")):
            xs, ys = self.curves.series(split, "loss", x)
            if xs:
                series.append(Series(label, xs, ys, marker=marker))
        # the base model's loss where the validation curve is measured: a dpo stage's is its
        # DPO loss on the held-out pairs, not the parent's supervised loss
        base = self.evaluations.get("base", {}).get(
            objectives.metric_key("eval_loss", objectives.stage_of(self.spec)))
        if base is not None and series:
            lo = min(min(s.xs) for s in series)
            hi = max(max(s.xs) for s in series)
            series.append(Series(f"baseline validation {fmt.number(base)}", [lo, hi], [base, base],
                                 marker="-", reference=True))
        plot = self.query_one(LinePlot)
        plot.empty_text = "no metrics logged yet" if self.loaded_once else "loading…"
        plot.show(series, title=f"loss by {x}" + (" (log y)" if self.log_y else ""),
                  xlabel=x, ylog=self.log_y)

    def _evaluation(self) -> None:
        ref = str(ModelRef.trial(self.trial.number))
        mine, base = self.evaluations.get(ref, {}), self.evaluations.get("base", {})
        # the base model with examples in its prompts: a column beside the zero-shot baseline
        shot = next(iter(baselines.baselines(self.evaluations)[1:]), None)
        success: dict[str, str] = self.spec.get("success") or {}
        rows = []
        shown = {k for k in set(mine) | set(base) if not k.startswith(f"{confusion.SPLIT}/")}
        for key in sorted(shown, key=lambda k: (k.split("/")[0] != "test", k)):
            m, b = mine.get(key), base.get(key)
            change = Text("—", style="dim")
            metric = key.split("/", 1)[1]
            if m is not None and b is not None:
                better = objectives.better(m, b, objectives.default_direction(metric))
                change = Text(fmt.change(m, b), style="green" if better else "red")
            judged: Any = ""
            if key.startswith("test/") and metric in success:
                ok = objectives.passes(success[metric], m)
                judged = (Text(success[metric], style="dim") if m is None  # judged neither way
                          else Text(f"{success[metric]} {'✓' if ok else '✗'}",
                                    style="green" if ok else "red"))
            shots = [fmt.number(shot.values.get(key))] if shot else []
            rows.append((key, [key, fmt.number(m), fmt.number(b), *shots, change, judged]))
        self.query_one("#metrics", VimTable).fill(
            [("metric", "split/metric"), ("trial", f"trial {self.trial.number}"), ("base", "baseline"),
             *([("fewshot", shot.label)] if shot else []),
             ("change", "vs baseline"), ("criterion", "criterion")], rows)
        verdict = Text()
        if success:
            needs = " and ".join(f"{k} {v}" for k, v in success.items())
            state = self.trial.overview.state
            if not mine:
                why = ("not evaluated yet" if state == "running" else "not measured"
                       if state == "complete" else "not evaluated (the trial did not complete)")
                verdict.append(f"success ({needs} on test): {why}", style="dim")
            else:
                passed = objectives.succeeded(success, mine)
                verdict.append("success: ")
                if passed is None:  # a value it judges was not measured (lost with a store)
                    verdict.append("unknown: not measured", style="dim")
                else:
                    verdict.append("✓ yes" if passed else "✗ no",
                                   style="bold green" if passed else "bold red")
                verdict.append(f" (needs {needs} on the test split)")
        elif not mine:
            verdict.append("not evaluated (the trial did not complete)", style="dim")
        self._confusion(confusion.from_values(mine))
        meets = baselines.meets_words(success, self.evaluations) if success else None
        if meets:
            verdict.append(("\n" if verdict else "") + meets, style="bold")
        self.query_one("#verdict", Static).update(verdict)

    def _confusion(self, matrix: confusion.Confusion | None) -> None:
        """A classifier's confusion matrix on the test split: a row per true label, a column per
        predicted one; the diagonal (right) green, the rest red where it is not 0."""
        table = self.query_one("#confusion", VimTable)
        table.display = matrix is not None
        if matrix is None:
            return
        rows = []
        for truth in matrix.labels:
            cells: list[Any] = [truth]
            for predicted in matrix.labels:
                n = matrix.count(truth, predicted)
                style = "bold green" if truth == predicted else ("red" if n else "dim")
                cells.append(Text(fmt.number(n), style=style))
            rows.append((truth, cells))
        columns = [("truth", "true ↓ predicted →"), *((f"p:{n}", n) for n in matrix.labels)]
        table.fill(columns, rows)

    def _config(self, exact: list[tuple[str, Any, str]] | None = None) -> None:
        if not self.spec and exact is None:
            return
        self._config_shown = True
        rows = exact or texts.resolved_rows(self.spec, self.trial.overview.params)
        self.query_one("#config-text", Static).update(texts.config_table(rows))

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
        scroll = self.query_one("#log-scroll", VimScroll)
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

    def action_step(self, by: int) -> None:
        numbers = [t.number for t in self.trials]
        if self.trial.number not in numbers:
            return
        i = numbers.index(self.trial.number) + by
        if 0 <= i < len(numbers):
            self.trial = self.trials[i]
            self.curves = Curves()
            self._config_shown = False
            self._title()
            self._fresh = True
            self.reload()

    def commands(self):  # noqa: ANN201
        yield ("Switch the x axis", "step, epoch, tokens", self.action_x_axis)
        yield ("Toggle a log y axis", "for losses that span decades", self.action_log_y)
        for n, tab in enumerate(self.TABS, 1):
            yield (f"Show {tab}", f"the {tab} tab ({n})", lambda n=n: self.action_tab(n))
