"""`tunelab tui` (and `tunelab` alone in a terminal): the terminal UI on one store or several."""

from __future__ import annotations

from tunelab.tui.cli.options import StoresOption, default_store


def tui(stores: StoresOption = None) -> None:
    """Open the terminal UI: experiments, live trials, loss curves, compare, SQL (read-only).

    `tunelab` with no arguments, in a terminal, opens it too. Repeat --store to browse several
    store files as one.
    """
    from tunelab.tui.app import run as run_tui

    run_tui(stores or [default_store()])
