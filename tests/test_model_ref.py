"""A model reference is parsed in one place (engine.refs): every form, the store's spelling kept,
and one error that names the forms for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.engine.errors import TrainError
from tunelab.engine.refs import ModelRef
from tunelab.engine.review.arena import refs_of


@pytest.mark.parametrize(("text", "parsed", "written"), [
    ("base", ModelRef("base"), "base"),
    ("best", ModelRef("best"), "best"),
    ("trial:3", ModelRef("trial", 3), "trial:3"),
    (" 7 ", ModelRef("trial", 7), "trial:7"),
    ("sft:2", ModelRef("trial", 2, experiment="sft"), "sft:2"),
    ("sft-v2:best", ModelRef("best", experiment="sft-v2"), "sft-v2:best"),
])
def test_each_form_parses_and_writes_the_stores_spelling(text: str, parsed: ModelRef,
                                                          written: str) -> None:
    assert ModelRef.parse(text) == parsed
    assert str(parsed) == written
    assert ModelRef.parse(written) == parsed  # what the store keeps reads back the same


@pytest.mark.parametrize("text", ["", "trial:", "trial:x", "trial:../../x", "/etc", "0/../../1",
                                  "best:", "a b:3", "sft:-1", "Qwen/Qwen3-0.6B", "Sft:3"])
def test_anything_else_is_one_clear_error_that_names_the_forms(text: str) -> None:
    with pytest.raises(TrainError) as raised:
        ModelRef.parse(text)
    said = str(raised.value)
    assert repr(text.strip()) in said
    assert "base, best, trial:N (or N), EXPERIMENT:N or EXPERIMENT:best" in said
    assert raised.value.title == "unknown model"


def test_where_a_plain_model_is_allowed_a_folder_or_hub_id_is_kept_as_given() -> None:
    assert ModelRef.parse("Qwen/Qwen3-0.6B", plain=True) == ModelRef("plain", plain="Qwen/Qwen3-0.6B")
    assert str(ModelRef.parse("./judges/small", plain=True)) == "./judges/small"
    assert ModelRef.parse("trial:2", plain=True) == ModelRef.trial(2)  # a ref is still a ref
    with pytest.raises(TrainError, match="a folder or a hub id"):
        ModelRef.parse(" ", plain=True)


def test_a_ref_of_another_experiment_is_read_in_that_experiment() -> None:
    assert ModelRef.parse("sft:4").of("dpo") == ("sft", ModelRef.trial(4))
    assert ModelRef.parse("trial:4").of("dpo") == ("dpo", ModelRef.trial(4))
    assert ModelRef.parse("sft:best").of("dpo") == ("sft", ModelRef("best"))


def test_the_arena_reads_its_pair_with_the_same_parser() -> None:
    assert refs_of("best, 3") == ("best", "trial:3")
    with pytest.raises(TrainError, match="'trial:x' is not a model"):
        refs_of("best,trial:x")


def test_a_reward_model_is_a_trial_of_an_experiment_by_the_same_parser(tmp_path: Path) -> None:
    from tunelab.engine.review.predicted import reward_folder

    for ref in ("trial:3", "3", "best", "rm:x"):  # none names an experiment's trial
        with pytest.raises(TrainError, match="a reward model is named EXPERIMENT:best or"):
            reward_folder(tmp_path / "none.duckdb", ref)
    with pytest.raises(TrainError, match="rm is not a reward stage"):
        reward_folder(tmp_path / "none.duckdb", "rm:2")  # a well-formed name, looked up
