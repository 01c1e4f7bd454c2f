"""The tunelab terminal UI: experiments → trials → trial → compare; the SQL console; review,
review statistics, chat and arena.

One App, one stylesheet (app.tcss). Screens read the store in named thread workers and get
their data back as messages; nothing here imports torch, so the first screen shows fast.

Navigation: `tunelab tui` starts on the experiments screen; Enter goes deeper, escape (or q)
goes back, `:` opens the SQL console from anywhere, ctrl+p the command palette. The commands
that open one screen directly (`tunelab chat`, `tunelab chat --arena`, `tunelab review NAME`,
`tunelab review stats NAME --tui`) start this same App with that screen first (`first=`):
going back from that screen leaves the app. Every key is in one table, tui/keys.py.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from textual.app import App, SystemCommand
from textual.screen import Screen

from tunelab.engine import format as fmt
from tunelab.tui import keys, source
from tunelab.tui.screens.experiments import ExperimentsScreen
from tunelab.tui.screens.help import HelpScreen
from tunelab.tui.screens.sql import SqlScreen
from tunelab.tui.screens.trials import TrialsScreen

# The trial and compare screens (and the plotting library under them) are imported when first
# opened: the first screen does not wait for them.


def _freeze_startup() -> None:
    """Leaves what start-up made (modules, classes, styles: ~80,000 objects) out of Python's
    full garbage collections: they live as long as the app, and walking them again made each
    full collection, which lands in whatever the user is doing, take 110-200 ms at 1,000
    trials (about half that once frozen). Garbage is collected first so none is kept."""
    gc.collect()  # ~30 ms, once
    gc.freeze()


class _NotifyHandler(logging.Handler):
    """The store's warnings (a held file, a migration) become notifications, not stderr text
    that would tear the screen."""

    def __init__(self, app: App) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.app.call_from_thread(self.app.notify, record.getMessage(), severity="warning")
        except RuntimeError:  # from the app's own thread
            self.app.notify(record.getMessage(), severity="warning")


class TunelabApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tunelab"
    BINDINGS = keys.bindings("app")

    def __init__(self, stores: Sequence[str | Path],
                 first: Callable[[], Screen] | None = None) -> None:
        """`first` makes the screen to start on (the experiments screen when None); it is
        called once the app runs, so a screen is built in the app it belongs to."""
        super().__init__()
        self.stores = source.Stores(tuple(Path(s) for s in stores))
        self._first = first or ExperimentsScreen
        self._log_handler = _NotifyHandler(self)

    def on_mount(self) -> None:
        logging.getLogger("tunelab.store").addHandler(self._log_handler)
        _freeze_startup()
        self.push_screen(self._first())

    def on_unmount(self) -> None:
        logging.getLogger("tunelab.store").removeHandler(self._log_handler)

    # -- navigation (the screens call these)
    def open_experiment(self, experiment: source.Experiment) -> None:
        self.push_screen(TrialsScreen(experiment))

    def open_trial(self, experiment: source.Experiment, trial: source.Trial,
                   trials: list[source.Trial] | None = None) -> None:
        from tunelab.tui.screens.trial import TrialScreen

        if trials is None and isinstance(self.screen, TrialsScreen):
            trials = self.screen.trials
        self.push_screen(TrialScreen(experiment, trial, trials))

    def open_compare(self, experiment: source.Experiment, chosen: list[source.Trial],
                     trials: list[source.Trial]) -> None:
        if not chosen:
            self.notify("no finished trial to compare yet; select trials with space", timeout=3)
            return
        from tunelab.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(experiment, chosen, trials))

    def action_sql(self) -> None:
        if not isinstance(self.screen, SqlScreen):
            self.push_screen(SqlScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def back(self) -> None:
        """Back to the screen underneath; out of the app from its first screen (the experiments
        of `tunelab tui`, or the one screen of `tunelab chat`, `tunelab review`…)."""
        if len(self.screen_stack) > 2:  # the default screen, then the first screen
            self.pop_screen()
        else:
            self.exit()

    async def action_back(self) -> None:  # async, as App's own
        self.back()

    # -- the command palette: the app's actions, then those of the screen underneath
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("SQL console", "query the store (read-only)", self.action_sql)
        yield SystemCommand("Help", "the keys of this screen", self.action_help)
        yield SystemCommand("Experiments", "back to the list of experiments", self._home)
        commands = getattr(screen, "commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        yield from self._trial_commands(screen)
        yield from super().get_system_commands(screen)

    def _trial_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """"Open trial N" on every screen of an experiment (its trials, a trial, compare)."""
        experiment = getattr(screen, "experiment", None)
        trials = getattr(screen, "trials", None)
        if not isinstance(experiment, source.Experiment) or not trials:
            return
        for t in trials:
            value = fmt.number(t.overview.value)
            yield SystemCommand(f"Open trial {t.number}", f"{t.overview.state} {value}",
                                lambda t=t: self.open_trial(experiment, t, trials))

    def _home(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if not isinstance(self.screen, ExperimentsScreen):  # started on a screen of its own
            self.push_screen(ExperimentsScreen())


def run(stores: Sequence[str | Path], first: Callable[[], Screen] | None = None) -> None:
    TunelabApp(stores, first).run()
