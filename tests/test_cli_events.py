"""The run's events are typed, and the console reporter shows each one. Seen before:
`trial_timeout` was sent by the launcher and handled by no one (events were names that nothing
checked), so the user was not told a trial was killed for time. Now each event is a dataclass
of engine/run/events.py, every one of them is in the `Event` union, and the reporter's match
ends in `assert_never` (mypy fails on an event it does not show; so does this test, at run
time)."""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace as NS
from typing import Any, get_args

import pytest

from tunelab.engine.data.preferences import PreferenceReport
from tunelab.engine.data.report import DataReport
from tunelab.engine.run import events as ev
from tunelab.engine.run.jobs import TrialResult
from tunelab.engine.run.outcomes import TrialOutcome
from tunelab.tui.cli.reporter import ConsoleReporter

# a value for each field name an event has
SAMPLES: dict[str, Any] = {
    "model": "org/model", "smoke": False, "parent": "sft:0", "number": 3, "values":
    {"validation/loss": 1.5, "test/loss": 1.6}, "cached": False, "error": "boom", "trials": 4,
    "finished": 1, "workers": 1, "threads": 2, "pruning": True, "seconds": 40.0, "running": [3],
    "now": False, "params": {"train.learning_rate": 3e-3}, "epochs": 2, "worker": 0,
    "kind": "eval", "data": {"epoch": 1.0, "step": 10, "eval_loss": 0.5}, "review": "taste",
    "waiting": 1, "opponent": "base", "items": 8, "rating": 120.0, "how": "won", "votes": 6,
    "interval": (10.0, 230.0), "numbers": [3], "told": 120.0, "total": 12,
    "rated": "≥ 1092", "rank": "1–2", "of": 3,
    "text": "the effective batch (64) is larger than the training split (40)",
    "runs": "tunelab-runs/taste", "lost": (0, 1), "state": "complete", "share": 0.75,
    "baselines": {"base": {"test/exact_match": 0.1}, "base+3shot": {"test/exact_match": 0.92}},
    "meets": "the base model with 3 examples meets exact_match ≥ 0.9: you may not need to "
             "fine-tune",
    "report": None,  # per event below
    "outcome": TrialOutcome(3, {"train.learning_rate": 3e-3},
                            TrialResult("failed", fail_reason="timeout", error="killed"), 40.0),
}


def _sample(cls: type) -> Any:
    values = {f.name: SAMPLES[f.name] for f in dataclasses.fields(cls)}
    if cls is ev.DataPrepared:
        values["report"] = DataReport("data.jsonl", 100, {"train": 80, "validation": 10,
                                                           "test": 10}, 0)
    if cls is ev.PreferencesPrepared:
        values["report"] = PreferenceReport("pairs.jsonl", rows_read=20, train=16, heldout=4)
    return cls(**values)


def test_every_event_class_is_in_the_union() -> None:
    defined = {c for _, c in inspect.getmembers(ev, inspect.isclass)
               if dataclasses.is_dataclass(c) and c.__module__ == ev.__name__}
    assert defined == set(get_args(ev.Event))


@pytest.mark.parametrize("cls", get_args(ev.Event), ids=lambda c: c.__name__)
def test_the_reporter_shows_every_event(cls: type, capsys: pytest.CaptureFixture[str]) -> None:
    reporter = ConsoleReporter("taste")
    reporter.event(ev.Sweep(trials=4, finished=1))
    reporter.event(ev.TrialStart(number=3, params={"train.learning_rate": 3e-3}, epochs=2))
    capsys.readouterr()
    reporter.event(_sample(cls))  # an event without a case would reach assert_never


def test_a_trial_killed_for_time_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = ConsoleReporter("tiny")
    reporter.event(ev.Sweep(trials=1, finished=0))
    reporter.event(ev.TrialStart(number=0, params={}, epochs=40))
    reporter.event(ev.TrialTimeout(number=0, seconds=40.0))
    reporter.event(ev.TrialEnd(outcome=NS(number=0, params={}, duration_s=40.2, result=TrialResult(
        "failed", fail_reason="timeout", error="the trial ran longer than search.trial_timeout"))))
    out = capsys.readouterr()
    assert "trial 0 ran past search.trial_timeout (40s): killed" in out.out
    assert "✗ failed (timeout)" in out.out
