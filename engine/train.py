"""One supervised fine-tuning trial, top to bottom: setup, train, evaluate, save.

Runs inside a fresh trial process (see runner.py). Every logged number goes to
the store through this process's spool; each evaluation is reported to Optuna,
which may prune the trial; the best checkpoint by validation loss is kept.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from tunelab.engine import model as models
from tunelab.engine.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.store import Spool

# Keys of the trainer's log that are bookkeeping, not metrics
_SKIP = {"epoch", "total_flos", "num_input_tokens_seen", "train_tokens_per_second"}


def micro_batch(exp: Experiment) -> tuple[int, int]:
    """(micro-batch, accumulation) whose product is exactly the effective batch size."""
    effective = exp.train.batch_size
    if exp.train.micro_batch_size != "auto":
        micro = min(int(exp.train.micro_batch_size), effective)
    else:
        micro = max(d for d in range(1, min(effective, 16) + 1) if effective % d == 0)
    return micro, math.ceil(effective / micro)


def build_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                  callbacks: list[Any], train_rows: list[dict[str, Any]],
                  eval_rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    device, dtype = models.device_and_dtype(exp)
    micro, accumulation = micro_batch(exp)
    steps_per_epoch = math.ceil(len(train_rows) / (micro * accumulation))
    total_steps = steps_per_epoch * exp.train.epochs
    args = SFTConfig(
        output_dir=str(Path(job.out_dir) / "checkpoints"),
        num_train_epochs=exp.train.epochs,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro * 2,
        gradient_accumulation_steps=accumulation,
        learning_rate=exp.learning_rate,
        lr_scheduler_type=exp.train.scheduler,
        warmup_steps=math.ceil(exp.train.warmup_ratio * total_steps),
        weight_decay=exp.train.weight_decay,
        max_length=exp.train.max_length,
        seed=exp.train.seed,
        logging_steps=exp.train.logging_steps,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,  # the best and the latest; the rest are deleted as it goes
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        completion_only_loss=True,
        include_num_input_tokens_seen=True,
        report_to=[],
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=dtype is not None and str(dtype) == "torch.bfloat16",
        fp16=dtype is not None and str(dtype) == "torch.float16",
        dataloader_num_workers=0,
        # a curriculum (data.order = length | difficulty) is read in the prepared order
        train_sampling_strategy="random" if exp.data.order == "shuffle" else "sequential",
    )
    peft_config = None
    if exp.method.kind == "lora":
        peft_config = LoraConfig(
            r=exp.method.r,
            lora_alpha=int(round(exp.method.r * exp.method.alpha_ratio)),
            lora_dropout=exp.method.dropout,
            target_modules=exp.method.target_modules,
            task_type="CAUSAL_LM",
        )
    if exp.train.early_stopping_patience:
        callbacks = [*callbacks, EarlyStoppingCallback(exp.train.early_stopping_patience)]
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(models.render(train_rows, tokenizer)),
        eval_dataset=Dataset.from_list(models.render(eval_rows, tokenizer)),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def _metric_events(experiment: str, trial: int, state: Any, logs: dict[str, Any]) -> list[dict]:
    now = time.time()
    events = []
    for key, value in logs.items():
        if key in _SKIP or not isinstance(value, (int, float)):
            continue
        if key.startswith("eval_"):
            split, name = "validation", key[5:]
            if name in {"runtime", "samples_per_second", "steps_per_second"}:
                continue
        elif key.startswith("train_"):
            continue  # the end-of-training summary (runtime, mean loss) is not a curve point
        else:
            split, name = "train", key
        events.append({"table": "metrics", "row": {
            "experiment": experiment, "trial": trial, "step": state.global_step,
            "epoch": state.epoch, "tokens": int(getattr(state, "num_input_tokens_seen", 0) or 0),
            "split": split, "name": name, "value": float(value), "time": now}})
    return events


def _callbacks(job: TrialJob, exp: Experiment, spool: Spool, progress: Any) -> tuple[list, dict]:
    import optuna
    from transformers import TrainerCallback

    from tunelab.engine.search import build_pruner, open_storage

    outcome: dict[str, Any] = {"pruned": False, "nan": False, "evaluations": 0}
    trial = None
    if job.trial_id is not None:
        study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage),
                                  pruner=build_pruner(exp))
        trial = optuna.trial.Trial(study, job.trial_id)
    number = job.number if job.number is not None else -1

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            logs = logs or {}
            spool.write(_metric_events(exp.name, number, state, logs))
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(loss):
                outcome["nan"] = True
                control.should_training_stop = True
            if loss is not None:
                progress("log", {"step": state.global_step, "epoch": state.epoch, "loss": loss})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
            value = (metrics or {}).get("eval_loss")
            if value is None:
                return
            outcome["evaluations"] += 1
            progress("eval", {"epoch": state.epoch, "eval_loss": value})
            if not math.isfinite(value):
                outcome["nan"] = True
                control.should_training_stop = True
                return
            if trial is not None:
                trial.report(value, step=outcome["evaluations"])
                if trial.should_prune():
                    outcome["pruned"] = True
                    control.should_training_stop = True

    return [Record()], outcome


def run_trial(job: TrialJob, progress: Any) -> TrialResult:
    exp = Experiment.model_validate(job.experiment)
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # setup
    from tunelab.engine.data import read_rows

    train_rows, val_rows, test_rows = (read_rows(job.data[s]) for s in ("train", "validation", "test"))
    tokenizer = models.load_tokenizer(job.base, exp)
    model = models.load_model(job.base, exp)
    spool = Spool(job.store, tag=f"trial{job.number}")
    try:
        callbacks, outcome = _callbacks(job, exp, spool, progress)
        trainer = build_trainer(job, exp, model, tokenizer, callbacks, train_rows, val_rows)
        total, trainable = models.count_parameters(trainer.model)
        progress("start", {"params": total, "trainable": trainable})

        # train
        trainer.train()
        state = trainer.state
        if outcome["nan"]:
            return TrialResult("failed", fail_reason="nan",
                               error="the loss became NaN or infinite; lower the learning rate")
        best = state.best_metric
        if outcome["pruned"]:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            return TrialResult("pruned", value=best, info={"steps": state.global_step})

        # evaluate the best checkpoint (loaded back by the trainer) on the test split
        now = time.time()
        ref = f"trial:{job.number}"
        rows = [("validation", "loss", best)]
        if test_rows:
            from datasets import Dataset

            test = Dataset.from_list(models.render(test_rows, tokenizer))
            metrics = trainer.evaluate(eval_dataset=test, metric_key_prefix="test")
            rows.append(("test", "loss", metrics["test_loss"]))
        rows += [(split, "perplexity", math.exp(min(v, 50))) for split, name, v in list(rows)]
        spool.write([{"table": "evaluations", "row": {
            "experiment": exp.name, "model_ref": ref, "split": s, "name": n, "value": v,
            "time": now}} for s, n, v in rows])

        # save the best checkpoint (the adapter alone for LoRA) and drop the rest
        trainer.save_model(str(out / "best"))
        tokenizer.save_pretrained(str(out / "best"))
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        return TrialResult("complete", value=best, info={
            "steps": state.global_step, "tokens": int(state.num_input_tokens_seen or 0),
            "params": total, "trainable": trainable})
    finally:
        spool.close()
