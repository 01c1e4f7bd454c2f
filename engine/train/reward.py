"""The reward-model recipe: a sequence-classification model that scores an answer to a prompt,
trained on the review's pairs with TRL's RewardTrainer (the pairwise Bradley–Terry loss: the
voted answer should score higher). One trial, top to bottom: setup, train, evaluate, save.

It starts from the parent trial: its base model with the parent's adapter merged in (or its
full weights), a scoring head on top (random, seeded by train.seed), and either every weight
trained (kind full) or a new LoRA adapter with the head (kind lora). The answers are tokenized
as supervised training renders a conversation (engine.train.pairs), so the model scores them in
the format the parent learned. The held-out pairs' accuracy (the voted answer scores higher)
and margin land in evaluations as preferences/reward_accuracy and preferences/reward_margin.

`RewardScorer.load(trial_folder)` loads a trained one back to score new answers: the review
shows its predicted preference after a vote, and a preference sweep shows first the trial it
expects to win (engine.review.predicted).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.engine.data import render as chat_render
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train import trial
from tunelab.engine.train.builders import peft_config, trainer_arguments
from tunelab.engine.train.callbacks import Recorder, trial_callbacks
from tunelab.engine.train.evaluate import evaluation_events
from tunelab.engine.train.pairs import answers_ids, named, pair_sets
from tunelab.engine.train.policy import MEASURED, pad_id


def load_scoring_model(base: str, parent_adapter: str | None, exp: Experiment,
                       trained: str | None = None) -> Any:
    """A sequence-classification model with one output (the reward): the base with the
    parent's adapter merged in, and a trained reward adapter or weights when given."""
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(exp.train.seed)  # the new head's initial weights
    _, dtype = models.device_and_dtype(exp)
    full = trained if trained and not (Path(trained) / "adapter_config.json").exists() else None
    model = AutoModelForSequenceClassification.from_pretrained(
        full or base, num_labels=1, dtype=dtype, use_safetensors=True,
        trust_remote_code=exp.base_model.trust_remote_code)
    if full is None and parent_adapter:
        from peft import PeftConfig, PeftModel

        config = PeftConfig.from_pretrained(parent_adapter)
        config.task_type = None  # a causal LM's adapter: its layers, on a scoring model
        model = PeftModel.from_pretrained(model, parent_adapter, config=config).merge_and_unload()
    if trained and full is None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, trained).merge_and_unload()
    return model


def sequences(pairs: list[dict[str, list[int]]]) -> list[dict[str, list[int]]]:
    """The pairs as RewardTrainer reads them: each whole sequence, prompt and answer."""
    return [{"chosen_ids": p["prompt_ids"] + p["chosen_ids"],
             "rejected_ids": p["prompt_ids"] + p["rejected_ids"]} for p in pairs]


def rewards(model: Any, seqs: list[list[int]], pad: int, batch_size: int = 8) -> list[float]:
    """The model's reward for each whole sequence (right-padded: the head reads the last real
    token, found by the pad id in the model's config)."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    out: list[float] = []
    for start in range(0, len(seqs), batch_size):
        batch = seqs[start:start + batch_size]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out.extend(logits[:, 0].float().cpu().tolist())  # a GPU sync point, once a batch
    return out


def reward_values(model: Any, pairs: list[dict[str, list[int]]], pad: int,
                  batch_size: int = 8) -> dict[str, float]:
    """reward_accuracy (the voted answer scores higher) and reward_margin (by how much)."""
    seqs = sequences(pairs)
    chosen = rewards(model, [s["chosen_ids"] for s in seqs], pad, batch_size)
    rejected = rewards(model, [s["rejected_ids"] for s in seqs], pad, batch_size)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    # the pairwise loss, −log σ(margin), as RewardTrainer computes it
    loss = sum(math.log1p(math.exp(-m)) if m > -30 else -m for m in margins) / len(margins)
    return {"pairs": float(len(margins)),
            "reward_accuracy": sum(m > 0 for m in margins) / len(margins),
            "reward_margin": sum(margins) / len(margins), "loss": loss}


def _all_values(model: Any, pairs: dict[str, list[dict]], pad: int, micro: int) -> dict[str, float]:
    """The reward metrics of the held-out and the training pairs, with their pairwise loss
    (the held-out one is preferences/loss: what picks a trial's checkpoint)."""
    values: dict[str, float] = {}
    for split, name in MEASURED:
        if pairs.get(split):
            values.update(named(name, reward_values(model, pairs[split], pad, micro)))
    return values


def build_reward_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                         callbacks: list[Any], pairs: dict[str, list[dict]], micro: int) -> Any:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    adapter = peft_config(exp)
    if adapter is not None:  # a new LoRA adapter; the head ("score") is trained whole
        adapter.task_type = "SEQ_CLS"
    train = sequences(pairs["train"])
    # the pairwise loss on the held-out pairs picks the checkpoint (metric_for_best_model)
    args = RewardConfig(**trainer_arguments(job, exp, len(train), micro))
    return RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                         eval_dataset=Dataset.from_list(sequences(pairs["heldout"])),
                         processing_class=tokenizer, peft_config=adapter, callbacks=callbacks)


