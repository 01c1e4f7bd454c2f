"""The pruner a new experiment gets, and the replay that chose it (bench/replay_pruners.py).

The replay runs Optuna's real pruners, as tunelab builds them, over the validation curves of
two unpruned 24-trial quickstart sweeps kept in bench/results (3 and 12 epochs): what a default
saves and whether it keeps the best is checked against those, not asserted from a number.
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from tunelab.engine.run.study import build_pruner
from tunelab.engine.spec import PrunerSpec, SearchSpec, load_spec

from conftest import ROOT

sys.path.insert(0, str(ROOT))

from bench.replay_pruners import SWEEPS, Curve, Orders, choose, load, replay, tunelab_pruner  # noqa: E402

HEAD = 'name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'


def _new_experiment(tmp_path: Path, body: str = ""):
    (tmp_path / "d.jsonl").write_text("{}\n")
    (tmp_path / "x.toml").write_text(HEAD + body)
    return load_spec(tmp_path / "x.toml").experiment


def test_a_new_experiment_gets_the_default_pruner_and_build_pruner_builds_it(
        tmp_path: Path) -> None:
    exp = _new_experiment(tmp_path)
    assert exp.search.pruner_spec == SearchSpec().pruner_spec == PrunerSpec()
    spec = exp.search.pruner_spec
    assert (spec.kind, spec.percentile, spec.startup_trials, spec.warmup_epochs) == \
        ("percentile", 90.0, 2, 0)
    pruner = build_pruner(exp)
    assert type(pruner) is optuna.pruners.PercentilePruner
    # Optuna counts steps from 1 and may prune at n_warmup_steps: warmup 0 is 1 there
    assert (pruner._percentile, pruner._n_startup_trials, pruner._n_warmup_steps) == (90.0, 2, 1)


def test_a_pruner_named_without_a_table_takes_the_default_settings(tmp_path: Path) -> None:
    exp = _new_experiment(tmp_path, '[search]\npruner = "percentile"\n')
    assert exp.search.pruner_spec == PrunerSpec()


def test_the_replay_stops_a_lagging_trial_where_the_pruner_says_and_counts_its_steps() -> None:
    # a finished trial, then one behind it from the first evaluation, then one ahead throughout
    curves = [Curve(0, (10, 20, 30), (1.0, 0.5, 0.3), 0.3),
              Curve(1, (10, 20, 30), (2.0, 1.5, 1.2), 1.2),
              Curve(2, (10, 20, 30), (0.9, 0.4, 0.2), 0.2)]
    outcome = replay(curves, optuna.pruners.MedianPruner(n_startup_trials=1))
    assert (outcome.steps, outcome.full_steps, outcome.pruned) == (30 + 10 + 30, 90, 1)
    assert outcome.best == outcome.full_best == 0.2 and outcome.kept


def test_the_replay_loses_the_best_when_a_slow_starter_is_pruned() -> None:
    # behind at the first evaluation, best at the end: the median after one trial stops it
    curves = [Curve(0, (10, 20), (1.0, 0.5), 0.5), Curve(1, (10, 20), (1.2, 0.1), 0.1)]
    outcome = replay(curves, optuna.pruners.MedianPruner(n_startup_trials=1))
    assert outcome.pruned == 1 and outcome.best == 0.5 and not outcome.kept
    assert replay(curves, optuna.pruners.NopPruner()).kept


def test_the_default_pruner_keeps_the_best_of_both_recorded_sweeps_and_saves_steps() -> None:
    # the quickstart's unpruned 24-trial sweeps at 3 and 12 epochs, replayed with the pruner
    # tunelab builds from the default [search.pruner]: no setting saves 50 % on both with the
    # best kept (see PrunerSpec); the default keeps the best and saves 28 % and 38 %
    make = tunelab_pruner(**PrunerSpec().model_dump())
    for name, path in SWEEPS.items():
        curves = load(path)
        assert len(curves) == 24
        outcome = replay(curves, make())
        assert outcome.kept, (name, outcome)
        assert outcome.saved >= 0.25, (name, outcome)


def test_the_median_after_two_trials_the_default_before_loses_the_best_of_12_epochs() -> None:
    # why the default changed: the 12-epoch sweep's best trial trails early and is stopped
    outcome = replay(load(SWEEPS["24×12"]), tunelab_pruner(kind="median", startup_trials=2)())
    assert outcome.saved >= 0.5 and not outcome.kept


def test_the_choice_keeps_the_best_first_and_then_saves_the_most() -> None:
    found = {"saves most, loses the best in a sweep": [Orders(1.0, 0.9, 0.6, 0.5),
                                                       Orders(0.2, 0.2, 0.7, 0.6)],
             "keeps it, saves some": [Orders(1.0, 0.0, 0.3, 0.1), Orders(0.8, 0.0, 0.4, 0.2)],
             "keeps it, saves less": [Orders(1.0, 0.0, 0.2, 0.1), Orders(0.9, 0.0, 0.3, 0.2)]}
    assert choose(found) == "keeps it, saves some"
    assert choose({"loses": [Orders(0.5, 0.5, 0.9, 0.9)]}) == "none"


def test_warmup_epochs_are_the_evaluations_before_a_trial_may_be_pruned() -> None:
    # a trial behind the finished one at every evaluation: with warmup_epochs = 2 it is
    # stopped at the third, not before (Optuna's own n_warmup_steps = 2 would stop it at the
    # second: steps are evaluations counted from 1)
    curves = [Curve(0, (10, 20, 30, 40), (1.0, 0.8, 0.6, 0.4), 0.4),
              Curve(1, (10, 20, 30, 40), (2.0, 1.8, 1.6, 1.4), 1.4)]
    for warmup, stopped_after in ((0, 10), (1, 20), (2, 30)):
        for kind in ("median", "percentile"):
            make = tunelab_pruner(kind=kind, startup_trials=1, warmup_epochs=warmup)
            assert replay(curves, make()).steps == 40 + stopped_after, (kind, warmup)


@pytest.mark.slow
def test_no_trial_is_pruned_at_its_last_evaluation(tmp_path: Path, small_experiment) -> None:
    """A pruner that would stop every trial worse than the first (percentile 1, one finished
    trial) at the only evaluation of a one-epoch trial: that evaluation is the last, the
    training is done, so the trials end complete and keep their results."""
    from tunelab import store as st

    from conftest import tunelab

    body = ('[method]\nkind = "full"\n[train]\nepochs = 1\nbatch_size = 16\n[eval]\nbaseline = false\n'
            'samples = 0\n'
            '[search]\ntrials = 3\nsampler = "random"\n'
            'pruner = { kind = "percentile", percentile = 1, startup_trials = 1 }\n'
            '[search.space]\n"train.learning_rate" = [3e-3, 1e-5, 2e-5]\n')
    experiment = small_experiment(body, rows=160)
    store = tmp_path / "tunelab.duckdb"
    # the first is far the best after one epoch; a configuration is queued once (enqueue
    # refuses it again), so the two worse ones differ
    for lr in ("3e-3", "1e-5", "2e-5"):
        queued = tunelab("enqueue", str(experiment), "--store", str(store),
                         "--set", f"train.learning_rate={lr}")
        assert queued.returncode == 0, queued.stderr
    done = tunelab("run", str(experiment), "--store", str(store))
    assert done.returncode == 0, done.stderr
    trials = st.list_trials(store, "tiny")
    assert [t.params["train.learning_rate"] for t in trials] == [3e-3, 1e-5, 2e-5]
    assert trials[1].value > trials[0].value  # worse, so the pruner would have stopped it
    assert [t.state for t in trials] == ["complete"] * 3
