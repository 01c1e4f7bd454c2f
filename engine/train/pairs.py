"""Preference pairs as a model reads them: tokenized exactly as supervised training renders a
conversation (chat_render), so the answers are scored in the format the parent learned; the
summed log-probability of each answer; and the preference metrics on them. For every recipe
that learns from votes (dpo.py, kto.py, reward.py, orpo.py)."""

from __future__ import annotations

from typing import Any

from tunelab.engine.data import render as chat_render
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.run.jobs import TrialJob
from tunelab.engine.spec import Experiment

PAIR_SETS = ("train", "heldout")  # the prepared pair files of a preference stage


def tokenize_pairs(pairs: list[dict[str, Any]], tokenizer: Any, template: str,
                   max_length: int) -> list[dict[str, list[int]]]:
    """prompt_ids / chosen_ids / rejected_ids per pair, rendered as in supervised training (all
    answers in one batch); an answer is cut where prompt and answer reach max_length (as the
    trainer's collator cuts it, so every number is of what is trained), and a pair whose prompt
    alone fills max_length is left out (it has nothing left to compare)."""
    found = answers_ids([(pair, answer) for pair in pairs
                         for answer in (pair["chosen"], pair["rejected"])], tokenizer, template)
    out = []
    for (prompt, chosen), (other, rejected) in zip(found[::2], found[1::2], strict=True):
        if prompt != other or len(prompt) >= max_length or not chosen or not rejected:
            continue
        room = max_length - len(prompt)
        out.append({"prompt_ids": prompt, "chosen_ids": chosen[:room], "rejected_ids": rejected[:room]})
    return out


def answers_ids(answers: list[tuple[dict[str, Any], str]], tokenizer: Any,
                template: str) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) of each (row, answer): the answer to the row's prompt (or its
    turns), rendered as in supervised training, all in one batch. Earlier answers are context
    (weight 0): only this one is compared (a pair's two answers; a kto stage's one; a reward
    model's scored one)."""
    rows = []
    for row, answer in answers:
        turns = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
        turns = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in turns
                 if m["role"] != "assistant" or m.get("content")]
        rows.append({"messages": [*turns, {"role": "assistant", "content": answer}]})
    rendered = chat_render.render_many(rows, tokenizer, template, strict=True, offsets=False)
    return [_prompt_and_answer(r) for r in rendered]


def _prompt_and_answer(rendered: Any) -> tuple[list[int], list[int]]:
    """A rendered pair row's ids before its (last, only trained) answer, and from it on."""
    first = rendered.trained.index(1) if 1 in rendered.trained else len(rendered.input_ids)
    return rendered.input_ids[:first], rendered.input_ids[first:]


def pair_sets(job: TrialJob, exp: Experiment, tokenizer: Any) -> dict[str, list[dict]]:
    """The stage's training and held-out pairs, tokenized in the template of the parent's data."""
    rows = read_rows(job.data["validation"]) if "validation" in job.data else []
    name = rows[0].get("template", exp.dataset.template) if rows else exp.dataset.template
    template = chat_render.template_text(name, tokenizer)
    return {split: tokenize_pairs(read_rows(job.data[split]), tokenizer, template,
                                  exp.train.max_length) for split in PAIR_SETS}


def sequence_logps(model: Any, pairs: list[dict[str, list[int]]], pad_id: int,
                   batch_size: int = 8) -> tuple[list[float], list[float]]:
    """The summed log-probability of each chosen and each rejected answer after its prompt
    (what DPO compares; TRL sums the same tokens). A batch's chosen and rejected answers go
    through the model in one forward pass, and the log-probabilities are taken at the answers'
    tokens only (logit − logsumexp): a log-softmax over every position would hold batch ×
    length × vocabulary floats (4 GiB for 16 rows of 512 tokens of a 128k vocabulary)."""
    import torch

    device = next(model.parameters()).device
    chosen: list[float] = []
    rejected: list[float] = []
    model.eval()
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        rows = [(p["prompt_ids"], p[key]) for key in ("chosen_ids", "rejected_ids") for p in batch]
        width = max(len(prompt) + len(answer) for prompt, answer in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        answer = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (prompt, tokens) in enumerate(rows):
            ids[i, :len(prompt) + len(tokens)] = torch.tensor(prompt + tokens)
            mask[i, :len(prompt) + len(tokens)] = 1
            answer[i, len(prompt):len(prompt) + len(tokens)] = True
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
            logits = logits[:, -width:]  # prompt-learning adapters prepend positions
            # the position before each answer token predicts it
            row, column = answer[:, 1:].to(device).nonzero(as_tuple=True)
            predicting = logits[row, column].float()
            picked = predicting.gather(-1, ids[row, column + 1].unsqueeze(-1)).squeeze(-1)
            token_logps = picked - predicting.logsumexp(dim=-1)
            summed = torch.zeros(len(rows), device=device).index_add_(0, row, token_logps)
        values = summed.cpu().tolist()  # a GPU sync point, once a batch
        chosen.extend(values[:len(batch)])
        rejected.extend(values[len(batch):])
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


def named(prefix: str, values: dict[str, float]) -> dict[str, float]:
    """Metrics as evaluations name them: "preferences/reward_accuracy"."""
    return {f"{prefix}/{k}": v for k, v in values.items()}
