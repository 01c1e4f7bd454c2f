"""Several trials side by side: their validation curves overlaid, which parameters mattered
(Optuna's importance evaluators, with each categorical value's mean objective beside the shares),
the objective against each parameter, and for a study of several objectives its Pareto front
(every complete trial, not only the chosen)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static, TabbedContent, TabPane

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.tui import keys, source
from tunelab.tui.cli import pareto
from tunelab.tui.screens.base import TabbedScreen
from tunelab.tui.widgets.curves import X_AXES, Curves
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.plot import LinePlot, Series
from tunelab.tui.widgets.table import VimTable
from tunelab.tui.widgets.title import ScreenTitle


def bar(share: float, width: int = 20) -> str:
    full = share * width
    return "█" * int(full) + ("▌" if full - int(full) >= 0.5 else "")


def spread(slots: list[int]) -> list[float]:
    """Positions for points in category slots: the points of one slot side by side around its
    middle, so that trials with the same value and a close objective each stay visible."""
    count = {slot: slots.count(slot) for slot in set(slots)}
    seen: dict[int, int] = {}
    positions = []
    for slot in slots:
        k = seen[slot] = seen.get(slot, -1) + 1
        gap = min(0.12, 0.7 / count[slot])
        positions.append(slot + (k - (count[slot] - 1) / 2) * gap)
    return positions


def value_means(means: tuple[Any, ...]) -> str:
    """`full: 0.82 (3) · lora: 3.1 (2)`: each value's mean objective and its trials."""
    return " · ".join(f"{m.value}: {fmt.number(m.mean)} ({m.count})" for m in means)


