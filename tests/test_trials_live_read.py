"""A live refresh of the trials screen re-reads only the trials that may have changed (issue
19's refresh target at 1,000 trials): the result is what a full read gives, and a trial whose
row did not change is the very object read before."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import tui_store
from tui_pilot import open_trials, settle

from tunelab import store as st
from tunelab.tui import source


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tui_store.build(tmp_path)


def test_a_refresh_rereads_the_changed_new_and_running_trials_and_keeps_the_rest(
        store: Path) -> None:
    paths = (store,)
    read = source.trials_read(paths, tui_store.NAME, [], {})
    first, stamps = read.trials, read.stamps
    assert [t.overview for t in first] == [t.overview for t in source.trials(paths, "demo")]
    by_number = {t.number: t for t in first}
    now = time.time()
    # trial 0 is given a cost by its own run (a finished trial's row changes only for the run
    # that started it: its started_at); trial 5 starts
    started = by_number[0].overview.started_at
    assert started is not None
    with st.Spool(store) as spool:
        spool.write([st.TrialRow(experiment="demo", number=0, state="complete", value=2.86,
                                 cost=1.25, updated_at=now, started_at=started.timestamp()),
                     st.TrialRow(experiment="demo", number=5, state="running", updated_at=now)])
    read = source.trials_read(paths, "demo", first, stamps)
    again, stamps = read.trials, read.stamps

    assert [t.overview for t in again] == [t.overview for t in source.trials(paths, "demo")]
    assert [t.number for t in again] == [0, 1, 2, 3, 4, 5]
    after = {t.number: t for t in again}
    assert after[0].overview.cost == 1.25 and after[0] is not by_number[0]
    assert after[4] is not by_number[4]  # running: its position moves with the metrics
    for number in (1, 2, 3):  # unchanged rows: not read again
        assert after[number] is by_number[number]

    # nothing changed since: only the running trials are read again
    third = source.trials_read(paths, "demo", again, stamps).trials
    assert [t.number for t in third if t is not after[t.number]] == [4, 5]


def test_the_screen_shows_a_changed_trial_and_hands_the_table_the_same_lists_for_the_rest(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from rich.text import Text

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.widgets.table import VimTable

    monkeypatch.setenv("TUNELAB_SQL_HISTORY", str(tmp_path / "history.json"))

    def cost_of(table: VimTable, key: str) -> str:
        cell = table.get_cell(key, "cost")
        return cell.plain if isinstance(cell, Text) else str(cell)

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await open_trials(pilot)
            table = screen.query_one(VimTable)
            given = dict(table._given)
            with st.Spool(store) as spool:
                spool.write([st.TrialRow(experiment="demo", number=2, state="pruned",
                                         cost=3.5, updated_at=time.time())])
            screen.reload()  # what the live timer does
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert cost_of(table, "2") == "$3.50"
            for key in ("0", "1", "3"):  # untouched rows: the very lists, skipped at one `is`
                assert table._given[key] is given[key]

    asyncio.run(run())


def _age(store: Path) -> None:
    """The store as a sweep leaves it a minute after its last write (a file written in the last
    RACY_S seconds is read whatever its stamp says)."""
    old = time.time() - 60
    os.utime(store, (old, old))


def test_one_open_reads_the_changed_trials_and_the_evaluations(store: Path) -> None:
    change = st.trials_changed(store, "demo", {})
    assert change.evaluations == st.evaluations(store, "demo")
    assert change.changed == st.trial_overviews(store, "demo")  # nothing known: every trial
    read = source.trials_read((store,), "demo", [], {})
    assert read.evaluations == source.evaluations((store,), "demo")
    again = st.trials_changed(store, "demo", change.digests)
    assert [t.number for t in again.changed] == [4]  # only the running trial is read again


def test_the_file_state_changes_with_a_write_and_vouches_for_nothing_just_written(
        store: Path) -> None:
    assert st.file_state(store) is None  # just written: its time cannot tell a second write
    _age(store)
    state = st.file_state(store)
    assert state is not None and st.file_state(store) == state
    st.trials_changed(store, "demo", {})  # a read leaves the file as it was
    assert st.file_state(store) == state
    with st.Spool(store) as spool:
        spool.write([st.TrialRow(experiment="demo", number=2, state="pruned", cost=3.5,
                                 updated_at=time.time())])
    assert st.file_state(store) is None
    _age(store)
    assert st.file_state(store) not in (None, state)


def test_a_refresh_with_the_files_unchanged_reads_nothing_and_one_after_a_write_shows_it(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.widgets.table import VimTable

    monkeypatch.setenv("TUNELAB_SQL_HISTORY", str(tmp_path / "history.json"))
    reads: list[int] = []
    read = source.trials_read

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - counts, then reads for real
        reads.append(1)
        return read(*args, **kwargs)

    monkeypatch.setattr(source, "trials_read", counted)
    _age(store)

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await open_trials(pilot)
            screen.refresh_timer.pause()  # the refreshes below are the test's own
            table = screen.query_one(VimTable)
            trials, given, done = screen.trials, dict(table._given), len(reads)
            await screen._load().wait()  # what the live timer does, trial 4 running
            await settle(pilot)
            assert len(reads) == done  # the files are as read: nothing read …
            assert screen.trials is trials  # … nothing handed to the table
            assert all(table._given[k] is v for k, v in given.items())

            with st.Spool(store) as spool:  # a sweep writes: trial 5 starts, trial 2 changes
                spool.write([st.TrialRow(experiment="demo", number=5, state="running",
                                         updated_at=time.time()),
                             st.TrialRow(experiment="demo", number=2, state="pruned",
                                         cost=3.5, updated_at=time.time())])
            await screen._load().wait()
            await settle(pilot)
            assert len(reads) == done + 1
            assert [t.number for t in screen.trials] == [0, 1, 2, 3, 4, 5]
            assert "running" in str(table.get_cell("5", "state"))
            assert str(table.get_cell("2", "cost")) == "$3.50"

    asyncio.run(run())
