"""The key line at the bottom of every screen: the keys that screen shows (tui/keys.py's "+"),
the same on every screen. ctrl+p (the command palette) is in the help dialog, not here: at 80
columns its place is worth a key."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer


class KeyFooter(Footer):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("show_command_palette", False)
        super().__init__(**kwargs)
