"""The summed log-probability of a pair's answers (engine.train.pairs.sequence_logps), which
every preference metric and the DPO reference stand on: batched, padded and fused (chosen and
rejected in one pass), it equals each sequence scored alone with a plain log-softmax."""

from __future__ import annotations

import random

import pytest


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_sequence_logps_equal_each_sequence_scored_alone(batch_size: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tunelab.engine.train.pairs import sequence_logps

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64))
    rng = random.Random(batch_size)

    def tokens(low: int, high: int) -> list[int]:
        return [rng.randrange(1, 97) for _ in range(rng.randrange(low, high))]

    pairs = [{"prompt_ids": tokens(1, 12), "chosen_ids": tokens(1, 9), "rejected_ids": tokens(1, 9)}
             for _ in range(11)]  # 11: the last batch is a short one for 3 and 8

    def alone(prompt: list[int], answer: list[int]) -> float:
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        return sum(float(logp[len(prompt) + k - 1, t]) for k, t in enumerate(answer))

    chosen, rejected = sequence_logps(model, pairs, pad_id=0, batch_size=batch_size)
    assert chosen == pytest.approx([alone(p["prompt_ids"], p["chosen_ids"]) for p in pairs], abs=1e-4)
    assert rejected == pytest.approx([alone(p["prompt_ids"], p["rejected_ids"]) for p in pairs],
                                     abs=1e-4)