class CompareScreen(TabbedScreen):
    KEYS_OF = "compare"
    BINDINGS = keys.bindings(KEYS_OF)
    TABS = ("overlay", "importance", "scatter", "front")
    TAB_KEYS = {"x_axis": "overlay"}  # p and m show their own tab

    # fANOVA first: the evaluator whose answer holds on small sweeps (engine/run/importance.py)
    METHODS = ("fanova", "ped-anova", "mean-decrease-impurity")

    @dataclass
    class CurvesLoaded(Message):
        curves: dict[int, st.TrialCurve]
        trials: list[source.Trial]
        evaluations: dict[str, dict[str, float]]  # what the front plots beside the objective
        spec: dict[str, Any]

    @dataclass
    class ImportanceLoaded(Message):
        importance: Any  # tunelab.engine.run.importance.Importance

    def __init__(self, experiment: source.Experiment, chosen: list[source.Trial],
                 trials: list[source.Trial]) -> None:
        super().__init__()
        self.experiment = experiment
        self.chosen = [t.number for t in chosen]
        self.trials = trials
        self.curves: dict[int, Curves] = {}
        self.x_axis = "step"
        self.param_index = 0
        self.method = self.METHODS[0]
        self.importance: Any = None
        self.importance_done = -1  # complete trials when importance was last asked for

    def compose(self) -> ComposeResult:
        numbers = ", ".join(f"#{n}" for n in self.chosen) or "no trials"
        self.title = f"{self.experiment.summary.name} · compare {numbers}"
        yield ScreenTitle(id="title")
        with TabbedContent(id="tabs", initial="overlay"):
            with TabPane("1 Validation curves", id="overlay"):
                yield LinePlot(id="overlay-plot")
            with TabPane("2 Parameter importance", id="importance"):
                yield Static("computing…", id="importance-note")
                yield VimTable(id="importance-table")
            with TabPane("3 Objective vs parameter", id="scatter"):
                yield LinePlot(id="scatter-plot")
            with TabPane("4 Front", id="front"):
                yield LinePlot(id="front-plot")
        yield KeyFooter()

    def reload(self) -> None:
        self._load_curves()
        # Importance again only when a trial has completed since, and never over one still
        # computing: fANOVA fits a forest and can take longer than a live refresh's interval,
        # and restarting it at every refresh would never let it finish.
        done = sum(t.overview.state == "complete" for t in self.trials)
        busy = any(w.group == "compare-importance" and w.is_running for w in self.workers)
        if not busy and (self.importance is None or done != self.importance_done):
            self.importance_done = done
            self._load_importance(self.method)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-curves")
    def _load_curves(self) -> None:
        try:
            name = self.experiment.summary.name
            trials = source.trials(self.experiment.stores, name)
            by_number = {t.number: t for t in trials}
            curves = {n: st.trial_curve(by_number[n].store, name, n, max_points=1000,
                                        names=["loss"])
                      for n in self.chosen if n in by_number}
            stores = self.experiment.stores
            self.post_message(self.CurvesLoaded(curves, trials, source.evaluations(stores, name),
                                                source.spec(stores, name)))
        except Exception as error:  # noqa: BLE001
            self.report(error)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-importance")
    def _load_importance(self, method: str) -> None:
        from tunelab.engine.run.importance import journal_for, parameter_importance

        try:
            store = self.experiment.stores[0]
            found = parameter_importance(journal_for(store), self.experiment.summary.name, method)
            self.post_message(self.ImportanceLoaded(found))
        except Exception as error:  # noqa: BLE001
            self.report(error)

    def on_compare_screen_curves_loaded(self, event: CurvesLoaded) -> None:
        self.loaded_once = True
        self.trials = event.trials
        self.live = any(t.overview.state == "running" for t in event.trials)
        self.curves = {}
        for n, curve in event.curves.items():
            self.curves[n] = Curves()
            self.curves[n].add(curve)
        self._overlay()
        self._scatter()
        self._front(event.evaluations, event.spec)

    def on_compare_screen_importance_loaded(self, event: ImportanceLoaded) -> None:
        self.importance = event.importance
        imp = event.importance
        note = self.query_one("#importance-note", Static)
        table = self.query_one("#importance-table", VimTable)
        columns = [("param", "parameter"), ("share", "importance"), ("bar", ""),
                   ("values", "mean objective by value (trials)")]
        if not imp.values and not imp.within:
            note.update(Text(f"no importance yet: {imp.note}", style="dim"))
            table.fill(columns, [])
            return
        few = " (few trials: a hint, not a finding)" if imp.trials < 10 else ""
        within = (" · * within the trials that sampled it (a conditional parameter)"
                  if imp.within else "")
        sampled = f" ({imp.note})" if imp.note else ""
        note.update(f"{imp.method} over {imp.trials} complete trials{sampled}{few}; shares "
                    f"summing to 1{within} (m: another evaluator)")
        rows = [(k, [k, f"{v:.2f}", bar(v), value_means(imp.means_of(k))]) for k, v in imp.values]
        for k, v, count in imp.within:
            share = "too few" if v is None else f"{v:.2f}*"
            sampled = f"in {count} trial{'s' if count != 1 else ''}"
            rows.append((k, [k, share, "" if v is None else bar(v),
                             " · ".join(x for x in (sampled, value_means(imp.means_of(k))) if x)]))
        table.fill(columns, rows)

    def _overlay(self) -> None:
        series = []
        for n in self.chosen:
            xs, ys = self.curves.get(n, Curves()).series("validation", "loss", self.x_axis)
            if xs:
                series.append(Series(f"#{n}", xs, ys))
        self.query_one("#overlay-plot", LinePlot).show(
            series, title=f"validation loss by {self.x_axis}", xlabel=self.x_axis)

    def _params(self) -> list[str]:
        names: list[str] = []
        for t in self.trials:
            names += [k for k in t.overview.params if k not in names]
        return names

    def _scatter(self) -> None:
        plot = self.query_one("#scatter-plot", LinePlot)
        params = self._params()
        objective = self.experiment.summary.objective or "eval_loss"
        if not params:
            plot.show([], title="no searched parameters")
            return
        name = params[self.param_index % len(params)]
        done = [t for t in self.trials if t.overview.value is not None
                and t.overview.params.get(name) is not None]
        values = [t.overview.params[name] for t in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ticks = None
        if numeric:
            xs = [float(v) for v in values]
            log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 100
            shown = [math.log10(x) for x in xs] if log else xs
            label = f"log10 {name}" if log else name
        else:
            cats = sorted({str(v) for v in values})
            shown = spread([cats.index(str(v)) for v in values])
            ticks = (list(range(len(cats))), cats)
            label = name
        series = []
        for state, marker in (("complete", "o"), ("pruned", "x")):
            pts = [(x, t.overview.value) for x, t in zip(shown, done, strict=False)
                   if t.overview.state == state and t.overview.value is not None]
            if pts:
                series.append(Series(state, [p[0] for p in pts], [p[1] for p in pts], marker=marker,
                                     lines=False))
        # a conditional parameter: the trials that did not sample it are not on the plot; say so
        scored = sum(1 for t in self.trials if t.overview.value is not None)
        count = f"{len(done)} of {scored} trials: the others did not sample it" \
            if len(done) < scored else f"{len(done)} trials"
        plot.show(series, title=f"{objective} vs {name} ({count}; p: next parameter)",
                  xlabel=label, xticks=ticks)

    def _front(self, evaluations: dict[str, dict[str, float]], spec: dict[str, Any]) -> None:
        """The first two objectives of a study of several, each complete trial a point (o on the
        Pareto front, x off it), the base model as a reference point (e.g. eval_loss
        against forgetting: how much general text a task gain cost)."""
        plot = self.query_one("#front-plot", LinePlot)
        search = spec.get("search") or {}
        names, directions = search.get("objectives") or [], search.get("directions") or []
        if len(names) < 2:
            plot.empty_text = "a front needs two objectives, e.g. eval_loss and forgetting"
            plot.show([])
            return
        done = [t.overview for t in self.trials if t.overview.state == "complete"]
        stage = objectives.stage_of(spec)
        values = pareto.objective_values(names, done, evaluations,
                                         {t.number: t.overview.cost for t in self.trials}, stage)
        x, y = names[0], names[1]
        points: dict[int, tuple[float, float]] = {}
        for t in done:
            a, b = values[x].get(t.number), values[y].get(t.number)
            if a is not None and b is not None:
                points[t.number] = (a, b)
        front = pareto.front({n: [*p, *(values[o].get(n) for o in names[2:])]
                              for n, p in points.items()}, directions)
        on = [p for n, p in points.items() if n in front]
        off = [p for n, p in points.items() if n not in front]
        series = [Series(f"front ({len(on)})", [p[0] for p in on], [p[1] for p in on], marker="o",
                         lines=False)]
        if off:
            series.append(Series(f"other trials ({len(off)})", [p[0] for p in off],
                                 [p[1] for p in off], marker="x", lines=False))
        base = evaluations.get("base", {})
        bx, by = (base.get(objectives.metric_key(o, stage)) for o in (x, y))
        if bx is not None and by is not None:
            series.append(Series("base model", [bx], [by], marker="+", lines=False))
        plot.empty_text = "no complete trial has both objectives yet"
        plot.show(series if on else [], title=f"{y} against {x}: the front is the trials no "
                                               "other beats on both", xlabel=x, ylabel=y)

    def action_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        self._overlay()

    def action_param(self) -> None:
        self.param_index += 1
        self.query_one(TabbedContent).active = "scatter"
        self._scatter()

    def action_method(self) -> None:
        self.method = self.METHODS[(self.METHODS.index(self.method) + 1) % len(self.METHODS)]
        self.query_one("#importance-note", Static).update(f"computing {self.method}…")
        self.query_one(TabbedContent).active = "importance"
        self._load_importance(self.method)

    def commands(self):  # noqa: ANN201
        yield ("Next parameter for the scatter", "objective vs parameter", self.action_param)
        yield ("Another importance evaluator", "fanova, ped-anova, mean decrease impurity",
               self.action_method)
        yield ("Switch the x axis", "step, epoch, tokens", self.action_x_axis)


