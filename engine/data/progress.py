"""Progress of a long preparation on the terminal: the stage, rows done, the rate.

Shown on stderr, only when it is a terminal and only once the preparation has taken two
seconds (a cached or small preparation prints nothing). Refreshed by the caller's own calls,
not by rich's refresh thread: a second thread would keep the preparation from forking its
workers (see parallel).
"""

from __future__ import annotations

import sys
import time
from typing import Any

SHOW_AFTER = 2.0  # seconds
REFRESH = 0.1  # seconds between redraws


class Progress:
    def __init__(self, show: bool, console: Any = None) -> None:
        self.show = show
        self.console = console  # a rich Console; stderr by default
        self.started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._stage: tuple[str, int | None] = ("", 0)
        self._done = 0
        self._drawn = 0.0
        self._stage_started = self.started

    @classmethod
    def terminal(cls) -> Progress:
        return cls(sys.stderr.isatty())

    def stage(self, name: str, total: int | None) -> None:
        """A new stage of `total` rows (None: not known ahead)."""
        self._stage = (name, total)
        self._done = 0
        self._stage_started = time.monotonic()
        if self._bar is not None:
            # a task of its own: rich's reset keeps the old total when the new one is None (unknown),
            # and the old rate until the new stage has its own
            self._bar.remove_task(self._task)
            self._task = self._bar.add_task(name, total=total, rate="")
        self._draw(force=True)

    def advance(self, rows: int) -> None:
        self._done += rows
        self._draw()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.show or now - self.started < SHOW_AFTER or (not force and now - self._drawn < REFRESH):
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar

            # short enough for an 80-column terminal with a million rows ("data · finding duplicates
            # ━━━ 1000000/1000000 88,100 rows/s 0:00:12"): a longer line had its counts cut to
            # "5000/963…"; the bar and the count say what a percentage would
            self._bar = Bar(TextColumn("data · {task.description}"), BarColumn(bar_width=10),
                            MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), console=self.console or Console(stderr=True), transient=True,
                            auto_refresh=False)
            self._bar.start()
            name, total = self._stage
            self._task = self._bar.add_task(name, total=total, rate="")
        took = now - self._stage_started
        self._bar.update(self._task, completed=self._done,
                         rate=f"{self._done / took:,.0f} rows/s" if took > 0.2 else "")
        self._bar.refresh()
        self._drawn = now
