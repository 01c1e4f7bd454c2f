from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import load_spec, with_overrides

from conftest import EXPERIMENTS, tunelab_command


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_experiment_loads_and_opens_with_its_command(path: Path) -> None:
    spec = load_spec(path)
    assert spec.experiment.name
    assert path.read_text().splitlines()[0] == f"# Run: tunelab run experiments/{path.name}"


def test_quickstart_searches_learning_rate_and_method() -> None:
    exp = load_spec(EXPERIMENTS / "quickstart.toml").experiment
    assert set(exp.search.space) == {"train.learning_rate", "method.kind"}
    assert exp.search.space["method.kind"] == ["full", "lora"]
    assert exp.search.trials >= 6
    assert exp.search.sampler == "tpe" and exp.search.pruner_spec.kind == "median"
    assert exp.search.objective == "eval_loss"


def _errors(tmp_path: Path, text: str) -> str:
    (tmp_path / "d.jsonl").write_text("{}\n")
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return str(caught.value)


HEAD = 'name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'


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
    done = subprocess.run([*tunelab_command(), "run", str(path), "--store",
                           str(tmp_path / "s.duckdb")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "did you mean 'train'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
