"""A trial state's colour is written once (tui/states.py) for the trials table, `tunelab trials`
and the console of `tunelab run`."""

from __future__ import annotations

from rich.text import Text

from tunelab.tui.states import STATE_STYLE, state_markup


def test_a_state_is_marked_up_in_its_colour_and_its_words_stay_text() -> None:
    assert state_markup("complete") == "[green]complete[/]"
    assert state_markup("failed", "✗ failed ([oom])") == "[bold red]✗ failed (\\[oom])[/]"
    assert Text.from_markup(state_markup("failed", "✗ failed ([oom])")).plain == "✗ failed ([oom])"
    assert state_markup("waiting") == "waiting"  # a state without a colour is plain text


def test_every_state_the_runner_ends_a_trial_in_has_a_colour() -> None:
    assert {"complete", "pruned", "failed", "running", "voting"} <= set(STATE_STYLE)
