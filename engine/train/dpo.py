"""The preference-tuning (DPO) recipe: one trial, top to bottom: setup, train, evaluate, save.

It starts from a trial of a supervised experiment (the parent: see preferences.py) and learns
from preference pairs with TRL's DPOTrainer. The reference model is the parent itself: for an
adapter parent, TRL keeps a frozen copy of the adapter ("ref") beside the one being trained,
so the saved result is again an adapter on the same base, which chat, review and export load
like any trial's; for a full-weights parent, the reference is the parent's folder.

The pairs are tokenized as supervised training renders a conversation (engine.train.pairs).
Reward accuracy and margin, and the plain preference accuracy (does the model give the chosen
answer more probability than the rejected one?), are computed on the held-out pairs and on the
training pairs, against the parent's numbers measured before the first step. The parent's
validation and test splits give the same losses, generation metrics and samples as a supervised
trial: did preference tuning cost accuracy? What every recipe shares is the harness's
(engine.train.trial); what the recipes that tune their parent share (setup, train, evaluate,
save around the trainer, and the baseline) is engine.train.policy's. A robust loss may smooth
its labels by the raters' own consistency (method.label_smoothing = "from-consistency").
"""

from __future__ import annotations

from typing import Any

from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import policy, trial
from tunelab.engine.train.builders import trainer_arguments
from tunelab.engine.train.policy import label_smoothing, load_policy
from tunelab.engine.train.reference import Logps

__all__ = ["build_dpo_trainer", "load_policy", "run_baseline", "run_trial", "train_once"]


def train_once(attempt: trial.Attempt) -> TrialResult:
    """One attempt at a DPO trial (the harness tries again at half the micro-batch); the
    reference's log-probabilities are measured once per sweep, by the baseline."""
    return policy.train_policy(attempt, build_dpo_trainer)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def run_baseline(job: TrialJob, progress: trial.Progress) -> TrialResult:
    """The parent, measured as every trial will be: how often it already prefers the chosen
    answer, the DPO loss where every trial starts (none when beta or the loss is searched),
    and its losses, metrics and samples on its own splits."""
    return policy.policy_baseline(job, progress, build_dpo_trainer)


def build_dpo_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                      new_adapter: Any, callbacks: list[Any], pairs: dict[str, list[dict]],
                      micro: int, reference: dict[str, Logps] | None = None) -> Any:
    """TRL's DPOTrainer on the tokenized pairs; with the reference's log-probabilities of them
    (reference.py), the trainer takes those instead of running the reference at every step."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class PreTokenized(DPOTrainer):
        """The pairs come tokenized as in supervised training; TRL's own tokenization would
        render them again and could add special tokens twice."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            assert reference is not None
            chosen, rejected = reference["train" if name == "train" else "heldout"]
            return dataset.add_column("ref_chosen_logps", chosen).add_column(
                "ref_rejected_logps", rejected)

    # the DPO loss on the held-out pairs picks the checkpoint (metric_for_best_model eval_loss)
    # label smoothing: robust DPO's share of flipped votes (a number, or measured from the
    # raters' consistency by the runner: engine.review.rater_noise)
    args = DPOConfig(**trainer_arguments(job, exp, len(pairs["train"]), micro), beta=exp.method.beta,
                     loss_type=[exp.method.loss_type], precompute_ref_log_probs=reference is not None,
                     label_smoothing=label_smoothing(job, exp))
    return PreTokenized(model=model, args=args, train_dataset=Dataset.from_list(pairs["train"]),
                        eval_dataset=Dataset.from_list(pairs["heldout"]), processing_class=tokenizer,
                        peft_config=new_adapter, callbacks=callbacks)
