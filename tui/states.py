"""The colour of a trial's state, one for every surface: the trials table, `tunelab trials`
and the console of `tunelab run` (light: the CLI imports it without textual)."""

from __future__ import annotations

from rich.markup import escape

STATE_STYLE = {"complete": "green", "pruned": "yellow", "failed": "bold red", "running": "bold cyan",
               "voting": "bold magenta"}  # trained, waiting for votes (a preference sweep)


def state_markup(state: str, text: str | None = None) -> str:
    """`text` (the state itself by default) as rich markup in the state's colour."""
    shown = escape(state if text is None else text)
    style = STATE_STYLE.get(state)
    return f"[{style}]{shown}[/]" if style else shown
