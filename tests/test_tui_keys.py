"""One table of keys (tui/keys.py): a key does one thing wherever it works, every screen binds
its keys from the table, docs/tui.md prints the table; and the keys do what it says: scrolling
tabs and the help without a Tab press first, esc out of a chat or arena started on its own, the
x-axis key only where there is an x axis, "Open trial N" from every screen of an experiment."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.widgets import TabbedContent
from tui_pilot import open_trials, settle

import tunelab.tui.screens as screens_package
from tunelab.tui import keys
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.arena import ArenaScreen
from tunelab.tui.screens.chat import ChatScreen
from tunelab.tui.screens.compare import CompareScreen
from tunelab.tui.screens.help import HelpScreen
from tunelab.tui.screens.trial import TrialScreen
from tunelab.tui.widgets.scroll import VimScroll
from tunelab.tui.widgets.table import VimTable

pytest_plugins = ("tui_fixtures",)  # demo_store, sql_history

DOCS = Path(__file__).resolve().parents[1] / "docs" / "tui.md"


def _screen_classes() -> list[type]:
    import importlib
    import pkgutil

    found = []
    for module in pkgutil.iter_modules(screens_package.__path__):
        loaded = importlib.import_module(f"{screens_package.__name__}.{module.name}")
        found += [c for _, c in inspect.getmembers(loaded, inspect.isclass)
                  if c.__module__ == loaded.__name__ and "BINDINGS" in c.__dict__]
    return found


def test_a_key_means_one_thing_wherever_it_works() -> None:
    rows: dict[str, str] = {}
    for row in keys.KEYS:
        for key in row.keys.split(","):
            assert key not in rows, f"{key!r} is both {rows[key]!r} and {row.name!r}"
            rows[key] = row.name


def test_every_screen_binds_its_keys_from_the_table() -> None:
    """No screen binds a key the table does not give it, or gives it another meaning."""
    by_key = {k: row for row in keys.KEYS for k in row.keys.split(",")}
    classes = _screen_classes() + [TunelabApp, VimTable, VimScroll]
    for cls in classes:
        name = getattr(cls, "KEYS_OF", None)
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding)
            if cls.__name__ == "QueryBox":  # ↑ ↓ in the query box: the history, as in a shell
                continue
            row = by_key.get(binding.key)
            assert row is not None, f"{cls.__name__} binds {binding.key!r}, not in the table"
            if name is not None:
                assert row.name in keys.names(name), f"{cls.__name__}: {binding.key!r}"
                assert binding.description == keys.label(name, row), cls.__name__
    assert {c.__name__ for c in classes} >= {"ReviewScreen", "ArenaScreen", "ChatScreen",
                                             "TrialsScreen", "SqlScreen", "ReviewStatsScreen"}


def test_undo_and_reveal_are_the_same_keys_in_the_review_and_the_arena() -> None:
    for action, key in (("undo", "u"), ("reveal", "r")):
        for screen in ("review", "arena"):
            found = [b for b in keys.bindings(screen) if isinstance(b, Binding)
                     and b.action == action]
            assert [b.key for b in found] == [key], (screen, action)
    assert not [b for b in keys.bindings("chat") if isinstance(b, Binding)
                and b.action == "reveal"]


def test_docs_print_the_table() -> None:
    assert keys.markdown() in DOCS.read_text(), "docs/tui.md: paste keys.markdown() again"


async def test_samples_and_config_scroll_with_the_table_keys_without_tab_first(
        demo_store: Path) -> None:
    """j, G, End and PageDown scroll the tab shown, and it has one scrollbar."""
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_trials(pilot)
        screen.query_one(VimTable).move_cursor(row=2)  # trial 1: samples and hardest examples
        await pilot.press("enter")
        await settle(pilot)
        trial = app.screen
        for tab, scroller in (("4", "#samples-scroll"), ("3", "#config-scroll")):
            await pilot.press(tab)
            await settle(pilot)
            view = trial.query_one(scroller, VimScroll)
            assert view.max_scroll_y > 0
            await pilot.press("G")
            assert view.scroll_target_y == view.max_scroll_y, tab
            await pilot.press("g", "j")
            assert view.scroll_target_y == 1, tab
            await pilot.press("end")
            assert view.scroll_target_y == view.max_scroll_y, tab
            await pilot.press("home", "pagedown")
            assert view.scroll_target_y > 1, tab
            pane = trial.query_one(TabbedContent)
            scrolling = [w for w in pane.query(ScrollableContainer).results()
                         if w.region.height and w.show_vertical_scrollbar]
            assert scrolling == [view], tab  # one scrollbar, the view's


async def test_the_help_box_scrolls_with_j_and_k(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help-box")
        assert box.max_scroll_y > 0
        await pilot.press("j", "j")
        assert box.scroll_target_y == 2
        await pilot.press("k")
        assert box.scroll_target_y == 1
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("which", ["chat", "arena"])
def test_esc_leaves_a_chat_or_arena_started_on_its_own(tmp_path: Path, which: str) -> None:
    """`tunelab chat` and `tunelab chat --arena`: esc (with no reply being written) leaves the
    app, as the footer says, instead of leaving the user typing into it."""
    store = tmp_path / "none.duckdb"
    first = (lambda: ChatScreen(store, "x", "best", tmp_path / "p.json")) if which == "chat" \
        else (lambda: ArenaScreen(store, "x", ("base", "best"), "ana"))

    async def run() -> bool:
        app = TunelabApp([store], first)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("escape")
            for _ in range(200):  # the app winds down
                if not app.is_running:
                    break
                await asyncio.sleep(0.01)
            return app.is_running

    assert asyncio.run(run()) is False


async def test_the_x_axis_key_shows_and_works_on_the_curves_tab_only(demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        await pilot.press("j", "j", "enter")
        await settle(pilot)
        trial = app.screen
        assert isinstance(trial, TrialScreen)
        shown = {b.binding.key for b in trial.active_bindings.values() if b.enabled}
        assert "X" in shown
        await pilot.press("2")
        shown = {b.binding.key for b in trial.active_bindings.values() if b.enabled}
        assert "X" not in shown
        await pilot.press("X")
        assert trial.x_axis == "step"  # nothing happened on the evaluation tab
        await pilot.press("1", "X")
        assert trial.x_axis == "epoch"


async def test_open_trial_n_is_in_the_palette_of_every_screen_of_an_experiment(
        demo_store: Path) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await open_trials(pilot)
        for opened in ("trials", "trial", "compare"):
            if opened == "trial":
                await pilot.press("j", "enter")  # trial 0 (the base row opens nothing)
            elif opened == "compare":
                await pilot.press("escape", "c")
            await settle(pilot)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Open trial 3" in titles, opened
        assert isinstance(app.screen, CompareScreen)
        found = next(c for c in app.get_system_commands(app.screen) if c.title == "Open trial 3")
        found.callback()
        await settle(pilot)
        assert isinstance(app.screen, TrialScreen) and app.screen.trial.number == 3
