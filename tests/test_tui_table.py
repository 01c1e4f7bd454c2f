"""The trials table at 80 columns, as a person reads it: what decides a trial in view, its
number held when the table scrolls right, a cursor that shows without colour, columns that do
not jump as a sweep runs; and a comparison with the baseline that reads right at any size."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import tui_store
from screen_fit import screen_lines
from tui_pilot import open_trials, settle

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.tui.app import TunelabApp
from tunelab.tui.widgets.table import CURSOR, VimTable

pytest_plugins = ("tui_fixtures",)  # demo_store, sql_history

SIZE = (80, 24)


def _line_of(lines: list[str], number: int) -> str:
    """The table line of trial `number` (its number is the second cell)."""
    return next(line for line in lines if line[:8].split()[-1:] == [str(number)])


async def test_at_80_columns_the_criterion_metric_and_the_verdict_are_in_view(
        demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=SIZE) as pilot:
        await open_trials(pilot)
        lines = screen_lines(app)
        header = lines[1]
        assert "test exact_match" in header and "success" in header  # exact_match >= 0.9
        best = _line_of(lines, 1)
        assert "0.93" in best and "✓" in best  # its metric and its verdict, no scrolling


async def test_the_number_stays_at_the_left_when_the_table_scrolls_right(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trials(pilot)
        table = screen.query_one(VimTable)
        await pilot.press(*["l"] * len(table.columns))  # a column at a time, to the last: cost
        await pilot.pause()
        assert table.scroll_x == table.max_scroll_x > 0
        lines = screen_lines(app)
        assert lines[1][:8].split() == ["#"] and "cost" in lines[1]
        for number in range(5):
            assert _line_of(lines, number)


async def test_the_cursor_row_shows_without_colour(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=SIZE) as pilot:
        await open_trials(pilot)
        await pilot.press("j", "j")  # the base row, trial 0, trial 1
        marked = [line for line in screen_lines(app) if line.startswith(CURSOR)]
        assert len(marked) == 1 and _line_of(marked, 1)
        await pilot.press("j")
        marked = [line for line in screen_lines(app) if line.startswith(CURSOR)]
        assert len(marked) == 1 and _line_of(marked, 2)


async def test_columns_keep_their_widths_as_the_sweep_goes_on(tmp_path: Path,
                                                            demo_store: Path) -> None:
    """A refresh in which the running trial gets far (its progress cell grows) and a new trial
    starts: no column moves."""
    shutil.copytree(demo_store.parent, tmp_path / "live")
    store = tmp_path / "live" / "tunelab.duckdb"
    app = TunelabApp([store])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trials(pilot)
        table = screen.query_one(VimTable)

        def widths() -> list[tuple[str, int]]:
            return [(str(c.key.value), c.get_render_width(table)) for c in table.ordered_columns]

        before = widths()
        runs = tmp_path / "live" / "tunelab-runs" / tui_store.NAME
        running = next(t for t in tui_store.TRIALS if t["state"] == "running")
        new = {**running, "number": 5}
        with st.Spool(store, tag="more") as spool:
            spool.write(tui_store.metric_rows(4, 4.4, 1.5, range(101, 1201), epochs=20)
                        + [tui_store.trial_event(new, runs)])
        screen.reload()
        for _ in range(100):
            await settle(pilot)
            if table.row_count == 7:
                break
        assert table.row_count == 7
        assert "step 1200" in " ".join(str(c) for c in table.get_row("4"))
        assert widths() == before


async def test_a_best_far_below_the_baseline_reads_as_a_ratio(tmp_path: Path) -> None:
    """0.0115 against a baseline of 5.00 printed `vs base -100%`: the ratio reads right."""
    assert fmt.change(0.0115, 5.00) == "435× lower"
    assert fmt.change(4.8, 5.0) == "-4 %" and fmt.change(0.9, 0.0) == "+0.9"
    store = tmp_path / "tunelab.duckdb"
    now = time.time()
    body = {**tui_store.spec(), "name": "far"}
    with st.Spool(store, tag="far") as spool:
        spool.write([
            {"table": "experiments", "row": {
                "name": "far", "spec_path": "", "spec_hash": "x", "spec": json.dumps(body),
                "objective": "eval_loss", "direction": "minimize", "created_at": now,
                "updated_at": now}},
            {"table": "evaluations", "row": {"experiment": "far", "model_ref": "base",
                                             "split": "validation", "name": "loss",
                                             "value": 5.00, "time": now}},
            {"table": "trials", "row": {
                "experiment": "far", "number": 0, "state": "complete", "method_kind": "full",
                "params": "{}", "value": 0.0115, "started_at": now - 9, "finished_at": now,
                "updated_at": now}}])
    app = TunelabApp([store])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        row = next(line for line in screen_lines(app) if "far" in line)
        assert "435× lower" in row and "%" not in row
