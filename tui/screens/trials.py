"""The trials of one experiment: a live, sortable, filterable table; the best and the baselines
(the base model, and with eval.baseline_shots examples in its prompts) pinned on top; several
trials selected for comparison.

At 80 columns the table shows what decides a trial first: its number (held at the left when
the table scrolls right), state, objective, the metrics of the success criterion and the
verdict; then the method, the searched parameters and the rest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Input, Static

from tunelab.engine import baselines, objectives
from tunelab.engine import format as fmt
from tunelab.engine.refs import ModelRef
from tunelab.tui import keys, source
from tunelab.tui.screens.base import StoreScreen
from tunelab.tui.screens.trial_rows import (
    Row,
    Shape,
    joined,
    matches,
    row_of_baseline,
    row_of_trial,
    sort_key,
)
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.table import VimTable
from tunelab.tui.widgets.title import ScreenTitle

BASE = "base"
# Room kept for the cells a live refresh fills in or grows ("—" becomes 0.0383, "starting"
# becomes "step 1180 · loss 0.0412"): the columns do not jump as a sweep runs.
LIVE_WIDTHS = {"state": 8, "objective": 7, "progress": 22, "duration": 6, "cost": 5}


class TrialsScreen(StoreScreen):
    AUTO_FOCUS = "VimTable"
    KEYS_OF = "trials"
    BINDINGS = keys.bindings(KEYS_OF, back="back")  # esc clears a filter first

    @dataclass
    class Loaded(Message):
        trials: list[source.Trial]
        evaluations: dict[str, dict[str, float]]
        spec: dict[str, Any]
        stamps: source.Stamps | None = None  # what `trials` was read at (see source.trials_read)
        files: tuple[tuple[int, ...], ...] | None = None  # the stores' files before the read

    def __init__(self, experiment: source.Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        self.name_ = experiment.summary.name
        self.trials: list[source.Trial] = []
        self.evaluations: dict[str, dict[str, float]] = {}
        self.spec: dict[str, Any] = {}
        self._spec_read = False  # an experiment may have no spec: {} is read once too
        self.selected: set[int] = set()
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_terms: list[str] = []
        self.titles: dict[str, str] = {}
        self.best: int | None = None
        self.best_trial: source.Trial | None = None
        self.keys: dict[str, source.Trial] = {}
        self._built: tuple[list[tuple[str, str]], list[Row]] | None = None
        self._row_cache: dict[str, tuple[tuple[Any, ...], Row]] = {}
        # The trials as last read and their row stamps, one value so that a worker reads the
        # two of them from the same load: a live refresh re-reads only the trials that changed.
        self._read: tuple[list[source.Trial], source.Stamps] = ([], {})
        # each row's cells in column order, as last handed to the table (see _cells_of)
        self._cells: dict[str, tuple[Row, list[Any]]] = {}
        self._cells_columns: list[tuple[str, str]] = []
        self._detail = ""  # the line under the table as last shown
        # The stores' files as they were before the last read (source.file_states): while they
        # are the same, a refresh has nothing to read and nothing to redraw.
        self._files: tuple[tuple[int, ...], ...] | None = None

    def compose(self) -> ComposeResult:
        self.title = f"{self.name_} · trials"
        yield ScreenTitle(id="title")
        box = Input(placeholder="filter: state=complete lr<1e-3 lora   (Enter applies, Esc clears)",
                    id="filter")
        box.display = False
        yield box
        # the mark and the number stay in view as the table scrolls right
        yield VimTable(id="trials", fixed_columns=2, screen_enter=True)
        yield Static("", id="detail", classes="detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(VimTable).loading = True
        super().on_mount()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="trials")
    def _load(self) -> None:
        try:
            paths = self.experiment.stores
            files = source.file_states(paths)  # before the read: a write after it shows next time
            if files is not None and files == self._files:
                return  # what the last read found is still what the files hold
            previous, stamps = self._read
            read = source.trials_read(paths, self.name_, previous, stamps)
            spec = self.spec if self._spec_read else source.spec(paths, self.name_)
            self.post_message(self.Loaded(read.trials, read.evaluations, spec, read.stamps, files))
        except Exception as error:  # noqa: BLE001
            self.report(error)

    # -- building the table
    def _metrics(self) -> tuple[list[str], list[str]]:
        """The test metrics shown: (those the success criterion judges, the others)."""
        success = list(self.spec.get("success") or {})
        wanted = ["loss"] + [m for m in (self.spec.get("eval", {}).get("metrics") or []) if m != "loss"]
        present = {k for values in self.evaluations.values() for k in values}
        judged = [m for m in success if f"test/{m}" in present]
        return judged, [m for m in wanted if f"test/{m}" in present and m not in judged]

    def rows(self) -> tuple[list[tuple[str, str]], list[Row]]:
        s = self.experiment.summary
        direction = s.direction or "minimize"
        objective = s.objective or "eval_loss"
        params: list[str] = []
        for t in self.trials:
            params += [k for k in t.overview.params if k not in params and k != "method.kind"]
        judged, others = self._metrics()
        metrics = judged + others
        # what decides a trial first (it fits 80 columns), then how it was trained
        columns = [("mark", " "), ("number", "#"), ("state", "state"),
                   # a preference sweep's objective is each trial's placement: its rating over
                   # the base model when its votes placed it, told to the search
                   ("objective", fmt.objective_title(objective))]
        columns += [(f"m:{m}", f"test {m}") for m in judged]
        columns += [("success", "success"), ("method", "method")]
        columns += [(f"p:{k}", fmt.param_name(k)) for k in params]
        columns += [("progress", "progress")]
        columns += [(f"m:{m}", f"test {m}") for m in others]
        columns += [("duration", "duration"), ("cost", "cost")]
        done = [t for t in self.trials if t.overview.state == "complete" and t.overview.value is not None]
        best = objectives.best_of(done, lambda t: t.overview.value, direction)  # type: ignore[arg-type, return-value]
        self.best = best.number if best else None
        self.best_trial = best  # with several stores, the number alone does not say which
        rows: list[Row] = []
        # a trial's row key is its number, with its store where two files share a number
        numbers = Counter(t.number for t in self.trials)  # not list.count: 1,000 trials, 1M steps
        self.keys = {(str(t.number) if numbers[t.number] == 1
                      else f"{t.number}@{self.experiment.stores.index(t.store)}"): t
                     for t in self.trials}
        key_of = {id(t): k for k, t in self.keys.items()}
        # the base model, and the same with examples in its prompts (eval.baseline_shots)
        shape = Shape(objective, tuple(params), tuple(metrics))
        objective_key = objectives.metric_key(objective, objectives.stage_of(self.spec))
        rows += [row_of_baseline(b, shape, objective_key)
                 for b in baselines.baselines(self.evaluations)]
        cache, self._row_cache = self._row_cache, {}
        for t in self.trials:
            o = t.overview
            ev = self.evaluations.get(str(ModelRef.trial(o.number)), {})
            is_best = best is not None and o.number == best.number
            # A live refresh re-reads every trial but few changed: a row whose inputs are equal
            # to the last refresh's is reused as it was, so its cells are the very objects shown
            # and the table skips them without comparing them (1,000 rows, every 2 s).
            signature = (o, tuple(ev.items()), is_best, o.number in self.selected, shape)
            key = key_of[id(t)]
            kept = cache.get(key)
            if kept is None or kept[0] != signature:
                kept = (signature, row_of_trial(key, o, ev, shape, is_best, o.number in self.selected))
            rows.append(kept[1])
            self._row_cache[key] = kept
        return columns, rows

    def _show(self, rebuild: bool = True) -> None:
        # A re-sort reuses the rows of the last load: only their order changes.
        if rebuild or self._built is None:
            self._built = self.rows()
        columns, rows = self._built
        self.titles = dict(columns)
        pinned = [r for r in rows if baselines.is_baseline(r.key)]
        body = [r for r in rows if not baselines.is_baseline(r.key)
                and matches(r, self.filter_terms, self.titles)]
        column = self.sort_column
        if column:
            body.sort(key=lambda r: sort_key(r.values.get(column)), reverse=self.sort_reverse)
        shown = pinned + body
        table = self.query_one(VimTable)
        table.loading = False
        if self.focused is None:  # the loading indicator may have kept the focus away
            table.focus()
        if columns != self._cells_columns:
            self._cells, self._cells_columns = {}, columns
        table.fill(columns, [(r.key, self._cells_of(r)) for r in shown], LIVE_WIDTHS)
        self._show_detail(len(body))

    def _cells_of(self, row: Row) -> list[Any]:
        """A row's cells in column order: the very list handed to the table last time when the
        row is the same object, so the table skips it at one `is` (1,000 rows, every 2 s)."""
        kept = self._cells.get(row.key)
        if kept is not None and kept[0] is row:
            return kept[1]
        cells = [row.cells[k] for k, _ in self._cells_columns]
        self._cells[row.key] = (row, cells)
        return cells

    def _show_detail(self, shown: int | None = None) -> None:
        counts: dict[str, int] = {}
        for t in self.trials:
            counts[t.overview.state] = counts.get(t.overview.state, 0) + 1
        parts = [fmt.counted(len(self.trials), "trial")] + [f"{n} {s}" for s, n in sorted(counts.items())]
        if self.best is not None:
            parts.append(f"★ best #{self.best}")
        if self.selected:
            parts.append(f"● {len(self.selected)} selected (c compares)")
        if self.filter_terms:
            parts.append(f"filter: {' '.join(self.filter_terms)} ({shown} shown)")
        if self.sort_column:
            parts.append(f"ordered by {self.titles.get(self.sort_column, self.sort_column)}"
                         + (" ↓" if self.sort_reverse else " ↑"))
        table = self.query_one(VimTable)
        if table.cursor_column > 1 and table.columns:  # h/l chose a column: o orders by it
            column = list(table.columns)[min(table.cursor_column, len(table.columns) - 1)]
            parts.append(f"o orders by {self.titles.get(column.value or '', '')}")
        if self.live:
            parts.append("live")
        text = joined(parts, self.size.width - 2)
        if text != self._detail:  # an update re-renders the line even when it is the same
            self._detail = text
            self.query_one("#detail", Static).update(text)

    def on_trials_screen_loaded(self, event: Loaded) -> None:
        self.loaded_once = True
        self.trials, self.evaluations, self.spec = event.trials, event.evaluations, event.spec
        self._spec_read = True
        if event.stamps is not None:
            self._read = (event.trials, event.stamps)
            self._files = event.files
        self.live = any(t.overview.state == "running" for t in event.trials)
        self._show()

    # -- actions
    def _current_trial(self) -> source.Trial | None:
        key = self.query_one(VimTable).current_key
        return self.keys.get(key) if key is not None else None

    def on_data_table_row_selected(self, _: VimTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        trial = self._current_trial()
        if trial is not None:
            self.app.open_trial(self.experiment, trial)  # type: ignore[attr-defined]

    def action_chat(self) -> None:
        """Talk to the trial under the cursor (a complete one keeps a checkpoint)."""
        from tunelab.engine.run.runner import paths
        from tunelab.tui.screens.chat import ChatScreen

        trial = self._current_trial()
        if trial is None or trial.overview.state != "complete":
            self.notify("chat needs a complete trial (it keeps a checkpoint)", timeout=3)
            return
        runs, _ = paths(trial.store, self.name_)
        self.app.push_screen(ChatScreen(trial.store, self.name_, str(ModelRef.trial(trial.number)),
                                        runs / "probes.json"))

    def action_arena(self) -> None:
        """A blind arena chat: the trial under the cursor against the best trial (the best
        against the baseline; the baseline row against the best)."""
        from tunelab.engine.review.reviews import rater_name
        from tunelab.tui.screens.arena import ArenaScreen

        key = self.query_one(VimTable).current_key
        trial = self._current_trial()
        if key == BASE or (trial is not None and trial.number == self.best):
            refs = ("base", "best")
        elif trial is not None and trial.overview.state == "complete":
            refs = (str(ModelRef.trial(trial.number)), "best")
        else:
            self.notify("an arena needs a complete trial (it keeps a checkpoint)", timeout=3)
            return
        # the store that holds the trial (the best's for the base row): a model and its votes
        # live in one store, and `best` is read there
        held = trial if trial is not None and refs[0] != "base" else self.best_trial
        store = held.store if held is not None else self.experiment.stores[0]
        self.app.push_screen(ArenaScreen(store, self.name_, refs, rater_name()))

    def action_review(self, what: str = "vote") -> None:
        """v votes in the experiment's newest review (or makes one), n makes a new one."""
        self._open_review(what)

    def action_statistics(self) -> None:
        """The statistics of the experiment's newest review."""
        self._open_review("stats")

    @work(thread=True, exclusive=True, exit_on_error=False, group="review")
    def _open_review(self, what: str) -> None:
        from tunelab.tui.screens.review_new import open_review

        try:
            open_review(self.app, self.experiment.stores, self.name_, what, self.trials,
                        self.best_trial, self.experiment.summary.objective or "eval_loss")
        except Exception as error:  # noqa: BLE001
            self.report(error)

    def action_select(self) -> None:
        trial = self._current_trial()
        if trial is None:
            return
        self.selected ^= {trial.number}
        self._show()
        self.query_one(VimTable).action_cursor_down()

    def action_compare(self) -> None:
        chosen = [t for t in self.trials if t.number in self.selected]
        if not chosen:  # nothing selected: the five best finished trials
            done = [t for t in self.trials if t.overview.value is not None]
            chosen = objectives.ranked(done, lambda t: t.overview.value,  # type: ignore[arg-type, return-value]
                                       self.experiment.summary.direction)[:5]
        self.app.open_compare(self.experiment, chosen, self.trials)  # type: ignore[attr-defined]

    def action_sort(self) -> None:
        table = self.query_one(VimTable)
        if not table.columns:
            return
        column = list(table.columns)[table.cursor_column].value
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._show(rebuild=False)

    def on_data_table_cell_highlighted(self, _: VimTable.CellHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_highlighted(self, _: VimTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_header_selected(self, event: VimTable.HeaderSelected) -> None:
        table = self.query_one(VimTable)
        table.move_cursor(column=event.column_index)
        self.action_sort()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_terms = event.value.split()
        box = self.query_one("#filter", Input)
        box.display = bool(self.filter_terms)
        self.query_one(VimTable).focus()
        self._show()

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus or self.filter_terms:
            box.value = ""
            self.filter_terms = []
            box.display = False
            self.query_one(VimTable).focus()
            self._show()
            return
        self.app.back()  # type: ignore[attr-defined]

    def action_copy(self) -> None:
        self.query_one(VimTable).copy_cell()

    def commands(self):  # noqa: ANN201
        yield ("Compare selected trials", "overlaid curves, importance, objective vs parameter",
               self.action_compare)
        yield ("Arena", "blind chat: the trial under the cursor vs the best", self.action_arena)
        yield ("Filter trials", "state=complete lr<1e-3 …", self.action_filter)
        yield ("New blind review", "pick models and prompts; outputs are generated",
               lambda: self.action_review("new"))
        yield ("Review statistics", "ratings, win rates, side bias, agreement",
               lambda: self.action_review("stats"))
        yield ("Order by the cursor's column", "again to reverse", self.action_sort)
