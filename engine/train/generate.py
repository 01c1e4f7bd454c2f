"""Batched greedy generation, with the prompt rendered exactly as in training."""

from __future__ import annotations

from typing import Any


def generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
             batch_size: int = 16) -> list[str]:
    """Continues each rendered prompt (see chat_render.generation_prompt); special tokens are
    already in the text, so none are added."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of each row
    # a padded call leaves padding set on the Rust tokenizer (transformers 5): put it back after,
    # so a tokenizer saved later (best/) or rendering examples next does not pad
    backend = getattr(tokenizer, "backend_tokenizer", None)
    padding = backend.padding if backend is not None else None
    outputs: list[str] = []
    device = next(model.parameters()).device
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
            new = out[:, batch["input_ids"].shape[1]:]
            outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        if backend is not None:
            if padding is None:
                backend.no_padding()
            else:
                backend.enable_padding(**padding)
    return [o.strip() for o in outputs]
