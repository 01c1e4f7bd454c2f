"""What `tunelab check` accepts, `tunelab run` runs: each configuration that once passed the
check and then failed in the run (in Optuna, in a trial, in the runner's own checks) is refused
by the check, in one message that names the key and where it was set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import load_spec

from conftest import EXPERIMENTS, tunelab

QUICKSTART = EXPERIMENTS / "quickstart.toml"
LR = 'search.space."train.learning_rate"'


def _refusal(overrides: list[str], path: Path = QUICKSTART) -> list[str]:
    """The lines of the check's refusal (one per mistake)."""
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return caught.value.message.splitlines()


@pytest.mark.parametrize(("override", "said"), [
    # Optuna refuses a step on a log range (a ValueError traceback in the run)
    (f"{LR}={{low=1e-3, high=1e-2, step=1e-3, log=true}}", "a log range takes no step"),
    # trials failed with warmup_steps = -23; 0 was a ZeroDivisionError in check itself
    ("train.micro_batch_size=-2", 'train.micro_batch_size must be "auto" or a number of examples >= 1'),
    ("train.micro_batch_size=0", 'train.micro_batch_size must be "auto" or a number of examples >= 1'),
    # "Seed must be between 0 and 2**32-1" in every trial, without the key
    ("train.seed=-1", "train.seed: Input should be greater than or equal to 0"),
    ("train.seed=4294967296", "train.seed: Input should be less than or equal to 4294967295"),
    ("search.seed=1e23", "search.seed: 1e+23 is too large a number"),
    ("search.seed=-5", "search.seed: Input should be greater than or equal to 0"),
    # nan and inf passed any bound but one, and read "should be less than 1 (found NaN)"
    ("train.learning_rate=nan", "train.learning_rate: nan is not a number"),
    ("train.learning_rate=inf", "train.learning_rate: inf is not a finite number"),
    ("train.weight_decay=inf", "train.weight_decay: inf is not a finite number"),
    (f"{LR}={{low=nan, high=1e-3}}", "nan is not a number"),
    # a range over a true/false key sampled 0.37 for it; a list as a choice Optuna refuses
    ('search.space."train.packing"={low=0, high=1}', "train.packing is not a number"),
    ('search.space."method.target_modules"=[["q_proj"], "all-linear"]',
     "a choice must be a number, a string or true/false"),
    # a micro-batch a trial can take that does not divide the batch
    ('search.space."train.micro_batch_size"=[2, 3]', "the value 3 is not valid here"),
    ('search.space."train.micro_batch_size"={low=1, high=8}', "the values 3, 5, 6 and 7 are not valid here"),
    # heads that do not split the hidden size in even parts fail when the model is built
    ("model.scratch.hidden_size=12", "model.scratch.hidden_size 12 must be an even number"),
])
def test_a_configuration_the_run_refused_is_refused_by_check(override: str, said: str) -> None:
    lines = _refusal([override])
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"--set {override}: ") and said in lines[0], lines


def test_a_trial_whose_values_break_a_rule_together_is_named_by_its_keys(tmp_path: Path) -> None:
    """Each value alone is valid; a trial taking both is not (micro-batch 8 of a batch of 4)."""
    text = QUICKSTART.read_text().replace(
        '"method.kind" = ["lora", "full"]',
        '"method.kind" = ["lora", "full"]\n"train.batch_size" = [4, 16]\n'
        '"train.micro_batch_size" = [4, 8]')
    (tmp_path / "data").symlink_to(EXPERIMENTS / "data")
    (tmp_path / "q.toml").write_text(text)
    lines = _refusal([], tmp_path / "q.toml")
    line = text.splitlines().index('"train.batch_size" = [4, 16]') + 1
    assert lines == [f"{tmp_path / 'q.toml'}:{line}: search.space: a trial can take "
                     "train.batch_size = 4 and train.micro_batch_size = 8, which is not valid: "
                     "train.micro_batch_size 8 must divide train.batch_size 4"]


@pytest.mark.parametrize(("overrides", "said"), [
    (["eval.samples=0"], "--set eval.samples=0: eval.samples: search.objective = \"preference\" "
                         "compares the trials' samples"),
    (["eval.baseline=false"], "--set eval.baseline=false: eval.baseline: search.objective = "
                              "\"preference\" compares the first trial with the base model"),
    (["search.direction=\"minimize\""], "search.direction: a preference rating is maximised"),
])
def test_a_preference_sweep_that_cannot_vote_is_refused_by_check(overrides: list[str],
                                                                  said: str) -> None:
    lines = _refusal(["search.objective=\"preference\"", "search.pruner=\"none\"", *overrides],
                     EXPERIMENTS / "quickstart-taste.toml")
    assert len(lines) == 1 and said in lines[0], lines


def test_check_shows_no_pruner_for_a_preference_sweep() -> None:
    """The run turns the pruner off for votes; check said "percentile pruner" (the default)."""
    done = tunelab("check", str(EXPERIMENTS / "quickstart-taste.toml"))
    assert done.returncode == 0, done.stderr
    assert "no pruner (a preference sweep is not pruned on the loss)" in done.stdout
    assert "percentile" not in done.stdout


def test_a_set_mistake_across_keys_is_blamed_on_the_set_not_a_file_line() -> None:
    """`micro_batch_size=7` and `eval_every=0` were blamed on quickstart.toml:25 ([train])."""
    assert _refusal(["train.micro_batch_size=7"]) == [
        "--set train.micro_batch_size=7: train.micro_batch_size 7 must divide train.batch_size 16"]
    assert _refusal(["train.eval_every=0"]) == [
        "--set train.eval_every=0: train.eval_every must be \"epoch\" or a number of steps >= 1 "
        "(found 0)"]


