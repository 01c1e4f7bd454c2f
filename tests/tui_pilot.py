"""Driving the TUI in tests: wait for the workers' results to land, open an experiment's
trials. Shared by the TUI tests (each had its own copy of these lines); their fixtures are in
tui_fixtures.py."""

from __future__ import annotations

import io

from rich.console import Console
from textual import events
from textual.widgets import Static

from tunelab.tui.screens.trials import TrialsScreen


def screen_text(screen) -> str:  # noqa: ANN001
    """What the Statics of a screen show, as plain text."""
    console = Console(width=78, file=io.StringIO(), record=True)
    for widget in screen.query(Static):
        console.print(widget.content)
    return console.export_text()


async def settle(pilot) -> None:  # noqa: ANN001
    """Lets the workers finish and their messages land (twice: a message may start a worker)."""
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def paste(pilot, text: str) -> None:  # noqa: ANN001
    """`text` into the focused box as a terminal pastes it: one event, handled by the app as a
    person's paste. Typed a key at a time, each key waits twice for the app to go idle (40 ms
    or more): seconds for a query."""
    pilot.app.post_message(events.Paste(text))
    await pilot.pause()


async def open_trials(pilot) -> TrialsScreen:  # noqa: ANN001
    """The experiments screen loaded, Enter on the first experiment, its trials loaded."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, TrialsScreen)
    return pilot.app.screen
