"""Chat and review are reachable from the trials screen of `tunelab tui`, and go back to it."""

from __future__ import annotations

from pathlib import Path

from tunelab.tui.app import TunelabApp
from tunelab.tui.chat_screen import ChatScreen
from tunelab.tui.screens.trials import TrialsScreen


async def _settle(pilot) -> None:  # noqa: ANN001
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def test_t_opens_a_chat_with_the_trial_and_esc_comes_back(trained_store: Path) -> None:
    app = TunelabApp([trained_store])
    async with app.run_test(size=(100, 30)) as pilot:
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        assert isinstance(app.screen, TrialsScreen)
        await pilot.press("v")  # no review yet: it says how to make one
        await _settle(pilot)
        assert isinstance(app.screen, TrialsScreen)
        await pilot.press("j", "t")  # the row under the baseline: trial 0
        await _settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.ref == "trial:0"
        assert app.screen.model is not None  # loaded in a worker
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TrialsScreen)
