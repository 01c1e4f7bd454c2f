"""The classification recipe (method.head = "classification", data.format = "label"): one trial,
top to bottom: setup, train, evaluate, save.

The base model gets a sequence-classification head (transformers' AutoModelForSequenceClassification:
the base's body, a new linear layer over its last token, drawn with train.seed so every trial and
the baseline start from the same head) and learns text -> label with a cross-entropy loss: all
its weights (kind = "full"), or LoRA adapters with the head trained in full (peft's
`modules_to_save`). The classes are every label of the splits, sorted (engine.data.labels).

It reports, on validation and test, the loss, the accuracy and the macro F1 (scikit-learn's
definitions: engine.train.confusion), the test split's confusion matrix, and samples (each test
text with its predicted and its true label: the Samples tab lists the misses first). The
validation loss picks the best checkpoint and feeds the pruner, as in every recipe; accuracy or
macro_f1 may be the objective. What every recipe shares is the harness's (engine.train.trial).

The baseline (`run_baseline`) is the base's body under the new, untrained head: a loss near
ln(classes) and chance accuracy, the yardstick of eval_loss; and with eval.baseline_shots the
base language model itself, prompted with examples to write the label (engine.train.fewshot):
whether a prompt already classifies well enough.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.engine.baselines import BASE
from tunelab.engine.data.labels import label_names, text_and_label
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.run.jobs import TrialJob, TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.train import fewshot, trial
from tunelab.engine.train import model as models
from tunelab.engine.train.builders import trainer_arguments
from tunelab.engine.train.callbacks import Recorder, trial_callbacks
from tunelab.engine.train.confusion import SPLIT, Confusion
from tunelab.store import EvaluationRow, Row

LABELS_FILE = "labels.json"  # in the trial folder: the class names, in class order (export reads it)


def load_classifier(ref: str, exp: Experiment, labels: list[str], tokenizer: Any) -> Any:
    """The base model (a folder, a hub id, a trial's full weights) with a classification head
    over `labels`; a new head is drawn with train.seed."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    _, dtype = models.device_and_dtype(exp)
    torch.manual_seed(exp.train.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        ref, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, dtype=dtype,
        trust_remote_code=exp.base_model.trust_remote_code, use_safetensors=True)
    # the head reads the last token that is not padding: the model must know which id pads
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def head_name(model: Any) -> str:
    """The head's module: `score` (Llama, Qwen, Mistral…) or `classifier` (BERT-like)."""
    return "score" if hasattr(model, "score") else "classifier"


def peft_config(exp: Experiment, model: Any) -> Any:
    """LoRA on the body with the head trained in full and saved with the adapter; None: full."""
    if exp.method.kind != "lora":
        return None
    from peft import LoraConfig

    method = exp.method
    return LoraConfig(r=method.r, lora_alpha=int(round(method.r * method.alpha_ratio)),
                      lora_dropout=method.dropout, target_modules=method.target_modules,
                      use_dora=method.use_dora, task_type="SEQ_CLS",
                      modules_to_save=[head_name(model)])


def encoded(rows: list[dict[str, Any]], tokenizer: Any, labels: list[str], max_length: int) -> Any:
    """The rows as a classifier reads them: token ids of the text, the class number."""
    import datasets

    pairs = [text_and_label(row) for row in rows]
    found = tokenizer([text for text, _ in pairs], truncation=True, max_length=max_length)
    index = {name: i for i, name in enumerate(labels)}
    return datasets.Dataset.from_dict({"input_ids": found["input_ids"],
                                       "attention_mask": found["attention_mask"],
                                       "labels": [index[label] for _, label in pairs]})


def _metrics(labels: list[str]) -> Any:
    """compute_metrics for the trainer: accuracy and macro F1 at each evaluation (curves)."""

    def compute(prediction: Any) -> dict[str, float]:
        found = confusion_of(labels, prediction.predictions, prediction.label_ids)
        return {"accuracy": found.accuracy, "macro_f1": found.macro_f1}

    return compute


def confusion_of(labels: list[str], logits: Any, truth: Any) -> Confusion:
    predicted = logits.argmax(-1)
    return Confusion.of(labels, [labels[int(i)] for i in truth], [labels[int(i)] for i in predicted])


def build_trainer(job: TrialJob, exp: Experiment, model: Any, tokenizer: Any, labels: list[str],
                  rows: trial.Rows, micro: int, callbacks: list[Any]) -> Any:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    train = encoded(rows.train, tokenizer, labels, exp.train.max_length)
    arguments = trainer_arguments(job, exp, len(train), micro)
    arguments.pop("max_length")  # the texts are cut when encoded
    config = peft_config(exp, model)
    if config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, config)
    return Trainer(model=model, args=TrainingArguments(**arguments, include_num_input_tokens_seen=True),
                   train_dataset=train,
                   eval_dataset=encoded(rows.validation, tokenizer, labels, exp.train.max_length),
                   data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                   compute_metrics=_metrics(labels), callbacks=callbacks)