def train_once(attempt: trial.Attempt) -> TrialResult:
    """One attempt at a reward-model trial (the harness tries again at half the micro-batch)."""
    job, exp, micro = attempt.job, attempt.exp, attempt.micro

    # setup: the parent with a scoring head, the pairs
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_scoring_model(job.base, job.parent, exp)
    pairs = pair_sets(job, exp, tokenizer)
    recorder = Recorder(attempt)
    trainer = build_reward_trainer(job, exp, model, tokenizer,
                                   trial_callbacks(attempt, recorder, tokenizer, []), pairs, micro)

    # train
    trained = trial.train(attempt, trainer, recorder)
    if trained.ended is not None:
        return trained.ended

    # evaluate the best checkpoint (the trainer loaded it back) on the held-out and the
    # training pairs; a reward model writes nothing, so there are no samples
    attempt.progress("evaluate", {})
    values = _all_values(trainer.model, pairs, pad_id(tokenizer), micro)
    if trained.best is not None:  # the trainer's, on the checkpoint it picked (the same loss)
        values["preferences/loss"] = trained.best
    attempt.record(values, [])

    # save: the new adapter with the head (or the weights); the parent's adapter is read back
    # from the manifest when it is loaded (RewardScorer)
    trial.save_best(trainer, tokenizer, attempt.out)
    return attempt.complete(trained, values)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def run_baseline(job: TrialJob, progress: trial.Progress) -> TrialResult:
    """The parent with an untrained head (seeded as every trial's): the pairwise loss and
    accuracy that training starts from, about those of a coin."""
    exp = Experiment.model_validate(job.experiment)
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_scoring_model(job.base, job.parent, exp)
    model.config.pad_token_id = pad_id(tokenizer)
    progress("eval", {"what": "baseline"})
    values = _all_values(model, pair_sets(job, exp, tokenizer), pad_id(tokenizer), 8)
    with trial.trial_spool(job.store, "baseline") as spool:
        spool.write(evaluation_events(exp, "base", values))
    total, _ = models.count_parameters(model)
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={"params": total, "values": values})


@dataclass
class RewardScorer:
    """A trained reward model, loaded back from its trial's folder to score answers."""

    model: Any
    tokenizer: Any
    template: str
    max_length: int

    @classmethod
    def load(cls, folder: Path) -> RewardScorer:
        manifest = json.loads((folder / "manifest.json").read_text())
        exp = Experiment.model_validate(json.loads((folder / "experiment.json").read_text()))
        best = folder / "best"
        tokenizer = models.load_tokenizer(str(best), exp)
        adapter = (manifest.get("parent") or {}).get("adapter")
        model = load_scoring_model(manifest["base"], adapter, exp, trained=str(best))
        model.config.pad_token_id = pad_id(tokenizer)
        rows = read_rows(manifest["data"]["validation"]) if "validation" in manifest["data"] \
            and Path(manifest["data"]["validation"]).exists() else []
        name = rows[0].get("template", exp.dataset.template) if rows else exp.dataset.template
        return cls(model, tokenizer, chat_render.template_text(name, tokenizer),
                   exp.train.max_length)

    def scores(self, prompt: str, messages: list[dict] | None, answers: list[str]) -> list[float]:
        """The reward of each answer to one prompt (its turns, when it is a conversation)."""
        row = {"prompt": prompt, "messages": messages}
        seqs = [(p + a)[:self.max_length]
                for p, a in answers_ids([(row, a) for a in answers], self.tokenizer, self.template)]
        return rewards(self.model, seqs, pad_id(self.tokenizer))

    def prefers_a(self, prompt: str, messages: list[dict] | None, a: str, b: str) -> float:
        """P(A is better) by the Bradley–Terry model the rewards were trained under."""
        ra, rb = self.scores(prompt, messages, [a, b])
        return 1 / (1 + math.exp(rb - ra))