def test_an_unquoted_searched_key_is_one_mistake_that_says_to_quote_it() -> None:
    """Three messages before, one of them an empty `(valid: )`."""
    lines = _refusal(["search.space.train.learning_rate={low=1e-3, high=1e-2}"])
    assert len(lines) == 1, lines
    assert "a searched key is quoted" in lines[0] and "(valid: )" not in lines[0]
    assert lines[0].startswith("--set search.space.train.learning_rate=")


def _space(tmp_path: Path, space: str) -> list[str]:
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (tmp_path / "x.toml").write_text('name = "x"\n[model]\nscratch = {}\n[data]\ntrain = '
                                     '"d.jsonl"\n[search.space]\n' + space)
    return _refusal([], tmp_path / "x.toml")


def test_a_condition_on_a_continuous_range_and_an_empty_condition_are_refused(tmp_path: Path
                                                                              ) -> None:
    lines = _space(tmp_path, '"train.learning_rate" = { low = 1e-4, high = 3e-3, log = true }\n'
                             '"train.epochs" = { values = [1, 2], when = { "train.learning_rate" '
                             '= [1e-3] } }\n')
    assert len(lines) == 1 and "train.learning_rate is searched over a continuous range" in lines[0]
    lines = _space(tmp_path, '"train.epochs" = { values = [1, 2], when = {} }\n')
    assert len(lines) == 1 and "when = {} names no key" in lines[0], lines


def test_a_condition_on_a_value_never_drawn_from_a_stepped_range_is_refused(tmp_path: Path) -> None:
    lines = _space(tmp_path, '"method.kind" = ["lora", "full"]\n"train.epochs" = { low = 1, high = '
                             '5, step = 2 }\n"method.r" = { values = [4, 8], when = { '
                             '"train.epochs" = [2] } }\n')
    assert len(lines) == 1 and "train.epochs never takes {2}" in lines[0], lines


def test_a_typo_in_a_condition_is_one_message(tmp_path: Path) -> None:
    lines = _space(tmp_path, '"method.kind" = ["lora", "full"]\n"method.r" = { values = [4, 8], '
                             'when = { "method.kind" = ["lroa"] } }\n')
    assert lines == [f"{tmp_path / 'x.toml'}:8: search.space.method.r.when: method.kind never "
                     "takes {lroa} (it is searched over {lora, full})"]


def test_a_misspelled_key_inside_a_searched_key_suggests_the_right_one(tmp_path: Path) -> None:
    lines = _space(tmp_path, '"method.r" = { valeus = [4, 8] }\n')
    assert len(lines) == 1 and "'valeus' (did you mean 'values'?)" in lines[0], lines
    lines = _space(tmp_path, '"method.r" = { values = [4, 8], wehn = { "method.kind" = "lora" } }\n')
    assert lines == [f"{tmp_path / 'x.toml'}:7: unknown key 'search.space.method.r.wehn'; did you "
                     "mean 'search.space.method.r.when'?"]


def test_check_answers_micro_batch_zero_without_a_traceback() -> None:
    done = tunelab("check", str(QUICKSTART), "--set", "train.micro_batch_size=0")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "train.micro_batch_size must be" in done.stderr


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_are_refused(workers: str) -> None:
    """`--workers 0` and `--workers -3` ran one worker without a word."""
    done = tunelab("run", str(QUICKSTART), "--workers", workers, "--store",
                   "/nonexistent/never.duckdb")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--workers" in done.stderr and "greater than or equal to 1" in done.stderr


def test_more_devices_per_trial_than_the_machine_has_is_refused_by_check() -> None:
    """`run` refused it (SpecError, "not enough devices"); `check` said ✓ valid."""
    done = tunelab("check", str(QUICKSTART), "--set", "resources.gpus_per_trial=2", "--set",
                   "resources.devices=[0]")
    assert done.returncode == 2 and "✓ valid" not in done.stdout, done.stdout
    assert done.stderr.startswith("not enough devices\nresources.gpus_per_trial is 2"), done.stderr


def test_qlora_on_a_cpu_with_layers_narrower_than_its_kernels_blocks_is_refused(
        tmp_path: Path) -> None:
    """Found by the property test (tests/test_check_then_train.py): a scratch model of hidden
    size 32 passed check, and every QLoRA trial failed at its first evaluation on a CPU
    (bitsandbytes: "shape '[32, 0]' is invalid for input of size 16")."""
    from tunelab.engine.run.devices import fits_this_machine, visible_devices

    if visible_devices():
        pytest.skip("the rule is a CPU machine's")
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (tmp_path / "x.toml").write_text('name = "x"\n[model]\nscratch = { hidden_size = 32, heads = 2 '
                                     '}\n[data]\ntrain = "d.jsonl"\n[method]\nkind = "qlora"\n')
    spec = load_spec(tmp_path / "x.toml")
    with pytest.raises(SpecError, match="hidden_size 32 is not a multiple of 64: QLoRA on a CPU"):
        fits_this_machine(spec.experiment)
    fits_this_machine(load_spec(tmp_path / "x.toml", ["model.scratch.hidden_size=128"]).experiment)
    lora = load_spec(tmp_path / "x.toml", ['method.kind="lora"']).experiment
    fits_this_machine(lora)  # LoRA keeps the base in full precision: any width
