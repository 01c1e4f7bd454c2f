"""The supervised fine-tuning recipe: one trial, top to bottom: setup, train, evaluate, save.

The model learns the assistant turns of the prepared conversations with TRL's SFTTrainer (the
loss on the trained tokens alone; packed rows when train.packing). What every recipe shares
(the callbacks, the retries after out-of-memory, the manifest, the best checkpoint) is the
harness's: engine.train.trial.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import forgetting, tokens, trial
from tunelab.engine.train import model as models
from tunelab.engine.train.builders import load_for_method, peft_config, trainer_arguments
from tunelab.engine.train.callbacks import Recorder, trial_callbacks
from tunelab.engine.train.evaluate import evaluate_model
from tunelab.engine.train.example_losses import score_examples


def train_once(attempt: trial.Attempt) -> TrialResult:
    """One attempt at a supervised trial (the harness tries again at half the micro-batch)."""
    job, exp, rows = attempt.job, attempt.exp, attempt.rows

    # setup
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_for_method(job.base, exp)
    general_before = forgetting.before_training(model, tokenizer, exp)  # [eval.forgetting]
    recorder = Recorder(attempt)
    trainer = build_trainer(job, exp, model, tokenizer,
                            trial_callbacks(attempt, recorder, tokenizer, rows.validation),
                            rows.train, rows.validation, attempt.micro, cache=attempt.cache,
                            on_render=attempt.on_render)

    # train
    trained = trial.train(attempt, trainer, recorder)
    if trained.ended is not None:
        return trained.ended

    # evaluate the best checkpoint (the trainer loaded it back) on validation and test
    attempt.progress("evaluate", {})
    values, samples = evaluate_model(trainer, trainer.model, tokenizer, exp, rows.validation,
                                     rows.test, val_loss=trained.best, cache=attempt.cache,
                                     general_before=general_before)
    attempt.record(values, samples)
    score_examples(attempt, trainer, tokenizer)

    # save
    trial.save_best(trainer, tokenizer, attempt.out)
    return attempt.complete(trained, values)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def build_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any,
                  callbacks: list[Any], train_rows: list[dict[str, Any]],
                  eval_rows: list[dict[str, Any]], micro: int, cache: Path | None = None,
                  on_render: Any = None) -> Any:
    """The trainer of a supervised trial (and of the losses of an evaluation). With a cache
    folder, the rendered rows are kept there for the sweep's other trials (engine.train.tokens);
    on_render hears how many rows are rendered."""
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
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=tokens.rendered(eval_rows, tokenizer, cache, on_render),
        processing_class=tokenizer,
        peft_config=peft_config(exp),
        callbacks=callbacks,
    )
