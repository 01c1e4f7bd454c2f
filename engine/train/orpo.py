"""The ORPO and SimPO recipes: the parent trial tuned from the review's pairs without a
reference model. ORPO (`stage = "orpo"`) adds an odds-ratio penalty, weighed by method.beta, to
the supervised loss on the voted answer; SimPO (`stage = "simpo"`) compares the two answers'
mean log-probabilities per token, scaled by method.beta, against a margin method.simpo_gamma.

TRL 1.16 keeps both only in its experimental module, which carries no promise of stability:
ORPO is `trl.experimental.orpo.ORPOTrainer`, and SimPO is `trl.experimental.cpo.CPOTrainer`
with loss_type "simpo" and cpo_alpha 0 (SimPO is CPO without its behaviour-cloning term).
They moved there in TRL 0.26; pyproject.toml pins the range tunelab is tested with.

The pairs come tokenized as supervised training renders them (engine.train.pairs); the trial is
set up, trained, measured and saved as the other policy recipes' (engine.train.policy).
"""

from __future__ import annotations

import os
from typing import Any

from tunelab.engine.errors import TrainError
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import policy, trial
from tunelab.engine.train.builders import trainer_arguments


def experimental() -> tuple[Any, Any, Any, Any]:
    """(ORPOConfig, ORPOTrainer, CPOConfig, CPOTrainer) from TRL's experimental module, whose
    import warning is said once here, in the docstring, rather than in every trial's log."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        from trl.experimental.cpo import CPOConfig, CPOTrainer
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError as error:
        import trl

        raise TrainError(f"TRL {trl.__version__} has no {error.name}: ORPO and SimPO need the "
                         "trl.experimental trainers of TRL 1.16 (pip install 'trl>=1.16,<2')",
                         "no ORPO or SimPO in this TRL") from None
    return ORPOConfig, ORPOTrainer, CPOConfig, CPOTrainer


def _features(feature: dict[str, list[int]], max_length: int) -> dict[str, list[int]]:
    """A tokenized pair as ORPO's and CPO's collator reads it: prompt, then each whole answer
    sequence with its labels (-100 on the prompt), cut at max_length."""
    prompt = feature["prompt_ids"]
    found = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        answer = feature[f"{side}_ids"]
        ids = (prompt + answer)[:max_length]
        found[f"{side}_input_ids"] = ids
        found[f"{side}_attention_mask"] = [1] * len(ids)
        found[f"{side}_labels"] = ([-100] * len(prompt) + answer)[:max_length]
    return found


def build_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any, new_adapter: Any,
                  callbacks: list[Any], pairs: dict[str, list[dict]], micro: int,
                  reference: Any = None) -> Any:
    from datasets import Dataset

    orpo_config, orpo_trainer, cpo_config, cpo_trainer = experimental()
    simpo = exp.method.stage == "simpo"
    base = cpo_trainer if simpo else orpo_trainer

    class PreTokenized(base):  # type: ignore[misc,valid-type]
        """The pairs come tokenized as in supervised training; TRL's own tokenization would
        render them again and could add special tokens twice."""

        def tokenize_row(self, feature: dict, model: Any = None) -> dict:
            return _features(feature, self.max_length)

    arguments = trainer_arguments(job, exp, len(pairs["train"]), micro)
    arguments["remove_unused_columns"] = False  # the pair collator reads its own columns
    if simpo:
        args = cpo_config(**arguments, loss_type="simpo", cpo_alpha=0.0, beta=exp.method.beta,
                          simpo_gamma=exp.method.simpo_gamma)
    else:
        args = orpo_config(**arguments, beta=exp.method.beta)
    # the stage's loss on the held-out pairs picks the checkpoint (metric_for_best_model)
    return PreTokenized(model=model, args=args, train_dataset=Dataset.from_list(pairs["train"]),
                        eval_dataset=Dataset.from_list(pairs["heldout"]),
                        processing_class=tokenizer, peft_config=new_adapter, callbacks=callbacks)


def train_once(attempt: trial.Attempt) -> TrialResult:
    return policy.train_policy(attempt, build_trainer)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def run_baseline(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return policy.policy_baseline(job, progress, build_trainer)
