"""The evidence behind a trial's numbers, on its Samples tab: the outputs that miss first, an
empty output said to be empty, and each of the hardest examples with what it says."""

from __future__ import annotations

import io
import re
from pathlib import Path

import tui_store
from rich.console import Console
from tui_pilot import open_trials, settle

from tunelab.tui.app import TunelabApp
from tunelab.tui.widgets.table import VimTable

pytest_plugins = ("tui_fixtures",)  # demo_store, sql_history


async def _samples_of_the_best(demo_store: Path) -> list[str]:
    """The Samples tab of trial 1 (the best), as the lines a person reads."""
    app = TunelabApp([demo_store])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_trials(pilot)
        screen.query_one(VimTable).move_cursor(row=2)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("4")
        console = Console(width=78, file=io.StringIO(), record=True)
        console.print(app.screen.query_one("#sample-text").content)
        return console.export_text().splitlines()


async def test_the_outputs_that_miss_are_listed_first(demo_store: Path) -> None:
    lines = await _samples_of_the_best(demo_store)
    assert lines[0] == "2 of 4 outputs differ from the reference, shown first"
    order = [int(m.group(1)) for line in lines if (m := re.match(r"── sample (\d+)", line))]
    assert order == [3, 4, 1, 2]  # 40 + 2 = 41 and the empty one, then the two right


async def test_an_empty_output_says_it_is_empty(demo_store: Path) -> None:
    lines = await _samples_of_the_best(demo_store)
    at = lines.index("── sample 4 (differs from the reference)")
    assert lines[at + 1:at + 4] == ["prompt     What is 5 plus 5?", "output     (empty)",
                                    "reference  5 + 5 = 10"]


async def test_the_hardest_examples_show_their_prompt_and_answer(demo_store: Path) -> None:
    """`0.393 train arithmetic.jsonl:989` alone says where, not what: the text is shown, as
    the trial was taught it (the prepared split its manifest names)."""
    lines = await _samples_of_the_best(demo_store)
    at = lines.index("loss 0.393  train · arithmetic.jsonl:989")
    assert lines[at + 1:at + 3] == ["  prompt   What is 7 plus 5?", "  answer   7 + 5 = 13"]
    losses = [line.split()[1] for line in lines if line.startswith("loss ")]
    assert losses == ["0.393", "0.052", "0.011"]  # the hardest first
    assert len(tui_store.PREPARED) == len(losses)
