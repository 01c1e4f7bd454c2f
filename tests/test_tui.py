"""The terminal UI, driven by Textual's Pilot against a real store written through a Spool."""

from __future__ import annotations

import asyncio
import functools
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from tui_pilot import open_trials, paste, settle

from tunelab import store as st
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.compare import CompareScreen
from tunelab.tui.screens.experiments import ExperimentsScreen
from tunelab.tui.screens.help import HelpScreen
from tunelab.tui.screens.sql import SqlScreen
from tunelab.tui.screens.trial import TrialScreen
from tunelab.tui.screens.trials import TrialsScreen
from tunelab.tui.widgets.plot import LinePlot
from tunelab.tui.widgets.table import VimTable

pytest_plugins = ("tui_fixtures",)  # demo_store, sql_history


def aio(test):  # noqa: ANN001, ANN201
    """Runs an async test in its own event loop (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return asyncio.run(test(*args, **kwargs))

    return run


def cells(table: VimTable) -> list[list[str]]:
    return [[c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)]
            for i in range(table.row_count)]


def text_of(screen, selector: str, width: int = 78) -> list[str]:  # noqa: ANN001
    """The lines a Static shows (a rich Table in it included), as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(screen.query_one(selector).content)
    return console.export_text().splitlines()


def column(table: VimTable, title: str) -> int:
    return [str(c.label) for c in table.ordered_columns].index(title)


@aio
async def test_experiments_screen_shows_counts_best_baseline_and_verdict(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ExperimentsScreen)
        rows = cells(app.screen.query_one(VimTable))
        # 0.652 against the baseline's 4.57: the ratio (a percentage reads -86 %)
        assert rows == [["demo", "2", "1", "1", "1", "0.652 #1", "7.0× lower", "✓ yes", rows[0][-1]]]
        assert rows[0][-1].endswith("ago")  # within a day: relative
        assert "baseline 4.57" in str(app.screen.query_one("#detail").render())
        assert app.screen.live  # a trial runs: the screen keeps refreshing


