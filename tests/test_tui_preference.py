"""The screens of a preference sweep: a `placed` column (each trial's placement, the rating over
the base model told to the search), the `voting` state of trials that wait for votes with where
the votes would place them now, and the same number, formatted alike, in the experiments list
and the new-review dialog."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rich.text import Text

from tunelab import store as st
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.trials import TrialsScreen
from tunelab.tui.widgets.table import VimTable


def _store(folder: Path) -> Path:
    store = folder / "tunelab.duckdb"
    now = time.time()
    rows: list[st.Row] = [st.ExperimentRow(name="taste", objective="preference",
                                           direction="maximize", created_at=now, updated_at=now)]
    for number, state, value in ((0, "complete", 120.4), (1, "voting", 35.2), (2, "voting", None),
                                 (3, "complete", -80.0)):
        rows.append(st.TrialRow(experiment="taste", number=number, state=state,
                                method_kind="full", params=json.dumps({"train.learning_rate":
                                                                      1e-3 * (number + 1)}),
                                value=value, started_at=now, updated_at=now))
    rows.append(st.EvaluationRow(experiment="taste", model_ref="base", split="validation",
                                 name="loss", value=4.5, time=now))
    with st.Spool(store, tag="test") as spool:
        spool.write(rows)
    return store


def test_the_trials_of_a_preference_sweep_show_their_rating_and_voting_state(
        tmp_path: Path) -> None:
    store = _store(tmp_path)

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            # the experiments screen counts the trials waiting for votes as not done
            (summary,) = [e.summary for e in app.screen.experiments]
            assert (summary.complete, summary.running, summary.trials) == (2, 2, 4)
            # issue 25: the experiments list showed `1109.72` where the trials table said +1110
            listed = app.screen.query_one(VimTable)
            row = [c.plain if isinstance(c, Text) else str(c) for c in listed.get_row_at(0)]
            assert "+120 #0" in row and "120.40 #0" not in row
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TrialsScreen)
            table = screen.query_one(VimTable)
            titles = [str(c.label) for c in table.ordered_columns]
            assert "placed" in titles and "preference" not in titles and "rating" not in titles
            cells = {}
            for i in range(table.row_count):
                row = [c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)]
                cells[row[titles.index("#")]] = (row[titles.index("state")],
                                                 row[titles.index("placed")],
                                                 row[titles.index("progress")])
            assert cells["0"][:2] == ("complete", "+120")
            assert cells["1"] == ("voting", "~+35", "waiting for votes")
            assert cells["2"][:2] == ("voting", "no votes")
            assert cells["3"][:2] == ("complete", "-80")
            assert cells["—"][1] == "+0"  # the base model: ratings are over it
            assert screen.best == 0  # the highest placement is the best
            await pilot.press("n")  # the new-review dialog names it the same way
            await app.workers.wait_for_complete()
            await pilot.pause()
            from tunelab.tui.screens.review_new import NewReviewDialog

            dialog = app.screen
            assert isinstance(dialog, NewReviewDialog)
            labels = dict(dialog.choices)
            assert labels["trial:0"].split()[1:] == ["full", "placed", "+120", "★", "best"]
            assert labels["trial:3"].split()[1:] == ["full", "placed", "-80"]

    asyncio.run(run())
