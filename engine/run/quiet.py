"""Warnings that every run printed, and why each is harmless. They are dropped by logging
filters (not by lowering a logger's level), so any other warning of the same loggers still shows.

- bitsandbytes: `peft` imports `bitsandbytes` whenever it is installed (peft/helpers.py), QLoRA
  or not, and bitsandbytes then looks for an optional faster CPU kernel for 4-bit matrix
  products in the `kernels` package. Without it bitsandbytes uses its own CPU code; tunelab
  runs 4-bit only on CUDA anyway. The import cannot be made lazy (it is peft's), so the line goes.
- kernels: transformers 5 installs `kernels`, so on a CPU with AVX512-BF16 that lookup above
  really asks the Hub for `kernels-community/quantization-bitsandbytes`; offline
  (HF_HUB_OFFLINE=1, as tunelab's tests and many GPU boxes run) `kernels` first says
  `Skipping publisher trust check for '…' because Hugging Face Hub is in offline mode.`, then
  finds no such kernel in the cache and bitsandbytes says the line above. Only that kernel's
  line is dropped: a trust check skipped for any other kernel still shows.
- transformers' Trainer, loading the best checkpoint at the end of training: `There were missing
  keys in the checkpoint model loaded: ['lm_head.weight']`. safetensors stores a tensor shared by
  two names once, so a model with tied embeddings (every scratch model, and hub models such as
  Qwen2.5-0.5B) saves `model.embed_tokens.weight` and not `lm_head.weight`. The Trainer loads
  with strict=False into the same model, whose lm_head is still the same tensor as the
  embeddings, so the loaded embeddings are the head (tests/test_faults.py checks the tie after
  loading). An untied model saves its head, so it can never be missing there: only exactly
  this list is dropped, any other missing key still shows.
"""

from __future__ import annotations

import logging

_BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
_KERNELS_LOGGER = "kernels._internals.hf_hub"
BNB_KERNEL_TRUST = "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'"
_TRAINER_LOGGER = "transformers.trainer"
TIED_HEAD_MISSING = "There were missing keys in the checkpoint model loaded: ['lm_head.weight']"


class _Drop(logging.Filter):
    def __init__(self, starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def install() -> None:
    """Adds the filters (once: a logger keeps its filters, so a second call adds nothing).
    Loggers are made by name, so this works before bitsandbytes or transformers is imported.
    Called by every process that may import peft: the trials' fork server and the CLI (chat,
    review new and export load models in its own process)."""
    for name, starts in ((_BNB_LOGGER, "Failed to load CPU gemm_4bit_forward"),
                         (_KERNELS_LOGGER, BNB_KERNEL_TRUST),
                         (_TRAINER_LOGGER, TIED_HEAD_MISSING + ".")):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.starts == starts for f in logger.filters):
            logger.addFilter(_Drop(starts))