@aio
async def test_trials_screen_marks_best_and_baseline_sorts_and_filters(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_trials(pilot)
        table = screen.query_one(VimTable)
        rows = cells(table)
        assert rows[0][0] == "base" and rows[0][2] == "baseline"  # the baseline first
        numbers = [r[1] for r in rows[1:]]
        assert numbers == ["0", "1", "2", "3", "4"]
        best = rows[2]
        assert best[0] == "★" and best[column(table, "eval_loss")] == "0.652"
        assert rows[4][2] == "failed (nan)"
        running = rows[5]
        assert running[2] == "running" and running[column(table, "eval_loss")].startswith("~")
        assert "step 100" in running[column(table, "progress")]
        assert [str(c.label) for c in table.ordered_columns][7] == "lr"  # a searched parameter

        # order by the objective (cursor on its column, o), then reverse (o again)
        table.move_cursor(column=column(table, "eval_loss"))
        await pilot.press("o")
        assert [r[1] for r in cells(table)[1:]][:2] == ["1", "4"]  # 0.652, then ~2.38 (running)
        await pilot.press("o")
        assert cells(table)[0][0] == "base"  # the baseline stays on top

        # filter: / opens the box, Enter applies, escape clears
        await pilot.press("slash")
        await paste(pilot, "state=complete")
        await pilot.press("enter")
        assert sorted(r[1] for r in cells(table)[1:]) == ["0", "1"]
        await pilot.press("slash")
        await pilot.press("ctrl+u")
        await paste(pilot, "lr<1.7e-3 lora")
        await pilot.press("enter")
        assert [r[1] for r in cells(table)[1:]] == ["2", "0"] or \
            sorted(r[1] for r in cells(table)[1:]) == ["0", "2"]
        await pilot.press("escape")
        assert table.row_count == 6

        # vim movement and selection
        await pilot.press("g", "j", "j")
        assert table.cursor_row == 2
        await pilot.press("space")
        assert screen.selected


@aio
async def test_trial_screen_shows_curves_evaluation_config_samples_and_log(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_trials(pilot)
        table = screen.query_one(VimTable)
        table.move_cursor(row=2)  # trial 1, the best
        await pilot.press("enter")
        await settle(pilot)
        trial = app.screen
        assert isinstance(trial, TrialScreen) and trial.trial.number == 1
        plot = trial.query_one(LinePlot)
        labels = [s.label for s in plot.series]
        assert labels == ["train loss", "validation loss", "baseline validation 4.57"]
        assert plot.series[0].xs[0] == 5.0
        await pilot.press("X")
        assert trial.x_axis == "epoch" and plot.series[0].xs[-1] == pytest.approx(3.0)
        await pilot.press("X")
        assert trial.x_axis == "tokens" and plot.series[0].xs[0] == 5 * 320

        await pilot.press("2")
        metrics = {r[0]: r for r in cells(trial.query_one("#metrics", VimTable))}
        assert metrics["test/exact_match"][1:3] == ["0.93", "0"]
        assert metrics["test/exact_match"][4] == ">= 0.9 ✓"
        assert "success: ✓ yes" in str(trial.query_one("#verdict").render())

        await pilot.press("3")
        config = {line.split()[0]: line.split()[1:] for line in text_of(trial, "#config-text")
                  if line.strip()}
        assert config["train.learning_rate"] == ["searched", "2e-3"]
        assert config["method.kind"] == ["searched", "full"]
        assert config["train.scheduler"][0] == "default"
        assert config["data.format"] == ["prompt_completion"]  # set in the file

        sample = str(trial.query_one("#sample-text").render())
        assert "What is 12 plus 7?" in sample and "differs from the reference" in sample
        log = str(trial.query_one("#log-text").render())
        assert "trial.log" in log and "step 170" in log

        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert trial.trial.number == 2 and "pruned" in str(trial.query_one("#title").render())


@aio
async def test_a_failed_trial_shows_its_reason_and_traceback(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_trials(pilot)
        screen.query_one(VimTable).move_cursor(row=4)  # trial 3
        await pilot.press("enter")
        await settle(pilot)
        trial = app.screen
        assert "failed: nan" in str(trial.query_one("#summary").render())
        await pilot.press("5")
        log = str(trial.query_one("#log-text").render())
        assert log.startswith("failed: nan") and "TrainError: loss is NaN" in log


@aio
async def test_compare_overlays_validation_curves_and_shows_importance(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_trials(pilot)
        table = screen.query_one(VimTable)
        for row in (1, 2, 5):  # trials 0, 1 and the running 4
            table.move_cursor(row=row)
            await pilot.press("space")
        assert screen.selected == {0, 1, 4}
        await pilot.press("c")
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        overlay = compare.query_one("#overlay-plot", LinePlot)
        assert [s.label for s in overlay.series] == ["#0", "#1", "#4"]
        await pilot.press("2")
        await settle(pilot)  # the importance is computed by a worker
        importance = cells(compare.query_one("#importance-table", VimTable))
        # method.kind splits the trials (full 0.65-1.1, lora 2.9-3.4): fANOVA, the default, says so
        assert [r[0] for r in importance] == ["method.kind", "train.learning_rate"]
        assert importance[0][3] == "full: 0.884 (3) · lora: 3.13 (2)"  # each value's mean and count
        assert "fanova over 5 complete trials" in str(compare.query_one("#importance-note").render())
        await pilot.press("p")  # the scatter: objective against the next parameter
        await settle(pilot)
        scatter = compare.query_one("#scatter-plot", LinePlot)
        assert scatter.series and {s.label for s in scatter.series} <= {"complete", "pruned"}
        assert sum(len(s.xs) for s in scatter.series) == 2  # the two complete trials


@aio
async def test_sql_console_runs_queries_keeps_history_and_shows_errors_inline(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        assert isinstance(app.screen, SqlScreen)
        await paste(pilot, "select number, state from trials order by number")
        await pilot.press("enter")
        await settle(pilot)
        results = app.screen.query_one("#results", VimTable)
        assert cells(results)[0] == ["0", "complete"] and results.row_count == 5
        assert "5 rows" in str(app.screen.query_one("#sql-status").render())

        await pilot.press("ctrl+u")
        await paste(pilot, "select nonsense from trials")
        await pilot.press("enter")
        await settle(pilot)
        status = str(app.screen.query_one("#sql-status").render())
        assert "nonsense" in status  # DuckDB's own message, inline
        assert results.row_count == 5  # the last good result stays

        await pilot.press("ctrl+u")
        await paste(pilot, "delete from trials")
        await pilot.press("enter")
        await settle(pilot)
        assert "read-only" in str(app.screen.query_one("#sql-status").render())
        assert len(st.list_trials(demo_store, "demo")) == 5

        await pilot.press("ctrl+u", "up")
        assert app.screen.query_one("#query").value == "delete from trials"
        await pilot.press("up")
        assert app.screen.query_one("#query").value == "select nonsense from trials"
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentsScreen)


@aio
async def test_help_lists_the_keys_of_the_screen_and_the_palette_has_its_actions(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, TrialsScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Compare selected trials" in titles and "Open trial 3" in titles
        assert "SQL console" in titles


@aio
async def test_a_missing_store_says_so_instead_of_crashing(tmp_path: Path) -> None:
    app = TunelabApp([tmp_path / "nothing.duckdb"])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "no store at" in str(app.screen.query_one("#detail").render())


WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
import tui_store
from tunelab import store as st
runs = {runs!r}
spool = st.Spool({store!r}, tag="writer")
t = dict(number=5, state="running", params={{"method.kind": "lora", "train.learning_rate": 1e-3}},
         value=None, start=4.4, end=2.0)
for line in sys.stdin:
    step = line.strip()
    if step == "trial":
        spool.write([tui_store.trial_event(t, __import__("pathlib").Path(runs))])
    else:
        lo, hi = map(int, step.split("-"))
        spool.write(tui_store.metric_rows(4, 4.4, 1.5, range(lo, hi + 1)))
    assert spool.ingest(wait=10)
    print("ok", flush=True)
spool.close()
"""


@aio
async def test_live_a_writer_adds_trials_and_metrics_and_the_screens_follow(tmp_path: Path,
                                                                             demo_store: Path) -> None:
    folder = tmp_path / "live"
    shutil.copytree(demo_store.parent, folder)
    store = folder / "tunelab.duckdb"
    code = WRITER.format(tests=str(Path(__file__).parent), runs=str(folder / "tunelab-runs" / "demo"),
                         store=str(store))
    writer = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def tell(what: str) -> None:
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write(what + "\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ok"

    async def until(condition, pilot) -> None:  # noqa: ANN001 - the refresh timer does the work
        for _ in range(600):  # up to a minute on a loaded machine
            if condition():
                return
            await pilot.pause(0.1)
        raise AssertionError("the screen did not follow the writer")

    try:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await open_trials(pilot)
            table = screen.query_one(VimTable)
            assert table.row_count == 6
            tell("trial")  # a new trial starts
            await until(lambda: table.row_count == 7, pilot)
            tell("101-130")  # the running trial logs 30 more steps
            await until(lambda: "step 130" in cells(table)[5][column(table, "progress")], pilot)

            table.move_cursor(row=5)
            await pilot.press("enter")
            await settle(pilot)
            trial = app.screen
            plot = trial.query_one(LinePlot)
            assert plot.series[0].xs[-1] == 130
            tell("131-180")  # validation at 120 and 180; train up to 180
            await until(lambda: plot.series[0].xs[-1] == 180, pilot)
            validation = next(s for s in plot.series if s.label == "validation loss")
            assert validation.xs == [60.0, 120.0, 180.0]
            # read incrementally: no step twice
            steps = trial.curves.points[("train", "loss")]["step"]
            assert steps == sorted(set(steps))
    finally:
        if writer.stdin:
            writer.stdin.close()
        writer.wait(30)


def test_the_ui_starts_without_torch_or_optuna() -> None:
    code = ("import sys, tunelab.tui.app, tunelab.tui.cli\n"
            "print(' '.join(m for m in ('torch', 'transformers', 'optuna') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_log_tail_keeps_the_last_lines_and_the_last_redraw_of_a_progress_bar(tmp_path: Path) -> None:
    log = tmp_path / "trial.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)) + "10%\r50%\r100%\n")
    tail = st.log_tail(log, 3)
    assert tail == ["line 498", "line 499", "100%"]
    assert st.log_tail(tmp_path / "missing.log") == []


@aio
async def test_several_stores_are_browsed_as_one(tmp_path: Path, demo_store: Path) -> None:
    other = tmp_path / "box2"
    shutil.copytree(demo_store.parent, other)
    app = TunelabApp([demo_store, other / "tunelab.duckdb"])
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        row = cells(app.screen.query_one(VimTable))[0]
        assert row[:5] == ["demo", "4", "2", "2", "2"]  # the counts of both files
        assert row[-1] == f"{demo_store.parent.name}/tunelab.duckdb, box2/tunelab.duckdb"
        screen = await open_trials(pilot)
        assert len(screen.trials) == 10
        await pilot.press("colon")
        await paste(pilot, "select count(*) from trials")
        await pilot.press("enter")
        await settle(pilot)
        assert cells(app.screen.query_one("#results", VimTable)) == [["10"]]


def test_tunelab_tui_is_a_command_and_bare_tunelab_without_a_terminal_prints_help() -> None:
    from conftest import tunelab, tunelab_command

    done = tunelab("tui", "--help")
    assert done.returncode == 0 and "--store" in done.stdout
    bare = subprocess.run(tunelab_command(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert "Usage" in bare.stdout + bare.stderr  # not a terminal: help, not the UI
