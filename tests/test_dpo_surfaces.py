"""A dpo stage's objective on every surface that shows it: the run's output, `tunelab trials`,
the trials table, the trial screen and compare. A dpo stage's eval_loss is its DPO loss on
held-out pairs (`preferences/loss`) and its reward accuracy is measured there too
(`preferences/reward_accuracy`); the parent's supervised loss (`validation/loss`) is another
number on another scale. Seen before: `metric_key(objective)` without the stage and three
hard-coded `validation/loss` showed the parent's supervised loss where the DPO one belongs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from test_dpo import voted  # noqa: F401 - the fixture: a tiny SFT trial and votes on it
from test_tui import cells, column
from tui_pilot import open_trials, settle

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.compare import CompareScreen
from tunelab.tui.screens.trial import TrialScreen
from tunelab.tui.widgets.plot import LinePlot
from tunelab.tui.widgets.table import VimTable

from conftest import tunelab

pytestmark = pytest.mark.slow  # a real SFT sweep, then its DPO stage

NAME = "dpo-shown"
# two objectives: the first is what the search ranks by, the second has a column of its own
DPO = f"""
name = "{NAME}"
[method]
stage = "dpo"
from = "sft:best"
preferences = "pairs.jsonl"
beta = 0.5
min_pairs = 6
[train]
epochs = 3
batch_size = 4
learning_rate = 5e-3
logging_steps = 1
early_stopping_patience = 10
[search]
trials = 2
sampler = "random"
objectives = ["reward_accuracy", "eval_loss"]
[search.space]
"train.learning_rate" = [2e-3, 5e-3]
[eval]
samples = 2
max_examples = 8
max_new_tokens = 8
"""


@pytest.fixture(scope="module")
def dpo_run(voted) -> tuple[Path, str]:  # noqa: F811
    """The dpo stage run by `tunelab run` (into a pipe): its store and what it printed."""
    store, _ = voted
    path = store.parent / f"{NAME}.toml"
    path.write_text(DPO)
    done = tunelab("run", str(path), "--store", str(store), cwd=store.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return store, done.stdout


def _values(store: Path) -> dict[str, dict[str, float]]:
    values = st.evaluations(store, NAME)
    base = values["base"]
    # the test means something only where the two losses differ
    assert fmt.number(base["preferences/loss"]) != fmt.number(base["validation/loss"])
    return values


def test_the_run_output_shows_the_dpo_objective_of_the_parent_and_each_trial(dpo_run) -> None:
    store, out = dpo_run
    values = _values(store)
    base = values["base"]
    baseline = next(line for line in out.splitlines() if line.startswith("baseline"))
    assert baseline.split()[1:3] == ["reward_accuracy",
                                     fmt.number(base["preferences/reward_accuracy"])], out
    for t in st.list_trials(store, NAME):
        end = next(line for line in out.splitlines()
                   if line.startswith(f"trial {t.number} ") and "complete" in line)
        assert f"reward_accuracy {fmt.number(t.value)}" in end, out
        assert t.value == values[f"trial:{t.number}"]["preferences/reward_accuracy"]


def test_trials_shows_the_second_objective_as_the_dpo_loss(dpo_run) -> None:
    store, _ = dpo_run
    values = _values(store)
    done = tunelab("trials", NAME, "--store", str(store))
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in done.stdout.splitlines()
            if line.startswith("│")]
    header = next(line for line in done.stdout.splitlines() if "eval_loss" in line)
    heads = [c.strip() for c in header.strip("┃ ").split("┃")]
    at = heads.index("eval_loss")
    for row in rows:
        number = int(re.sub(r"\D", "", row[0]))
        assert row[at] == fmt.number(values[f"trial:{number}"]["preferences/loss"]), done.stdout


def test_the_trials_table_trial_screen_and_compare_show_the_dpo_numbers(dpo_run) -> None:
    store, _ = dpo_run
    values = _values(store)
    base = values["base"]
    trials = {t.number: t for t in st.list_trials(store, NAME)}

    async def drive() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            experiments = app.screen.query_one(VimTable)
            experiments.move_cursor(row=[r[0] for r in cells(experiments)].index(NAME))
            screen = await open_trials(pilot)
            table = screen.query_one(VimTable)
            shown = cells(table)
            objective = column(table, "reward_accuracy")
            assert shown[0][objective] == fmt.number(base["preferences/reward_accuracy"])
            for row in shown[1:]:
                number = int(re.sub(r"\D", "", row[column(table, "#")]))
                assert row[objective] == fmt.number(trials[number].value)

            table.move_cursor(row=1)
            await pilot.press("enter")
            await settle(pilot)
            trial = app.screen
            assert isinstance(trial, TrialScreen)
            summary = str(trial.query_one("#summary").render())
            number = trial.trial.number
            assert (f"reward_accuracy {fmt.number(trials[number].value)} vs baseline "
                    f"{fmt.number(base['preferences/reward_accuracy'])}") in summary, summary
            plot = trial.query_one(LinePlot)
            line = next(s for s in plot.series if s.label.startswith("baseline validation"))
            assert line.ys == [base["preferences/loss"]] * 2  # where the curve is measured
            await pilot.press("escape")
            await settle(pilot)

            for row in (1, 2):
                table.move_cursor(row=row)
                await pilot.press("space")
            await pilot.press("c")
            await settle(pilot)
            compare = app.screen
            assert isinstance(compare, CompareScreen)
            await pilot.press("p")
            scatter = compare.query_one("#scatter-plot", LinePlot)
            assert sorted(y for s in scatter.series for y in s.ys) == sorted(
                values[f"trial:{n}"]["preferences/reward_accuracy"] for n in trials)

    asyncio.run(drive())
