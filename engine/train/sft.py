"""One supervised fine-tuning trial, top to bottom: setup, train, evaluate, save.

Runs inside a fresh trial process (see runner.py). Every logged number goes to the store
through this process's spool; each evaluation is reported to Optuna, which may prune the
trial; the best checkpoint by validation loss is kept. On CUDA out-of-memory the trial starts
over with half the micro-batch and twice the accumulation: the same effective batch, so the
comparison with other trials stays fair.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tunelab.engine.objectives import objective_value
from tunelab.engine.run import threads
from tunelab.engine.run.jobs import STOP_AFTER_EVALUATION, TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train import tokens
from tunelab.engine.train.evaluate import evaluate_model, evaluation_events, sample_events
from tunelab.store import MetricRow, Spool
from tunelab.store.ingester import Ingester

# Keys of the trainer's log that are bookkeeping, not metrics
_SKIP = {"epoch", "total_flos", "num_input_tokens_seen", "train_tokens_per_second"}

# Seconds between moves of the logged metrics from the trial's spool into the store (the
# store's live curves lag by at most this much; the CLI's progress comes through the pipe)
INGEST_EVERY = 10.0

# Tests set this to make the first N attempts of a trial fail as if CUDA ran out of memory.
FAULT_OOM = "TUNELAB_FAULT_OOM_ATTEMPTS"
# ... and the first N tries of scoring the examples (eval.example_losses) after training.
FAULT_OOM_SCORING = "TUNELAB_FAULT_OOM_SCORING"


class OutOfMemory(Exception):
    pass


def rank() -> int:
    """This process's rank in a trial launched with torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _barrier() -> None:
    if _world() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


class _NoSpool:
    """What ranks other than 0 of a distributed trial write to: nothing (rank 0 records)."""

    def write(self, events: Any, ingest: bool = True) -> None:
        pass

    def close(self) -> bool:
        return True


def _stop_requested(job: TrialJob) -> bool:
    """Ctrl-C once: the trial process's flag, or the file a distributed trial's launcher writes."""
    return STOP_AFTER_EVALUATION.is_set() or (Path(job.out_dir) / "stop").exists()


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, OutOfMemory) or type(error).__name__ == "OutOfMemoryError" or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


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
    """The arguments every stage's trainer shares: the effective batch as micro-batch x
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


def build_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                  callbacks: list[Any], train_rows: list[dict[str, Any]],
                  eval_rows: list[dict[str, Any]], micro: int, cache: Path | None = None,
                  on_render: Any = None) -> Any:
    """The trainer of a trial. With a cache folder, the rendered rows are kept there for the
    sweep's other trials (engine.train.tokens); on_render hears how many rows are rendered."""
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    train = tokens.rendered(train_rows, tokenizer, cache, on_render)
    examples = len(train)
    if exp.train.packing:  # steps (and warmup) count packed rows; validation is not packed
        total = sum(min(len(ids), exp.train.max_length) for ids in train["input_ids"])
        examples = math.ceil(total / exp.train.max_length)
    arguments = trainer_arguments(job, exp, examples, micro)
    if exp.train.packing:
        arguments["per_device_eval_batch_size"] = min(exp.train.batch_size, 32)
    args = SFTConfig(
        **arguments,
        completion_only_loss=True,
        include_num_input_tokens_seen=True,
        # packing: best-fit decreasing into rows of max_length, padding-free with position ids,
        # from which the attention builds a block-diagonal mask (an example never sees another:
        # tests/test_packing.py); validation stays unpacked, so eval_loss compares across trials
        packing=exp.train.packing,
        eval_packing=False,
        # a curriculum (data.order = length | difficulty) is read in the prepared order
        train_sampling_strategy="random" if exp.dataset.order == "shuffle" else "sequential",
    )
    if exp.train.early_stopping_patience:
        callbacks = [*callbacks, EarlyStoppingCallback(exp.train.early_stopping_patience)]
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=tokens.rendered(eval_rows, tokenizer, cache, on_render),
        processing_class=tokenizer,
        peft_config=peft_config(exp),
        callbacks=callbacks,
    )


