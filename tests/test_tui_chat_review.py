"""Chat and review are reachable from the trials screen of `tunelab tui`, and go back to it."""

from __future__ import annotations

from pathlib import Path

from tui_pilot import settle

from tunelab import store as st
from tunelab.engine.review import reviews as review
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.chat import ChatScreen
from tunelab.tui.screens.review import ReviewScreen
from tunelab.tui.screens.trials import TrialsScreen


async def test_v_opens_the_review_and_T_a_chat_and_both_come_back(trained_store: Path) -> None:
    if st.find_review(trained_store, "tiny") is None:
        review.create(trained_store, "tiny", "tiny", ["base", "best"],
                      review.test_prompts(trained_store, "tiny", 4), "test", max_new_tokens=4)
    app = TunelabApp([trained_store])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TrialsScreen)
        await pilot.press("v")  # the experiment's review (made above): vote, then back
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("q")  # back once the ratings are fitted (in a worker)
        await settle(pilot)
        assert isinstance(app.screen, TrialsScreen)
        await pilot.press("j", "T")  # the row under the baseline: trial 0
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.ref == "trial:0"
        assert app.screen.model is not None  # loaded in a worker
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TrialsScreen)
