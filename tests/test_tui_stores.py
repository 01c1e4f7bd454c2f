"""Every act screen reads every `--store` of a session: the SQL console queries them all as one,
and the trials screen's review keys find the experiment's newest review in whichever store holds
it (saying so when its name is in two). Real stores, the real App at 80×24."""

from __future__ import annotations

import time
from pathlib import Path

from review_helpers import vote_for, write_review
from tui_pilot import open_trials, paste, screen_text, settle

from tunelab import store as st
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.review_new import NewReviewDialog
from tunelab.tui.screens.review_stats import ReviewStatsScreen
from tunelab.tui.screens.sql import SqlScreen
from tunelab.tui.widgets.table import VimTable

from conftest import tunelab

pytest_plugins = ("tui_fixtures",)  # a private SQL history


def _experiment_ab(store: Path, numbers: range) -> None:
    """Experiment `ab` (the one review_helpers writes reviews of) with complete trials."""
    now = time.time()
    events: list[dict] = [{"table": "experiments", "row": {
        "name": "ab", "objective": "eval_loss", "direction": "minimize", "updated_at": now}}]
    events += [{"table": "trials", "row": {
        "experiment": "ab", "number": n, "state": "complete", "value": 1.0 + n / 10,
        "started_at": now - 60, "finished_at": now, "updated_at": now}} for n in numbers]
    with st.Spool(store, tag="test") as spool:
        spool.write(events)


def _two_stores(folder: Path, first: range, second: range) -> tuple[Path, Path]:
    """box1 and box2, each with experiment `ab` and the trials numbered as given."""
    stores = folder / "box1.duckdb", folder / "box2.duckdb"
    for store, numbers in zip(stores, (first, second), strict=True):
        _experiment_ab(store, numbers)
    return stores


async def _statistics(app: TunelabApp) -> tuple[Path, str, list[str]]:
    """`V` on the trials screen: the store of the statistics shown, their text, the
    notifications."""
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        await pilot.press("V")
        await settle(pilot)
        assert isinstance(app.screen, ReviewStatsScreen)
        return (app.screen.store_path, screen_text(app.screen),
                [n.message for n in app._notifications])


async def test_the_sql_console_queries_every_store_as_one(tmp_path: Path) -> None:
    first, second = _two_stores(tmp_path, range(0, 2), range(2, 5))
    write_review(second, "only-in-box2", 4)
    app = TunelabApp([first, second], lambda: SqlScreen(
        "select number from trials order by number"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "box1.duckdb, box2.duckdb" in app.screen.title
        await pilot.press("enter")
        await settle(pilot)
        results = app.screen.query_one("#results", VimTable)
        assert [results.get_row_at(i)[0] for i in range(results.row_count)] == \
            ["0", "1", "2", "3", "4"]
        await pilot.press("ctrl+u")
        await paste(pilot, "select name from reviews")
        await pilot.press("enter")
        await settle(pilot)
        assert results.row_count == 1 and results.get_row_at(0)[0] == "only-in-box2"


async def test_statistics_open_the_review_of_the_store_that_holds_it(tmp_path: Path) -> None:
    """The review is in the second store: before, `V` looked in the first only and offered a
    new review instead."""
    first, second = _two_stores(tmp_path, range(0, 3), range(3, 5))
    write_review(second, "r2", 8)
    vote_for(second, "r2", "x", range(0, 6))
    store, text, said = await _statistics(TunelabApp([first, second]))
    assert store == second
    assert "6 votes on 8 items · ana 6" in text
    assert not [m for m in said if "also in" in m]


async def test_a_review_name_in_two_stores_is_said_and_the_newest_is_shown(tmp_path: Path) -> None:
    first, second = _two_stores(tmp_path, range(0, 3), range(3, 5))
    write_review(first, "taste", 8)  # written first: the older of the two
    vote_for(first, "taste", "x", range(0, 2))
    write_review(second, "taste", 8)
    vote_for(second, "taste", "y", range(0, 5))
    store, text, said = await _statistics(TunelabApp([first, second]))
    assert store == second
    assert "5 votes on 8 items · ana 5" in text
    assert ("a review named 'taste' is also in box1.duckdb: this is the one in box2.duckdb "
            "(the newest)") in said


async def test_a_new_review_with_several_stores_goes_to_the_best_trials_store(
        tmp_path: Path) -> None:
    # trial 0 has the lowest loss: the best, in box2
    first, second = _two_stores(tmp_path, range(1, 3), range(0, 1))
    write_review(first, "taken", 4)
    app = TunelabApp([first, second])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, NewReviewDialog)
        assert app.screen.store_path == second
        assert "taken" in app.screen.taken  # no second review of a name in any store
        said = [n.message for n in app._notifications]
        assert any("the new review goes to box2.duckdb" in m for m in said)


async def test_the_arena_opens_in_the_store_that_holds_the_best_trial(tmp_path: Path) -> None:
    first, second = _two_stores(tmp_path, range(1, 3), range(0, 1))  # the best in box2
    app = TunelabApp([first, second])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_trials(pilot)
        assert screen.keys[screen.query_one(VimTable).current_key].store == second
        await pilot.press("A")  # the best row: base against best, both read in box2
        assert app.screen.store_path == second  # type: ignore[attr-defined]
        assert app.screen.refs == ("base", "best")  # type: ignore[attr-defined]


def test_review_stats_finds_the_review_in_whichever_store_holds_it(tmp_path: Path) -> None:
    """Before, a repeated --store kept the last file only."""
    first, second = _two_stores(tmp_path, range(0, 1), range(1, 2))
    write_review(first, "r1", 6)
    vote_for(first, "r1", "x", range(0, 4))
    done = tunelab("review", "stats", "r1", "--store", str(first), "--store", str(second))
    assert done.returncode == 0, done.stderr
    assert "4 votes on 6 items · ana 4" in done.stdout


def test_a_name_in_two_stores_is_refused_in_words(tmp_path: Path) -> None:
    """A review's votes and a chat's trial are in one store: a name in two is not guessed."""
    first, second = _two_stores(tmp_path, range(0, 1), range(1, 2))
    for store in (first, second):
        write_review(store, "taste", 4)
    for command, said in ((["review", "stats", "taste"], "a review named 'taste'"),
                          (["review", "taste"], "a review named 'taste'"),
                          (["chat", "ab", "0"], "an experiment named 'ab'")):
        done = tunelab(*command, "--store", str(first), "--store", str(second))
        # `tunelab` prints its title and message, no traceback, and exits 1
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        told = " ".join(done.stderr.split())
        assert f"{said.split()[1]} in several stores" in told
        assert f"{said} is in {first} and {second}: give the --store of the one you mean" in told