def _metric_events(experiment: str, trial: int, state: Any, logs: dict[str, Any]) -> list[MetricRow]:
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
        events.append(MetricRow(
            experiment=experiment, trial=trial, step=state.global_step,
            epoch=state.epoch, tokens=int(getattr(state, "num_input_tokens_seen", 0) or 0),
            split=split, name=name, value=float(value), time=now))
    return events


def _callbacks(job: TrialJob, exp: Experiment, spool: Spool, progress: Any, attempt: int,
               ) -> tuple[list, dict]:
    import optuna
    from transformers import TrainerCallback

    from tunelab.engine.run.study import build_pruner, open_storage

    outcome: dict[str, Any] = {"pruned": False, "nan": False, "evaluations": 0, "interrupted": False}
    trial = None
    if job.trial_id is not None and rank() == 0:  # rank 0 reports; the others follow its decision
        study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage),
                                  pruner=build_pruner(exp))
        trial = optuna.trial.Trial(study, job.trial_id)
    number = job.number if job.number is not None else -1
    # intermediate values are validation losses; Optuna prunes no study of several objectives
    prunes = exp.search.objective == "eval_loss" and len(exp.search.all_objectives) == 1
    faults = int(os.environ.get(FAULT_OOM, "0"))

    shared = {"checked": time.monotonic(), "ingested": time.monotonic()}
    ingester = Ingester(spool)  # DuckDB ingests on a thread of their own (see ingester.py)

    class Record(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            ingester.close()

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if attempt < faults:
                raise OutOfMemory(f"CUDA out of memory (injected by {FAULT_OOM})")
            # another training started or ended on this machine: take the new share of the
            # cores (a few file checks, every few seconds; ranks keep what torchrun gave them)
            if _world() == 1 and time.monotonic() - shared["checked"] > 3.0:
                shared["checked"] = time.monotonic()
                threads.take_share(job.threads)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            logs = logs or {}
            # Every logged number is fsynced to the spool at once (recorded), but moved into
            # DuckDB only every INGEST_EVERY seconds and at each evaluation: an ingest costs
            # ~0.1 s, and at every log it took 9 % of a quickstart trial.
            now = time.monotonic()
            due = now - shared["ingested"] >= INGEST_EVERY or any(k.startswith("eval_") for k in logs)
            spool.write(_metric_events(exp.name, number, state, logs), ingest=False)
            if due:
                shared["ingested"] = now
                ingester.request()
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
            progress("eval", {"epoch": state.epoch, "step": state.global_step, "eval_loss": value})
            if not math.isfinite(value):
                outcome["nan"] = True
                control.should_training_stop = True
                return
            pruned = interrupted = False
            if trial is not None and prunes:
                trial.report(value, step=outcome["evaluations"])
                # not at the last evaluation: the training is done, so pruning would save no
                # step and throw a finished result away (halving at its top rung did that)
                pruned = state.global_step < state.max_steps and trial.should_prune()
            if rank() == 0:
                interrupted = _stop_requested(job)  # Ctrl-C: this evaluation is recorded; stop
            if _world() > 1:  # every rank stops together, as rank 0 decided
                import torch.distributed as dist

                decision = [pruned, interrupted]
                dist.broadcast_object_list(decision, src=0)
                pruned, interrupted = decision
            if pruned:
                outcome["pruned"] = True
                control.should_training_stop = True
            if interrupted:
                outcome["interrupted"] = True
                control.should_training_stop = True

    return [Record()], outcome


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _peak_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def write_manifest(job: TrialJob, exp: Experiment, out: Path, device: str) -> None:
    """The resolved experiment and what it ran with, so the trial can be re-run exactly."""
    import importlib.metadata as meta

    versions = {}
    for package in ("torch", "transformers", "peft", "trl", "datasets", "optuna", "bitsandbytes",
                    "tunelab"):
        try:
            versions[package] = meta.version(package)
        except meta.PackageNotFoundError:
            continue
    spec_path = job.spec_path
    manifest = {
        "experiment": exp.name, "trial": job.number, "seed": exp.train.seed, "base": job.base,
        "data_fingerprint": Path(job.data["train"]).parent.name, "data": job.data,
        # a dpo stage: the trial it started from (its adapter, when it goes on training one)
        "parent": {"trial": exp.method.from_, "adapter": job.parent} if exp.method.from_ else None,
        "device": device, "python": platform.python_version(), "packages": versions,
        "git_commit": _git_commit(Path(spec_path).parent) if spec_path else None,
        "created": time.time(),
    }
    (out / "experiment.json").write_text(json.dumps(exp.model_dump(mode="json"), indent=1))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def train_to_the_end(job: TrialJob, exp: Experiment, trainer: Any, outcome: dict[str, Any],
                     micro: int, progress: Any) -> tuple[dict[str, Any], TrialResult | None]:
    """Trains; returns what ran, and the result of a trial that ends here (a NaN loss, pruned,
    Ctrl-C) with its checkpoints removed. Every stage stops by the same rules."""
    out = Path(job.out_dir)
    device, _ = models.device_and_dtype(exp)
    total, trainable = models.count_parameters(trainer.model)
    progress("start", {"params": total, "trainable": trainable, "micro_batch": micro,
                       "accumulation": exp.train.batch_size // micro})
    output = trainer.train()
    state = trainer.state
    info = {"train_seconds": output.metrics.get("train_runtime"), "steps": state.global_step,
            "tokens": int(state.num_input_tokens_seen or 0),
            "params": total, "trainable": trainable, "micro_batch": micro,
            "accumulation": exp.train.batch_size // micro, "device": device}
    if outcome["nan"]:
        return info, TrialResult("failed", fail_reason="nan", info=info,
                                 error="the loss became NaN or infinite; lower the learning rate")
    best = state.best_metric
    _barrier()  # every rank is done with the checkpoints before rank 0 removes them
    if not (outcome["interrupted"] or outcome["pruned"]):
        return info, None
    if rank() == 0:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if outcome["pruned"]:
        return info, TrialResult("pruned", value=best, info=info)
    return info, TrialResult("failed", value=best, fail_reason="interrupted", info=info,
                             error=f"stopped by Ctrl-C after {outcome['evaluations']} evaluations")


def save_best(trainer: Any, tokenizer: Any, out: Path) -> None:
    """The best checkpoint (the adapter alone for LoRA, QLoRA and prefix) with its tokenizer
    in best/; the other checkpoints are dropped."""
    # written under another name and renamed when whole: a crash while saving never leaves a
    # half-written best/ that export, chat or review would load
    partial = out / "best.partial"
    trainer.save_model(str(partial))  # every rank calls it; the main process writes
    _barrier()
    if rank() == 0:
        tokenizer.save_pretrained(str(partial))
        os.replace(partial, out / "best")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def _watching(job: TrialJob, exp: Experiment, tokenizer: Any, val_rows: list[dict[str, Any]],
              spool: Any, cost: dict[str, float]) -> list[Any]:
    """The callback of eval.watch (rank 0 generates; the others wait for it at the next step)."""
    from tunelab.engine.train.watch import watch_callback, watched_prompts

    prompts = watched_prompts(exp, tokenizer, val_rows) if rank() == 0 else []
    if not prompts:
        return []
    number = job.number if job.number is not None else -1
    return [watch_callback(exp, number, tokenizer, prompts, spool, cost)]


def _score_examples(job: TrialJob, exp: Experiment, trainer: Any, tokenizer: Any,
                    train_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]],
                    spool: Any, cost: dict[str, float]) -> None:
    """eval.example_losses: every train and validation example's loss under the best checkpoint
    (the trainer loaded it back), into example_losses."""
    wanted = exp.eval.example_losses
    if wanted == "auto":  # a third of an epoch: within 10 % of a trial of four epochs or more
        wanted = exp.train.epochs >= 4
    if not wanted or rank() != 0:
        return
    from tunelab.engine.train.example_losses import example_loss_events

    started = time.perf_counter()
    number = job.number if job.number is not None else -1
    batch = trainer.args.per_device_eval_batch_size
    faults = int(os.environ.get(FAULT_OOM_SCORING, "0"))
    while True:
        try:
            if faults > 0:
                faults -= 1
                raise OutOfMemory(f"CUDA out of memory (injected by {FAULT_OOM_SCORING})")
            events = example_loss_events(exp, number, trainer.model, tokenizer,
                                         {"train": train_rows, "validation": val_rows}, batch)
            break
        except Exception as error:
            # out of memory here must not send a trained trial back to the start (the retry
            # of run_trial): halve the batch, and at one example give up the scoring alone
            if not _is_oom(error):
                raise
            import torch

            torch.cuda.empty_cache()
            if batch == 1:
                cost["example_losses_skipped"] = 1.0
                return
            batch //= 2
    spool.write(events)
    cost["example_losses_seconds"] = time.perf_counter() - started


def _train_once(job: TrialJob, exp: Experiment, micro: int, attempt: int, spool: Spool,
                progress: Any, rows: tuple[list, list, list]) -> TrialResult:
    out = Path(job.out_dir)
    train_rows, val_rows, test_rows = rows
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    callbacks, outcome = _callbacks(job, exp, spool, progress, attempt)
    cost: dict[str, float] = {}
    callbacks += _watching(job, exp, tokenizer, val_rows, spool, cost)
    trainer = build_trainer(job, exp, model, tokenizer, callbacks, train_rows, val_rows, micro,
                            cache=Path(job.data["train"]).parent,
                            on_render=lambda n: progress("tokenizing", {"rows": n}))

    # train
    info, ended = train_to_the_end(job, exp, trainer, outcome, micro, progress)
    if ended is not None:
        return ended

    # evaluate the best checkpoint (the trainer loaded it back) on validation and test
    progress("evaluate", {})
    values, samples = evaluate_model(trainer, trainer.model, tokenizer, exp, val_rows, test_rows,
                                     val_loss=trainer.state.best_metric)
    ref = f"trial:{job.number}"
    spool.write(evaluation_events(exp, ref, values) + sample_events(exp, ref, samples))
    _score_examples(job, exp, trainer, tokenizer, train_rows, val_rows, spool, cost)

    # save
    save_best(trainer, tokenizer, out)
    info["values"] = values
    info.update(cost)
    value = objective_value(exp.search.objective, exp.method.stage, values)
    return TrialResult("complete", value=value, info=info)


def run_trial(job: TrialJob, progress: Any, once: Any = None) -> TrialResult:
    """A trial with its bookkeeping: the manifest, the retries at half the micro-batch after
    out-of-memory, the cost. `once` is one attempt of the stage (`_train_once`: supervised;
    train_dpo.py passes its own)."""
    from tunelab.engine.data.prepare import read_rows

    once = once or _train_once
    exp = Experiment.model_validate(job.experiment)
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device, _ = models.device_and_dtype(exp)
    if rank() == 0:
        write_manifest(job, exp, out, device)
    rows = tuple(read_rows(job.data[s]) if s in job.data else []
                 for s in ("train", "validation", "test"))
    started = time.time()
    micro = first_micro_batch(exp, device)
    # the runner takes in what the trial leaves in its spool: a held store does not lengthen the
    # trial, and a store deleted under it does not stop it (store/spool.py)
    spool: Any = (Spool(job.store, tag=f"trial{job.number}", keep_when_gone=True, final_wait=1.0)
                  if rank() == 0 else _NoSpool())
    try:
        for attempt in range(exp.train.max_oom_retries + 1):
            try:
                result = once(job, exp, micro, attempt, spool, progress, rows)
                break
            except Exception as error:
                if not _is_oom(error):
                    raise
                shutil.rmtree(out / "checkpoints", ignore_errors=True)
                gc.collect()
                if device == "cuda":
                    import torch

                    torch.cuda.empty_cache()
                if micro == 1 or attempt == exp.train.max_oom_retries:
                    result = TrialResult("failed", fail_reason="oom", info={"micro_batch": micro},
                                         error=f"out of memory at micro-batch {micro} after "
                                               f"{attempt + 1} attempts: {error}")
                    break
                progress("oom", {"micro_batch": micro, "next": micro // 2})
                micro //= 2  # same effective batch: accumulation doubles
        hours = (time.time() - started) / 3600
        devices = _world() if device == "cuda" else 1
        result.info.update({
            "peak_memory": _peak_memory(device), "disk_bytes": _folder_bytes(out / "best"),
            "cost": hours * devices * exp.resources.price_per_hour, "device": device})
        return result
    finally:
        spool.close()
