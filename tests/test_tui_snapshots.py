"""Snapshots of the main screens (pytest-textual-snapshot): a changed layout shows up as a diff.

The store's times are fixed and shown in UTC so the pictures do not depend on the day.
Accept an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import tui_store
from tui_pilot import paste

from tunelab.tui.app import TunelabApp

NOON = 1767268800.0  # 2026-01-01 12:00 UTC


@pytest.fixture(scope="module")
def fixed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tui_store.build(tmp_path_factory.mktemp("snap"), now=NOON)


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("TUNELAB_SQL_HISTORY", str(tmp_path / "history.json"))
    time.tzset()


PASTE = "paste:"  # a step that is text pasted into the focused box (tui_pilot.paste)


def steps(*keys: str):  # noqa: ANN201
    """A run_before that lets the workers finish between key presses."""

    async def run(pilot) -> None:  # noqa: ANN001
        for key in ("", *keys):
            if key.startswith(PASTE):
                await paste(pilot, key.removeprefix(PASTE))
            elif key:
                await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    return run


def test_snapshot_experiments(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    assert snap_compare(TunelabApp([fixed_store]), run_before=steps())


def test_snapshot_trials(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    assert snap_compare(TunelabApp([fixed_store]), run_before=steps("enter"))


def test_snapshot_trials_wide(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    assert snap_compare(TunelabApp([fixed_store]), terminal_size=(200, 50), run_before=steps("enter"))


def test_snapshot_trial_curves(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    assert snap_compare(TunelabApp([fixed_store]), run_before=steps("enter", "j", "j", "enter"))


def test_snapshot_compare(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    assert snap_compare(TunelabApp([fixed_store]), run_before=steps("enter", "c"))


def test_snapshot_sql(snap_compare, fixed_store: Path) -> None:  # noqa: ANN001
    # the query pasted, not run: the status line of a run carries its time in ms
    query = PASTE + "select state, count(*) n from trials group by 1 order by 1"
    assert snap_compare(TunelabApp([fixed_store]), run_before=steps("colon", query))
