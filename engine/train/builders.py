"""Builders: the experiment's settings turned into what a trial's trainer is made of (the
micro-batch to try first, the base model loaded for the method, the adapter's config, the
trainer's arguments). Shared by every recipe; nothing here trains."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunelab.engine.run.jobs import TrialJob
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models


def first_micro_batch(exp: Experiment, device: str) -> int:
    """The micro-batch to try first: the file's, or for `auto` the largest divisor of the
    effective batch up to 32 (64 on a GPU); out-of-memory halves it from there."""
    effective = exp.train.batch_size
    if exp.train.micro_batch_size != "auto":
        return int(exp.train.micro_batch_size)
    if exp.train.packing:
        # one packed row of max_length tokens per micro-step: a padding-free micro-batch is one
        # flattened row, and without flash attention its block-diagonal mask is computed densely,
        # so k rows at once would cost k^2 in attention instead of k
        return 1
    top = 64 if device == "cuda" else 32
    return max(d for d in range(1, min(effective, top) + 1) if effective % d == 0)


def load_for_method(ref: str, exp: Experiment) -> Any:
    """The base model, 4-bit quantised for QLoRA."""
    if exp.method.kind != "qlora":
        return models.load_model(ref, exp)
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    _, dtype = models.device_and_dtype(exp)
    compute = dtype if exp.method.compute_dtype == "auto" else getattr(torch, exp.method.compute_dtype)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=exp.method.quant_type,
                               bnb_4bit_use_double_quant=exp.method.double_quant,
                               bnb_4bit_compute_dtype=compute)
    model = AutoModelForCausalLM.from_pretrained(ref, quantization_config=quant, dtype=compute,
                                                 trust_remote_code=exp.base_model.trust_remote_code,
                                                 use_safetensors=True)  # no pickled .bin
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=exp.train.gradient_checkpointing)


def peft_config(exp: Experiment) -> Any:
    """The new adapter of a LoRA, QLoRA or prefix trial (None: full fine-tuning)."""
    from peft import LoraConfig, PrefixTuningConfig

    method = exp.method
    if method.kind in {"lora", "qlora"}:
        return LoraConfig(r=method.r, lora_alpha=int(round(method.r * method.alpha_ratio)),
                          lora_dropout=method.dropout, target_modules=method.target_modules,
                          use_dora=method.use_dora, task_type="CAUSAL_LM")
    if method.kind == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM")
    return None


def trainer_arguments(job: TrialJob, exp: Experiment, examples: int, micro: int) -> dict[str, Any]:
    """The arguments every recipe's trainer shares: the effective batch as micro-batch x
    accumulation, warmup, evaluation and a checkpoint per evaluation, the best one kept."""
    device, dtype = models.device_and_dtype(exp)
    accumulation = max(1, exp.train.batch_size // micro)
    total_steps = math.ceil(examples / (micro * accumulation)) * exp.train.epochs
    by_steps = isinstance(exp.train.eval_every, int)
    return dict(
        output_dir=str(Path(job.out_dir) / "checkpoints"),
        num_train_epochs=exp.train.epochs,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        learning_rate=exp.learning_rate,
        lr_scheduler_type=exp.train.scheduler,
        warmup_steps=math.ceil(exp.train.warmup_ratio * total_steps),
        weight_decay=exp.train.weight_decay,
        max_length=exp.train.max_length,
        seed=exp.train.seed,
        logging_steps=exp.train.logging_steps,
        eval_strategy="steps" if by_steps else "epoch",
        save_strategy="steps" if by_steps else "epoch",
        eval_steps=exp.train.eval_every if by_steps else None,
        save_steps=exp.train.eval_every if by_steps else None,
        save_total_limit=2,  # the best and the latest; the rest are deleted as it goes
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        # TRL turns this on by default; it costs a second forward pass and breaks prefix tuning
        gradient_checkpointing=exp.train.gradient_checkpointing and exp.method.kind != "prefix",
        optim="paged_adamw_8bit" if exp.method.kind == "qlora" and device == "cuda" else "adamw_torch",
        report_to=[],
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=str(dtype) == "torch.bfloat16",
        fp16=str(dtype) == "torch.float16",
        dataloader_num_workers=0,
    )
