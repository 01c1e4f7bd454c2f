"""The trials screen re-sorts in place: the rows move, they are not rebuilt (issue 19's
re-sort target at 1,000 trials), and what is shown is what a fresh build in that order shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tui_store
from rich.text import Text
from tui_pilot import open_trials

from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.trials import TrialsScreen
from tunelab.tui.widgets.table import VimTable


def shown(table: VimTable) -> list[list[str]]:
    return [[c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)]
            for i in range(table.row_count)]



@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The TUI test store (five trials), with the SQL console's history kept in tmp_path."""
    monkeypatch.setenv("TUNELAB_SQL_HISTORY", str(tmp_path / "history.json"))
    return tui_store.build(tmp_path)

async def _trials_screen(app: TunelabApp, pilot) -> tuple[TrialsScreen, VimTable]:  # noqa: ANN001
    """The experiments screen loaded, Enter on the first experiment, its trials loaded."""
    screen = await open_trials(pilot)
    return screen, screen.query_one(VimTable)


def test_a_re_sort_moves_the_rows_keeps_the_cursor_and_matches_a_rebuild(store: Path) -> None:

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen, table = await _trials_screen(app, pilot)
            before = {table.coordinate_to_cell_key((i, 0)).row_key.value: table.get_row_at(i)
                      for i in range(table.row_count)}
            titles = [str(c.label) for c in table.ordered_columns]
            table.move_cursor(row=3, column=titles.index("eval_loss"))
            under_cursor = table.current_key
            await pilot.press("o")
            await pilot.pause()
            after = shown(table)
            numbers = [r[1] for r in after[1:]]
            assert numbers[:2] == ["1", "4"] and after[0][0] == "base"
            # the very cell objects of before: moved, not rebuilt
            for i in range(table.row_count):
                key = table.coordinate_to_cell_key((i, 0)).row_key.value
                assert all(a is b for a, b in zip(table.get_row_at(i), before[key], strict=True))
            assert table.current_key == under_cursor  # the cursor stayed on its trial

            # a rebuild in the same order shows the same table
            table.clear(columns=True)
            table._shape = ((), ())
            screen._show()
            await pilot.pause()
            assert shown(table) == after

    asyncio.run(run())


def test_a_live_refresh_keeps_unchanged_rows_and_redraws_a_changed_one(store: Path) -> None:

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen, table = await _trials_screen(app, pilot)
            assert screen._built is not None
            before = {row.key: row for row in screen._built[1]}
            screen.reload()  # what the live timer does: a fresh read of every trial
            await app.workers.wait_for_complete()
            await pilot.pause()
            after = {row.key: row for row in screen._built[1]}
            trials = [k for k in before if k != "base"]
            assert trials and all(after[k] is before[k] for k in trials)  # reused, not rebuilt
            table.move_cursor(row=1)  # trial 0: select it, its mark changes, the rest stay
            await pilot.press("space")
            await pilot.pause()
            marked = {row.key: row for row in screen._built[1]}
            assert "●" in shown(table)[1][0]
            assert marked["0"] is not after["0"]
            assert all(marked[k] is after[k] for k in trials if k != "0")

    asyncio.run(run())
