"""The KTO recipe: the parent trial tuned from single answers marked desirable or undesirable
(every vote but a tie or a skip gives two: engine.data.kto_examples), with TRL's KTOTrainer.

TRL 1.16 keeps KTOTrainer in its stable API (`from trl import KTOTrainer`; the old
`trl.experimental.kto` path is a deprecated alias there). Like DPO, the reference is the
parent itself (TRL keeps a frozen copy of an adapter parent's adapter), and the class weights
(desirable_weight, undesirable_weight) are set from the counts of the training examples so
both classes weigh the same. The answers are tokenized as supervised training renders a
conversation; the KL term is estimated from each batch's answers shifted by one prompt, as TRL
does, so the examples are shuffled once (by train.seed) and then read in order.

The trial is measured as a dpo trial is (engine.train.policy): the KTO loss on the held-out
examples picks the checkpoint, and the preference metrics of the decisive votes among the
held-out (and training) prompts say whether the voted answer became the likelier one.
"""

from __future__ import annotations

import random
from typing import Any

from tunelab.engine.data import render as chat_render
from tunelab.engine.data.kto_examples import class_weights
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.errors import TrainError
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import policy, trial
from tunelab.engine.train.builders import trainer_arguments
from tunelab.engine.train.pairs import answers_ids

# the prepared files of a kto stage's examples (its pairs are "train" and "heldout")
EXAMPLES = ("examples", "heldout_examples")


def tokenize_examples(rows: list[dict[str, Any]], tokenizer: Any, template: str,
                      max_length: int) -> list[dict[str, Any]]:
    """prompt_ids / completion_ids / label per example, rendered as in supervised training (the
    answer cut where prompt and answer reach max_length, as for pairs); an example whose prompt
    alone fills max_length, or whose answer is empty, is left out."""
    found = answers_ids([(row, row["completion"]) for row in rows], tokenizer, template)
    out = []
    for row, (prompt, answer) in zip(rows, found, strict=True):
        if len(prompt) >= max_length or not answer:
            continue
        out.append({"prompt_ids": prompt, "completion_ids": answer[:max_length - len(prompt)],
                    "label": bool(row["label"])})
    return out


def example_sets(job: TrialJob, exp: Experiment, tokenizer: Any) -> dict[str, list[dict]]:
    """The training examples (shuffled once, by train.seed) and the held-out ones, tokenized
    in the template of the parent's data."""
    rows = read_rows(job.data["validation"]) if "validation" in job.data else []
    name = rows[0].get("template", exp.dataset.template) if rows else exp.dataset.template
    template = chat_render.template_text(name, tokenizer)
    found = {split: tokenize_examples(read_rows(job.data[split]), tokenizer, template,
                                      exp.train.max_length) for split in EXAMPLES}
    random.Random(exp.train.seed).shuffle(found["examples"])
    return found


def build_kto_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                      new_adapter: Any, callbacks: list[Any], pairs: dict[str, list[dict]],
                      micro: int, reference: Any = None) -> Any:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    if micro < 2:  # TRL estimates KL from the other answers of a micro-batch
        raise TrainError("a kto trial needs a micro-batch of at least 2 (KL is estimated from "
                         "the other answers of each micro-batch): set train.micro_batch_size "
                         "= 2 or more, or a larger train.batch_size")
    examples = example_sets(job, exp, tokenizer)
    train = examples["examples"]
    good = sum(e["label"] for e in train)
    desirable, undesirable = class_weights(good, len(train) - good)

    class PreTokenized(KTOTrainer):
        """The answers come tokenized as in supervised training; only the KL completions are
        added, as TRL adds them: each micro-batch's answers shifted by one prompt."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any,
                             dataset_name: str) -> Any:
            if not self.calculate_KL:
                return dataset

            def shifted(batch: dict[str, list]) -> dict[str, list]:
                ids = batch["completion_ids"]
                return {**batch, "KL_completion_ids": [ids[-1], *ids[:-1]]}

            return dataset.map(shifted, batched=True, batch_size=args.per_device_train_batch_size)

    # the KTO loss on the held-out examples picks the checkpoint (metric_for_best_model)
    args = KTOConfig(**trainer_arguments(job, exp, len(train), micro), beta=exp.method.beta,
                     desirable_weight=desirable, undesirable_weight=undesirable)
    return PreTokenized(model=model, args=args, train_dataset=Dataset.from_list(train),
                        eval_dataset=Dataset.from_list(examples["heldout_examples"]),
                        processing_class=tokenizer, peft_config=new_adapter, callbacks=callbacks)


def train_once(attempt: trial.Attempt) -> TrialResult:
    return policy.train_policy(attempt, build_kto_trainer)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def run_baseline(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return policy.policy_baseline(job, progress, build_kto_trainer)
