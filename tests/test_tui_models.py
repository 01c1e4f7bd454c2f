"""The chat and the arena with a real tiny model: at 80×24 mid-conversation; the chat says that
it keeps the conversation and ctrl+n forgets it; the arena's keys are the review's."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from screen_fit import problems, screen_lines
from textual.widgets import Input, Markdown

from tunelab import store as st
from tunelab.engine.serve.chat import Settings
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.arena import ArenaScreen
from tunelab.tui.screens.chat import ChatScreen

SIZE = (80, 24)
GREEDY = Settings(temperature=0, max_new_tokens=12)


def fits(app: TunelabApp, what: str) -> None:
    found = problems(app)
    assert not found, f"{what}:\n" + "\n".join(found) + "\n\n" + "\n".join(screen_lines(app))


@pytest.fixture
def store(trained_store: Path, tmp_path: Path) -> Path:
    """A copy of the trained store without other tests' reviews (the checkpoints stay)."""
    st.flush_orphans(trained_store)
    copy = tmp_path / "tunelab.duckdb"
    shutil.copy(trained_store, copy)
    # trial folders are recorded relative to the store: its runs folder goes beside the copy
    (tmp_path / "tunelab-runs").symlink_to(trained_store.parent / "tunelab-runs")
    with duckdb.connect(str(copy)) as con:
        for table in ("votes", "review_items", "reviews", "review_ratings"):
            con.execute(f"DELETE FROM {table}")
    return copy


async def _say(pilot, text: str) -> None:  # noqa: ANN001
    box = pilot.app.screen.query_one("#message", Input)
    box.value = text
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_chat_says_it_keeps_the_conversation_and_ctrl_n_forgets_it(
        store: Path, tmp_path: Path) -> None:
    app = TunelabApp([store], lambda: ChatScreen(store, "tiny", "best", tmp_path / "p.json"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # the model is loaded
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        screen.settings = GREEDY
        state = screen.query_one("#state")
        assert "remembers" not in str(state.render())
        await _say(pilot, "What is 3 plus 4?")
        await _say(pilot, "And 9 minus 2?")
        assert "remembers 2 turns (ctrl+n forgets)" in str(state.render())
        fits(app, "a chat of two turns")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.messages == [] and not screen.query(Markdown)
        assert "remembers" not in str(state.render()) and "a new conversation" in str(
            state.render())


async def test_the_arena_votes_undoes_and_reveals_with_the_reviews_keys(store: Path) -> None:
    app = TunelabApp([store], lambda: ArenaScreen(store, "tiny", ("base", "trial:0"), "ana"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # both models loaded
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ArenaScreen)
        screen.settings = GREEDY
        await _say(pilot, "What is 3 plus 4?")
        assert screen.voting
        fits(app, "the arena waiting for a vote")
        await pilot.press("a")
        await pilot.pause()
        assert not screen.voting and screen.voted == "a"
        box = screen.query_one("#message", Input)
        assert box.disabled and not box.has_focus  # a letter now is a key: u, r
        fits(app, "the arena after a vote")
        await pilot.press("u")
        await pilot.pause()
        assert screen.voting and "vote undone" in str(screen.query_one("#state").render())
        await pilot.press("b", "enter")  # vote again, then Enter: the box for the next turn
        await pilot.pause()
        assert box.has_focus and not box.disabled
        await pilot.press("escape")  # nothing being written: back, out of the app
        await pilot.pause()
    assert not app.is_running