def evaluate(trainer: Any, tokenizer: Any, exp: Experiment, labels: list[str], rows: trial.Rows,
             ) -> tuple[dict[str, float], Confusion | None, list[dict]]:
    """("split/name" -> value, the test split's confusion matrix, test samples) of the trainer's
    model (after training: the best checkpoint, loaded back)."""
    values: dict[str, float] = {}
    confusion = None
    samples: list[dict[str, Any]] = []
    for split, split_rows in (("validation", rows.validation), ("test", rows.test)):
        if not split_rows:
            continue
        found = trainer.predict(encoded(split_rows, tokenizer, labels, exp.train.max_length),
                                metric_key_prefix=split)
        matrix = confusion_of(labels, found.predictions, found.label_ids)
        values[f"{split}/loss"] = found.metrics[f"{split}_loss"]
        values[f"{split}/accuracy"] = matrix.accuracy
        values[f"{split}/macro_f1"] = matrix.macro_f1
        if split == "test":
            confusion = matrix
            predicted = found.predictions.argmax(-1)
            samples = [{"prompt": text, "output": labels[int(p)], "reference": label}
                       for (text, label), p in zip((text_and_label(r) for r in split_rows),
                                                   predicted, strict=True)][:exp.eval.samples]
    return values, confusion, samples


def confusion_events(exp: Experiment, ref: str, confusion: Confusion | None) -> list[Row]:
    import time

    if confusion is None:
        return []
    now = time.time()
    return [EvaluationRow(experiment=exp.name, model_ref=ref, split=SPLIT, name=name, value=count,
                          time=now) for name, count in confusion.cells().items()]


def train_once(attempt: trial.Attempt) -> TrialResult:
    """One attempt at a classification trial (the harness tries again at half the micro-batch)."""
    job, exp, rows = attempt.job, attempt.exp, attempt.rows

    # setup
    labels = label_names(rows.train, rows.validation, rows.test)
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_classifier(job.base, exp, labels, tokenizer)
    recorder = Recorder(attempt)
    trainer = build_trainer(job, exp, model, tokenizer, labels, rows, attempt.micro,
                            trial_callbacks(attempt, recorder, tokenizer, []))

    # train
    trained = trial.train(attempt, trainer, recorder)
    if trained.ended is not None:
        return trained.ended

    # evaluate the best checkpoint (the trainer loaded it back) on validation and test
    attempt.progress("evaluate", {})
    values, confusion, samples = evaluate(trainer, tokenizer, exp, labels, rows)
    attempt.record(values, samples)
    attempt.spool.write(confusion_events(exp, f"trial:{job.number}", confusion))

    # save: the weights or the adapter with its head, and the class names beside them
    trial.save_best(trainer, tokenizer, attempt.out)
    if trial.rank() == 0:
        (attempt.out / LABELS_FILE).write_text(json.dumps(labels) + "\n")
    return attempt.complete(trained, values)


def run_trial(job: TrialJob, progress: trial.Progress) -> TrialResult:
    return trial.run_trial(job, progress, train_once)


def measure_baseline(job: TrialJob, exp: Experiment, progress: Any,
                     ) -> tuple[dict[str, tuple[dict[str, float], list[dict]]], list[Row], int]:
    """The baseline of a classification experiment (see the module): (model ref -> (values,
    samples), the base's confusion rows, the base's parameters), for engine.run.baseline."""
    import gc

    rows = trial.Rows(*(read_rows(job.data[s]) if s in job.data else []
                        for s in ("train", "validation", "test")))
    labels = label_names(rows.train, rows.validation, rows.test)
    tokenizer = models.load_tokenizer(job.base, exp)
    model = load_classifier(job.base, exp, labels, tokenizer)
    trainer = build_trainer(job, exp, model, tokenizer, labels, rows, 8, [])
    progress("eval", {"what": "baseline"})
    values, confusion, samples = evaluate(trainer, tokenizer, exp, labels, rows)
    total, _ = models.count_parameters(model)
    del trainer, model
    gc.collect()
    measured = {BASE: (values, samples)}
    # the few-shot baseline writes the label: scored by the generation metrics of the same names
    prompted = exp.model_copy(update={"eval": exp.eval.model_copy(update={
        "metrics": ["accuracy", "macro_f1"]})})
    if fewshot.wanted(prompted):
        progress("eval", {"what": "few-shot baseline"})
        language_model = models.load_model(job.base, exp)
        ref, shot_values, shot_samples = fewshot.evaluate_fewshot(
            language_model, tokenizer, prompted, rows.train, rows.validation, rows.test)
        measured[ref] = (shot_values, shot_samples)
    return measured, confusion_events(exp, BASE, confusion), total


def labels_of(trial_folder: Path) -> list[str]:
    """The class names a classification trial saved (export and tests read them)."""
    return list(json.loads((trial_folder / LABELS_FILE).read_text()))
