"""One preference-tuning (DPO) trial, top to bottom: setup, train, evaluate, save.

It starts from a trial of a supervised experiment (the parent: see preferences.py) and learns
from preference pairs with TRL's DPOTrainer. The reference model is the parent itself: for an
adapter parent, TRL keeps a frozen copy of the adapter ("ref") beside the one being trained,
so the saved result is again an adapter on the same base, which chat, review and export load
like any trial's; for a full-weights parent, the reference is the parent's folder.

Pairs are tokenized here exactly as supervised training renders a conversation (chat_render),
so the answers are scored in the format the parent learned. Reward accuracy and margin, and the
plain preference accuracy (does the model give the chosen answer more probability than the
rejected one?), are computed on the held-out pairs and on the training pairs, against the
parent's numbers measured before the first step. The parent's validation and test splits give
the same losses, generation metrics and samples as a supervised trial: did preference tuning
cost accuracy?
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunelab.engine.data import render as chat_render
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.objectives import objective_value
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train.evaluate import (
    evaluate_model,
    evaluation_events,
    sample_events,
)
from tunelab.engine.train.sft import (
    _callbacks,
    _watching,
    build_trainer,
    load_for_method,
    peft_config,
    rank,
    save_best,
    train_to_the_end,
    trainer_arguments,
)
from tunelab.store import Spool


def load_policy(job: TrialJob, exp: Experiment, trainable: bool) -> tuple[Any, Any, Any]:
    """(model, tokenizer, a new adapter's config or None): the parent, ready to train on."""
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    if job.parent is None:  # full weights: train them, or a new adapter on them
        return model, tokenizer, peft_config(exp) if trainable else None
    from peft import PeftModel

    return PeftModel.from_pretrained(model, job.parent, is_trainable=trainable), tokenizer, None


def _template(exp: Experiment, tokenizer: Any, rows: list[dict[str, Any]]) -> str:
    name = rows[0].get("template", exp.dataset.template) if rows else exp.dataset.template
    return chat_render.template_text(name, tokenizer)


def tokenize_pairs(pairs: list[dict[str, Any]], tokenizer: Any, template: str,
                   max_length: int) -> list[dict[str, list[int]]]:
    """prompt_ids / chosen_ids / rejected_ids per pair, rendered as in supervised training; a
    pair whose prompt alone fills max_length is left out (it has nothing left to compare)."""
    out = []
    for pair in pairs:
        turns = pair.get("messages") or [{"role": "user", "content": pair["prompt"]}]
        # earlier answers are context (weight 0): only the last answer is compared
        turns = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in turns
                 if m["role"] != "assistant" or m.get("content")]
        ids = []
        for answer in (pair["chosen"], pair["rejected"]):
            row = {"messages": [*turns, {"role": "assistant", "content": answer}]}
            rendered = chat_render.render_tokens(row, tokenizer, template)
            first = rendered.trained.index(1) if 1 in rendered.trained else len(rendered.input_ids)
            ids.append((rendered.input_ids[:first], rendered.input_ids[first:]))
        (prompt, chosen), (other, rejected) = ids
        if prompt != other or len(prompt) >= max_length or not chosen or not rejected:
            continue
        out.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected})
    return out


def sequence_logps(model: Any, pairs: list[dict[str, list[int]]], pad_id: int,
                   batch_size: int = 8) -> tuple[list[float], list[float]]:
    """The summed log-probability of each chosen and each rejected answer after its prompt
    (what DPO compares; TRL sums the same tokens)."""
    import torch

    device = next(model.parameters()).device
    chosen: list[float] = []
    rejected: list[float] = []
    model.eval()
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        for key, out in (("chosen_ids", chosen), ("rejected_ids", rejected)):
            seqs = [p["prompt_ids"] + p[key] for p in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            answer = torch.zeros((len(seqs), width), dtype=torch.bool)
            for i, (s, p) in enumerate(zip(seqs, batch, strict=True)):
                ids[i, :len(s)] = torch.tensor(s)
                mask[i, :len(s)] = 1
                answer[i, len(p["prompt_ids"]):len(s)] = True
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logits = logits[:, -width:].float()  # prompt-learning adapters prepend positions
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            picked = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            summed = (picked * answer[:, 1:].to(device)).sum(dim=1)
            out.extend(summed.cpu().tolist())  # a GPU sync point, once a batch
    return chosen, rejected


def preference_metrics(policy: tuple[list[float], list[float]],
                       reference: tuple[list[float], list[float]] | None,
                       beta: float) -> dict[str, float]:
    """preference_accuracy: the chosen answer is the likelier one. With a reference:
    reward_accuracy (DPO's implicit reward ranks the pair right) and reward_margin."""
    chosen, rejected = policy
    n = len(chosen)
    values = {"pairs": float(n),
              "preference_accuracy": sum(c > r for c, r in zip(chosen, rejected, strict=True)) / n}
    if reference is not None:
        margins = [beta * ((c - rc) - (r - rr)) for c, r, rc, rr in
                   zip(chosen, rejected, *reference, strict=True)]
        values["reward_accuracy"] = sum(m > 0 for m in margins) / n
        values["reward_margin"] = sum(margins) / n
    return values


def _pair_sets(job: TrialJob, exp: Experiment, tokenizer: Any) -> dict[str, list[dict]]:
    template = _template(exp, tokenizer, read_rows(job.data["validation"])
                         if "validation" in job.data else [])
    return {split: tokenize_pairs(read_rows(job.data[split]), tokenizer, template,
                                  exp.train.max_length) for split in ("train", "heldout")}


def build_dpo_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                      new_adapter: Any, callbacks: list[Any], train: list[dict],
                      heldout: list[dict], micro: int) -> Any:
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import DPOConfig, DPOTrainer

    class PreTokenized(DPOTrainer):
        """The pairs come tokenized as in supervised training; TRL's own tokenization would
        render them again and could add special tokens twice."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

    # the DPO loss on the held-out pairs picks the checkpoint (metric_for_best_model eval_loss)
    args = DPOConfig(**trainer_arguments(job, exp, len(train), micro), beta=exp.method.beta,
                     loss_type=[exp.method.loss_type])
    if exp.train.early_stopping_patience:
        callbacks = [*callbacks, EarlyStoppingCallback(exp.train.early_stopping_patience)]
    return PreTokenized(model=model, args=args, train_dataset=Dataset.from_list(train),
                        eval_dataset=Dataset.from_list(heldout), processing_class=tokenizer,
                        peft_config=new_adapter, callbacks=callbacks)


def _supervised_values(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                       val_rows: list[dict], test_rows: list[dict]) -> tuple[dict, list]:
    """Losses, generation metrics and samples on the parent's splits, as for an SFT trial."""
    if not val_rows:
        return {}, []
    plain = exp.model_copy(update={"method": exp.method.model_copy(update={"kind": "full"})})
    sft = build_trainer(job, plain, model, tokenizer, [], val_rows[:1], val_rows, micro=8)
    return evaluate_model(sft, model, tokenizer, exp, val_rows, test_rows)


