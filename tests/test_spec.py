from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import load_spec, with_overrides

from conftest import EXPERIMENTS, tunelab


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_experiment_loads_and_opens_with_its_command(path: Path) -> None:
    spec = load_spec(path)
    assert spec.experiment.name
    assert path.read_text().splitlines()[0] == f"# Run: tunelab run experiments/{path.name}"


def test_quickstart_searches_learning_rate_and_method() -> None:
    exp = load_spec(EXPERIMENTS / "quickstart.toml").experiment
    assert set(exp.search.space) == {"train.learning_rate", "method.kind"}
    # the order decides which kind TPE's first random trial gets (full: see the file)
    assert sorted(exp.search.space["method.kind"]) == ["full", "lora"]
    assert exp.search.trials >= 6
    assert exp.search.sampler == "tpe" and exp.search.pruner_spec.kind == "median"
    assert exp.search.objective == "eval_loss"


def test_quickstart_first_trial_is_full_fine_tuning() -> None:
    # the quickstart's pruner compares every later trial with the first finished one: it must
    # be a trial that can meet the success criterion (full), not LoRA on random weights
    import optuna

    from tunelab.engine.run.study import build_sampler, sample

    exp = load_spec(EXPERIMENTS / "quickstart.toml").experiment
    study = optuna.create_study(sampler=build_sampler(exp))
    assert sample(study.ask(), exp)["method.kind"] == "full"


def _errors(tmp_path: Path, text: str) -> str:
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return str(caught.value)


HEAD = 'name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'


def test_a_new_experiment_is_pruned_by_the_percentile_after_two_finished_trials(tmp_path: Path) -> None:
    # the setting that keeps the best of both replayed 24-trial quickstart sweeps (3 and 12
    # epochs) and saves the most steps doing so (bench/replay_pruners.py)
    (tmp_path / "d.jsonl").write_text("{}\n")
    (tmp_path / "x.toml").write_text(HEAD)
    pruner = load_spec(tmp_path / "x.toml").experiment.search.pruner_spec
    assert (pruner.kind, pruner.percentile, pruner.startup_trials, pruner.warmup_epochs) == \
        ("percentile", 90.0, 2, 0)


def test_misspelled_key_names_line_and_closest_key(tmp_path: Path) -> None:
    message = _errors(tmp_path, HEAD + "[train]\nepochs = 2\nlearning_rat = 1e-3\n")
    assert "x.toml:8:" in message
    assert "'train.learning_rat'" in message and "did you mean 'train.learning_rate'" in message


def test_wrong_type_shows_what_was_found(tmp_path: Path) -> None:
    message = _errors(tmp_path, HEAD + "[train]\nepochs = \"three\"\n")
    assert "x.toml:7: train.epochs:" in message and '"three"' in message


def test_split_must_sum_to_one(tmp_path: Path) -> None:
    text = HEAD + "split = { train = 0.8, validation = 0.3, test = 0.1 }\n"
    assert "must be 1, they sum to 1.2" in _errors(tmp_path, text)


def test_all_mistakes_are_reported_at_once(tmp_path: Path) -> None:
    text = HEAD + "[method]\nkind = \"sft\"\n[train]\nepochs = 0\n"
    message = _errors(tmp_path, text)
    assert "method.kind" in message and "train.epochs" in message


def test_search_path_must_exist(tmp_path: Path) -> None:
    text = HEAD + '[search.space]\n"train.learning_rat" = [1e-3, 2e-3]\n'
    message = _errors(tmp_path, text)
    assert "x.toml:7:" in message and "'train.learning_rat' is not a key" in message
    assert "did you mean 'train.learning_rate'" in message


def test_search_range_low_above_high(tmp_path: Path) -> None:
    text = HEAD + '[search.space]\n"train.learning_rate" = { low = 1e-2, high = 1e-4 }\n'
    assert "low (0.01) is above high (0.0001)" in _errors(tmp_path, text)


def test_search_value_must_fit_the_key(tmp_path: Path) -> None:
    text = HEAD + '[search.space]\n"method.kind" = ["lora", "dora2"]\n'
    message = _errors(tmp_path, text)
    assert "search.space.method.kind" in message and "'dora2'" in message


def test_missing_data_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "nope.jsonl"\n')
    with pytest.raises(SpecError, match=r"x.toml:5: data.train: no file at .*nope.jsonl"):
        load_spec(path)


def test_toml_syntax_error(tmp_path: Path) -> None:
    assert "TOML syntax error" in _errors(tmp_path, HEAD + "[train\n")


