"""Standard benchmarks through lm-evaluation-harness ([eval.harness]): scored inside the trial on
the model it holds, landing in `evaluations` as TASK:METRIC, an objective and a criterion like
any metric; the same score as lm_eval run by hand on the exported model. Offline: the task is
tunelab_tiny, shipped with tunelab over a local JSONL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import metric_key, passes
from tunelab.engine.run import study as search
from tunelab.engine.spec import Experiment, load_spec
from tunelab.engine.train import benchmarks

from conftest import Quiet, tunelab

lm_eval = pytest.importorskip("lm_eval")  # the optional extra: tunelab[harness] (CI installs it)

PLAIN = {"name": "x", "model": {"base": "m"}, "data": {"train": "d.jsonl"}}
SEED = 5


def test_scores_are_named_task_colon_metric_without_errors_and_labels() -> None:
    found = benchmarks.flatten({
        "arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.1,
                     "acc_norm,none": 0.55, "sample_len": 20},
        "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.02}})
    assert found == {"harness/arc_easy:acc": 0.5, "harness/arc_easy:acc_norm": 0.55,
                     "harness/gsm8k:exact_match,strict-match": 0.25}
    assert metric_key("arc_easy:acc", "sft") == "harness/arc_easy:acc"


def test_a_score_of_a_named_task_may_be_an_objective_and_a_criterion() -> None:
    exp = Experiment.model_validate({
        **PLAIN, "eval": {"harness": {"tasks": ["tunelab_tiny"]}},
        "search": {"objectives": ["eval_loss", "tunelab_tiny:acc"]},
        "success": {"tunelab_tiny:acc": ">= 0.5"}})
    assert exp.search.all_directions == ["minimize", "maximize"]
    with pytest.raises(ValueError, match="'arc_easy:acc' is never computed"):
        Experiment.model_validate({**PLAIN, "eval": {"harness": {"tasks": ["tunelab_tiny"]}},
                                   "success": {"arc_easy:acc": ">= 0.5"}})


@pytest.mark.slow  # indexes lm-eval's ~15,000 task files: seconds
def test_an_unknown_task_is_refused_with_the_closest_name() -> None:
    exp = Experiment.model_validate({**PLAIN, "eval": {"harness": {"tasks": ["tunelab_tiyn"]}}})
    with pytest.raises(SpecError, match="no task tunelab_tiyn \\(did you mean tunelab_tiny\\?\\)"):
        benchmarks.check_tasks(exp)


def test_without_the_extra_check_says_how_to_install_it(small_experiment,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = small_experiment('[eval.harness]\ntasks = ["tunelab_tiny"]\n')
    load_spec(experiment)  # installed: valid
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if it were not installed
    with pytest.raises(SpecError, match=r"pip install 'tunelab\[harness\]'"):
        load_spec(experiment)
    hidden = "import sys; sys.modules['lm_eval'] = None; from tunelab.tui.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", hidden, "check", str(experiment)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "tunelab[harness]" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


SWEEP = f"""
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
learning_rate = 3e-3
[search]
trials = 1
sampler = "random"
objectives = ["eval_loss", "tunelab_tiny:acc"]
[eval]
samples = 0
[eval.harness]
tasks = ["tunelab_tiny"]
limit = 20
num_fewshot = 2
seed = {SEED}
[success]
"tunelab_tiny:acc" = ">= 0.2"
"""


@pytest.mark.slow
def test_a_benchmark_scored_inside_a_trial_equals_lm_eval_by_hand(tmp_path: Path,
                                                                    small_experiment) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from tunelab.engine.run.runner import Runner

    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(small_experiment(SWEEP, rows=240)), store, Quiet()).run()
    found = st.evaluations(store, "tiny")
    trial = st.list_trials(store, "tiny")[0]
    assert trial.state == "complete", trial.error
    score = found["trial:0"]["harness/tunelab_tiny:acc"]
    assert "harness/tunelab_tiny:acc" in found["base"]  # the baseline is scored too
    # an objective of the study and the success criterion, read from the same value
    study = optuna.load_study(study_name="tiny", storage=search.open_storage(
        str(tmp_path / "tunelab.optuna.journal")))
    assert study.trials[0].values[1] == score
    rows = st.query(store, "select success from trials where number = 0").rows
    assert rows[0][0] == passes(">= 0.2", score)

    exported = tmp_path / "exported"
    done = tunelab("export", "tiny", "0", "--out", str(exported), "--store", str(store))
    assert done.returncode == 0, done.stderr
    by_hand = simple_evaluate(
        model="hf", model_args={"pretrained": str(exported), "dtype": "float32", "device": "cpu",
                                "max_length": 512},
        tasks=["tunelab_tiny"], num_fewshot=2, limit=20, batch_size=8, log_samples=False,
        bootstrap_iters=0, task_manager=TaskManager(include_path=str(benchmarks.SHIPPED_TASKS),
                                                    include_defaults=False),
        random_seed=SEED, numpy_random_seed=SEED, torch_random_seed=SEED, fewshot_random_seed=SEED)
    assert by_hand is not None
    assert by_hand["results"]["tunelab_tiny"]["acc,none"] == score