def _named(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in values.items()}


def _train_once(job: TrialJob, exp: Experiment, micro: int, attempt: int, spool: Any,
                progress: Any, rows: tuple[list, list, list]) -> TrialResult:
    out = Path(job.out_dir)
    _, val_rows, test_rows = rows
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pairs = _pair_sets(job, exp, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # before the first step the policy is the parent: these are the reference's numbers
    before = {s: sequence_logps(model, p, pad, micro) for s, p in pairs.items()}
    callbacks, outcome = _callbacks(job, exp, spool, progress, attempt)
    # eval.watch: the parent's first validation prompts, answered at each evaluation
    callbacks += _watching(job, exp, tokenizer, val_rows, spool, {})
    trainer = build_dpo_trainer(job, exp, model, tokenizer, new_adapter, callbacks,
                                pairs["train"], pairs["heldout"], micro)

    # train
    info, ended = train_to_the_end(job, exp, trainer, outcome, micro, progress)
    if ended is not None:
        return ended
    best = trainer.state.best_metric

    # evaluate the best checkpoint (the trainer loaded it back): pairs, then the parent's splits
    progress("evaluate", {})
    values: dict[str, float] = {"preferences/loss": best} if best is not None else {}
    for split, name in (("heldout", "preferences"), ("train", "preferences_train")):
        after = sequence_logps(trainer.model, pairs[split], pad, micro)
        values.update(_named(name, preference_metrics(after, before[split], exp.method.beta)))
    found, samples = _supervised_values(job, exp, trainer.model, tokenizer, val_rows, test_rows)
    values.update(found)
    ref = f"trial:{job.number}"
    spool.write(evaluation_events(exp, ref, values) + sample_events(exp, ref, samples))

    # save: an adapter on the same base as the parent's (TRL's frozen "ref" copy is dropped)
    save_best(trainer, tokenizer, out)
    if rank() == 0:
        shutil.rmtree(out / "best" / "ref", ignore_errors=True)
    info["values"] = values
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info=info)


def run_trial(job: TrialJob, progress: Any) -> TrialResult:
    from tunelab.engine.train.sft import run_trial as with_bookkeeping

    return with_bookkeeping(job, progress, once=_train_once)


def run_baseline(job: TrialJob, progress: Any) -> TrialResult:
    """The parent, measured as every trial will be: how often it already prefers the chosen
    answer, and its losses, metrics and samples on its own splits."""
    exp = Experiment.model_validate(job.experiment)
    model, tokenizer, new_adapter = load_policy(job, exp, trainable=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    progress("eval", {"what": "baseline"})
    pairs = _pair_sets(job, exp, tokenizer)
    # the DPO loss where every trial starts: the parent is its own reference (all margins 0).
    # Each beta and loss type gives it another value: with either searched there is no one
    # baseline loss to compare trials with, so none is recorded.
    dpo = build_dpo_trainer(job, exp, model, tokenizer, new_adapter, [], pairs["train"],
                            pairs["heldout"], micro=8)
    values: dict[str, float] = {}
    if not {"method.beta", "method.loss_type"} & set(exp.search.space):
        values["preferences/loss"] = float(dpo.evaluate()["eval_loss"])
    for split, name in (("heldout", "preferences"), ("train", "preferences_train")):
        logps = sequence_logps(dpo.model, pairs[split], pad)
        values.update(_named(name, preference_metrics(logps, logps, exp.method.beta)))
    rows = {s: read_rows(job.data[s]) if s in job.data else [] for s in ("validation", "test")}
    found, samples = _supervised_values(job, exp, dpo.model, tokenizer, rows["validation"],
                                        rows["test"])
    values.update(found)
    with Spool(job.store, tag="baseline") as spool:
        spool.write(evaluation_events(exp, "base", values) + sample_events(exp, "base", samples))
    total, _ = models.count_parameters(model)
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info={"params": total, "values": values})