def test_override_is_validated_like_the_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(HEAD)
    assert load_spec(path, ["train.epochs=2"]).experiment.train.epochs == 2
    with pytest.raises(SpecError, match="train.epochs"):
        load_spec(path, ["train.epochs=-1"])


def test_trial_overrides_resolve_the_method_default_learning_rate(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(HEAD)
    spec = load_spec(path)
    assert with_overrides(spec, {"method.kind": "full"}).learning_rate == 2e-5
    assert with_overrides(spec, {"method.kind": "lora"}).learning_rate == 2e-4


def test_cli_reports_spec_errors_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(HEAD + "[trian]\nepochs = 2\n")
    done = tunelab("run", str(path), "--store", str(tmp_path / "s.duckdb"))
    assert done.returncode == 2
    assert "did you mean 'train'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_objective_that_is_never_computed(tmp_path: Path) -> None:
    message = _errors(tmp_path, HEAD + '[search]\nobjective = "bleu"\n')
    assert "'bleu' is never computed" in message and "eval.metrics" in message


def test_a_success_criterion_on_a_metric_that_is_never_computed(tmp_path: Path) -> None:
    message = _errors(tmp_path, HEAD + '[success]\nexact_match = ">= 0.9"\n')
    assert "success.exact_match" in message and "never computed" in message


def test_a_success_condition_that_is_not_a_comparison(tmp_path: Path) -> None:
    text = HEAD + '[eval]\nmetrics = ["exact_match"]\n[success]\nexact_match = "high"\n'
    assert "'high' is not a condition" in _errors(tmp_path, text)


def test_micro_batch_must_divide_the_effective_batch(tmp_path: Path) -> None:
    text = HEAD + "[train]\nbatch_size = 16\nmicro_batch_size = 5\n"
    assert "x.toml:8: train.micro_batch_size 5 must divide train.batch_size 16" in _errors(
        tmp_path, text)  # line 8: the key's own line, not [train]'s


def test_method_keys_are_sampled_only_in_trials_of_their_kind(tmp_path: Path) -> None:
    import optuna

    from tunelab.engine.run.study import sample

    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(HEAD + '[search.space]\n"method.kind" = ["full", "lora", "prefix"]\n'
                    '"method.r" = [4, 8]\n"method.num_virtual_tokens" = [8, 16]\n')
    exp = load_spec(path).experiment
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = sample(trial, exp)
        kind = params["method.kind"]
        seen.add(kind)
        assert ("method.r" in params) == (kind == "lora")
        assert ("method.num_virtual_tokens" in params) == (kind == "prefix")
        study.tell(trial, 1.0)
    assert seen == {"full", "lora", "prefix"}


def test_smoke_is_a_small_separate_study_of_the_same_pipeline() -> None:
    spec = load_spec(EXPERIMENTS / "quickstart.toml")
    smoke = spec.smoke().experiment
    assert smoke.name == "quickstart-smoke"
    assert smoke.search.trials == 2 and smoke.train.epochs == 1
    assert smoke.model.scratch is not None and smoke.model.scratch.hidden_size < 128
    assert smoke.search.space == spec.experiment.search.space
    hub = load_spec(EXPERIMENTS / "dates-lora.toml").smoke().experiment
    assert hub.model.base is None and hub.model.scratch is not None
    assert hub.model.scratch.like == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_the_budget_may_change_but_the_search_may_not() -> None:
    spec = load_spec(EXPERIMENTS / "quickstart.toml")
    more = load_spec(EXPERIMENTS / "quickstart.toml", ["search.trials=20"])
    other = load_spec(EXPERIMENTS / "quickstart.toml", ["train.epochs=5"])
    assert spec.spec_hash() == more.spec_hash()
    assert spec.spec_hash() != other.spec_hash()


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_check_prints_the_plan_as_a_person_reads_it(path: Path, tmp_path: Path) -> None:
    # in an empty folder: a ./tunelab.duckdb left by the quickstart (the README's first command,
    # run in the clone) holds the dpo example's parent but not its review, and check says so
    done = tunelab("check", str(path), "--explain", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    exp = load_spec(path).experiment
    assert "✓ valid" in done.stdout
    assert f"{exp.search.trials} trials" in done.stdout
    for key in exp.search.space:
        assert key in done.stdout
    assert "default" in done.stdout  # --explain marks what the file left to the defaults


def test_schema_describes_every_section() -> None:
    import json

    done = tunelab("schema")
    schema = json.loads(done.stdout)
    assert {"model", "data", "method", "train", "search", "eval", "success",
            "resources"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
