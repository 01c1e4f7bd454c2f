"""The TRL trainers the preference stages are built on, where tunelab reads them: a TRL release
that moves or drops one fails here, not in the middle of a sweep (pyproject.toml pins the range
tested)."""

from __future__ import annotations

import dataclasses
import warnings


def test_kto_and_the_reward_trainer_are_in_trls_stable_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # not a deprecated alias
        from trl import KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

    fields = {f.name for f in dataclasses.fields(KTOConfig)}
    assert {"desirable_weight", "undesirable_weight", "beta"} <= fields
    assert KTOTrainer.__module__ == "trl.trainer.kto_trainer"
    assert RewardTrainer.__module__ == "trl.trainer.reward_trainer" and RewardConfig


def test_orpo_and_simpo_are_in_trls_experimental_module(tmp_path) -> None:  # noqa: ANN001
    from tunelab.engine.train.orpo import experimental

    orpo_config, orpo_trainer, cpo_config, cpo_trainer = experimental()
    assert orpo_trainer.__module__.startswith("trl.experimental.orpo")
    assert cpo_trainer.__module__.startswith("trl.experimental.cpo")
    simpo = cpo_config(output_dir=str(tmp_path), loss_type="simpo", cpo_alpha=0.0,
                       simpo_gamma=0.5, report_to=[], use_cpu=True, bf16=False)
    assert (simpo.loss_type, simpo.cpo_alpha) == ("simpo", 0.0)
    assert "beta" in {f.name for f in dataclasses.fields(orpo_config)}
    # the pairs come tokenized: tunelab replaces this hook of both trainers
    assert callable(orpo_trainer.tokenize_row) and callable(cpo_trainer.tokenize_row)
