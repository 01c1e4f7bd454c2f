"""One rule for objectives and verdicts, used by the runner, the CLI and the TUI alike."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunelab.engine import objectives as ob


def test_direction_decides_which_value_is_better() -> None:
    assert ob.better(0.5, 0.7, "minimize") and not ob.better(0.7, 0.5, "minimize")
    assert ob.better(0.7, 0.5, "maximize") and not ob.better(0.5, 0.7, "maximize")
    assert not ob.better(0.5, 0.5, "maximize")  # strictly better
    assert ob.better(0.5, 0.7, None)  # no direction recorded: the default, minimize


def test_default_direction_lowers_losses_cost_and_time_and_raises_the_rest() -> None:
    assert [ob.default_direction(n) for n in ("eval_loss", "perplexity", "cost", "duration_s")] \
        == ["minimize"] * 4
    assert ob.default_direction("exact_match") == "maximize"


def test_ranked_and_best_of_keep_ties_in_order() -> None:
    items = [("a", 2.0), ("b", 1.0), ("c", 2.0), ("d", 1.0)]
    assert [n for n, _ in ob.ranked(items, lambda i: i[1], "maximize")] == ["a", "c", "b", "d"]
    assert ob.best_of(items, lambda i: i[1], "minimize") == ("b", 1.0)
    assert ob.best_of([], lambda i: i, "minimize") is None


def test_objective_names_its_metric_key_by_stage() -> None:
    assert ob.metric_key("eval_loss", "sft") == "validation/loss"
    assert ob.metric_key("exact_match", "sft") == "validation/exact_match"
    assert ob.metric_key("eval_loss", "dpo") == "preferences/loss"
    assert ob.metric_key("reward_accuracy", "dpo") == "preferences/reward_accuracy"
    values = {"validation/loss": 1.5, "preferences/loss": 0.6}
    assert ob.objective_value("eval_loss", "sft", values) == 1.5
    assert ob.objective_value("eval_loss", "dpo", values) == 0.6
    assert ob.objective_value("bleu", "sft", values) is None


def test_the_stage_of_a_stored_spec_is_sft_unless_it_says_dpo() -> None:
    assert ob.stage_of({"method": {"stage": "dpo"}}) == "dpo"
    assert ob.stage_of({"method": {"kind": "lora"}}) == ob.stage_of({}) == "sft"


@pytest.mark.parametrize(("condition", "value", "expected"), [
    (">= 0.9", 0.93, True), (">= 0.9", 0.9, True), ("> 0.9", 0.9, False), ("<1.5", 1.2, True),
    ("== 1", 1.0, True), ("<= -2e-3", -0.01, True), (">= .5", 0.5, True), (">= 0.9", None, False),
    # malformed conditions never pass (and never raise: "1.2.3" used to match and crash float())
    (">= 1.2.3", 5.0, False), ("about 0.9", 0.9, False), ("=> 0.9", 1.0, False),
])
def test_passes_judges_a_condition(condition: str, value: float | None, expected: bool) -> None:
    assert ob.passes(condition, value) is expected


def test_verdict_reads_the_test_split_then_the_preference_pairs() -> None:
    values = {"test/exact_match": 0.95, "preferences/reward_accuracy": 0.4}
    success = {"exact_match": ">= 0.9", "reward_accuracy": ">= 0.6"}
    assert ob.verdict(success, values) == {"exact_match": True, "reward_accuracy": False}
    assert ob.succeeded(success, values) is False
    assert ob.succeeded({"exact_match": ">= 0.9"}, values) is True
    assert ob.succeeded({}, values) is None


def test_the_spec_refuses_a_condition_that_objectives_cannot_judge() -> None:
    from tunelab.engine.spec import Experiment

    base = {"name": "x", "model": {"base": "m"}, "data": {"train": "t.jsonl"},
            "eval": {"metrics": ["exact_match"]}}
    Experiment.model_validate({**base, "success": {"exact_match": ">= 0.9"}})
    with pytest.raises(ValueError, match="is not a condition"):
        Experiment.model_validate({**base, "success": {"exact_match": ">= 1.2.3"}})


def test_objectives_is_light() -> None:
    # the TUI and the CLI judge with it at start-up: no training stack behind it
    code = ("import sys; import tunelab.engine.objectives; "
            "print(sorted(m for m in ('torch', 'transformers', 'optuna', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_value_not_measured_is_unknown_not_a_failure() -> None:
    # a trial recorded from the study after its store was lost: its test evaluation went with
    # the store; the table and the summary said "✗ fail" / "success: no" for it
    success = {"exact_match": ">= 0.9"}
    assert ob.succeeded(success, {"test/loss": 0.04}) is None
    assert ob.succeeded(success, {"test/loss": 0.04, "test/exact_match": 0.5}) is False
    assert ob.succeeded({**success, "loss": "<= 1"}, {"test/exact_match": 0.95}) is None
