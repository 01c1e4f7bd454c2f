"""The first screen: every experiment of the store(s), how its trials stand, and its best."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static

from tunelab.engine import format as fmt
from tunelab.engine import objectives
from tunelab.tui import keys, source
from tunelab.tui.screens.base import StoreScreen, ago
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.table import VimTable
from tunelab.tui.widgets.title import ScreenTitle


def verdict(success: bool | None) -> Text:
    if success is None:
        return Text("—", style="dim")
    return Text("✓ yes", style="bold green") if success else Text("✗ no", style="bold red")


def versus(best: float | None, baseline: float | None, direction: str | None) -> Text:
    """`7.0× lower` against the baseline (format.change), green when better in the objective's
    direction."""
    if best is None or baseline is None:
        return Text("—", style="dim")
    better = objectives.better(best, baseline, direction)
    return Text(fmt.change(best, baseline), style="green" if better else "red")


class ExperimentsScreen(StoreScreen):
    AUTO_FOCUS = "VimTable"
    KEYS_OF = "experiments"
    BINDINGS = keys.bindings(KEYS_OF)

    @dataclass
    class Loaded(Message):
        experiments: list[source.Experiment]

    def __init__(self) -> None:
        super().__init__()
        self.experiments: list[source.Experiment] = []

    def compose(self) -> ComposeResult:
        self.title = "experiments"
        yield ScreenTitle(id="title")
        yield VimTable(id="experiments", screen_enter=True)
        yield Static("", id="detail", classes="detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(VimTable).loading = True
        super().on_mount()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="experiments")
    def _load(self) -> None:
        try:
            if not self.loaded_once:
                self.stores.flush()
            self.post_message(self.Loaded(source.experiments(self.stores)))
        except Exception as error:  # noqa: BLE001 - shown, never raised into the UI
            self.report(error)

    def on_store_screen_failed(self, event: StoreScreen.Failed) -> None:
        self.query_one(VimTable).loading = False
        if not self.experiments:
            self.query_one("#detail", Static).update(Text(f"{event.title}: {event.message}", style="red"))
        super().on_store_screen_failed(event)

    def on_experiments_screen_loaded(self, event: Loaded) -> None:
        self.loaded_once = True
        self.experiments = event.experiments
        self.live = any(e.summary.running for e in event.experiments)
        table = self.query_one(VimTable)
        table.loading = False
        if self.focused is None:  # the loading indicator may have kept the focus away
            table.focus()
        many = self.stores.many
        # short titles: the row of a short name fits 80 columns (the baseline itself is in the
        # line under the table); a long one keeps its name at the left as the table scrolls
        columns = [("name", "experiment"), ("done", "done"), ("running", "run"),
                   ("pruned", "pruned"), ("failed", "failed"), ("best", "best"),
                   ("vs", "vs base"), ("success", "success"), ("activity", "active")]
        if many:
            columns.append(("store", "store"))
        # a store by its file name, or folder/name where two files share a name
        names = [p.name for p in self.stores.paths]
        short = {p: p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}"
                 for p in self.stores.paths}
        rows = []
        for e in event.experiments:
            s = e.summary
            best = fmt.objective_value(s.objective, s.best_value) + (
                f" #{s.best_trial}" if s.best_trial is not None else "")
            cells: list = [
                Text(s.name, style="bold"), str(s.complete),
                Text(str(s.running), style="bold cyan") if s.running else "0",
                str(s.pruned), Text(str(s.failed), style="red") if s.failed else "0",
                best, versus(s.best_value, s.baseline_value, s.direction),
                verdict(s.best_success), ago(s.last_activity)]
            if many:
                cells.append(", ".join(short[p] for p in e.stores))
            rows.append((s.name, cells))
        table.fill(columns, rows)
        self._show_detail()
        if not rows:
            self.query_one("#detail", Static).update(
                "No experiments in this store yet. Start one with: tunelab run FILE")

    def _current(self) -> source.Experiment | None:
        key = self.query_one(VimTable).current_key
        return next((e for e in self.experiments if e.summary.name == key), None)

    def _show_detail(self) -> None:
        e = self._current()
        if e is None:
            return
        s = e.summary
        text = Text()
        text.append(s.name, style="bold")
        text.append(f" · {s.direction or 'minimize'} {s.objective or 'eval_loss'}")
        if s.baseline_value is not None:
            text.append(f" · baseline {fmt.number(s.baseline_value)}")
        text.append(f" · {fmt.counted(s.trials, 'trial')}")
        if s.description:
            text.append("\n" + s.description, style="italic")
        self.query_one("#detail", Static).update(text)

    def on_data_table_row_highlighted(self, _: VimTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, _: VimTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        e = self._current()
        if e is not None:
            self.app.open_experiment(e)  # type: ignore[attr-defined]

    def commands(self):  # noqa: ANN201 - (title, help, callback) for the command palette
        for e in self.experiments:
            yield (f"Open experiment {e.summary.name}", e.summary.description or "its trials",
                   lambda e=e: self.app.open_experiment(e))  # type: ignore[attr-defined]
