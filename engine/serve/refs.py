"""Model refs (`base`, `best`, `trial:N`: engine.refs) → a loaded model and tokenizer, ready to generate.
The `base` of a dpo stage is the trial it started from.

A trial's best checkpoint is full weights or an adapter on the base model (its manifest names
the base); adapters of several trials that share a base can be loaded onto one copy of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunelab.engine.errors import TrainError
from tunelab.engine.objectives import PREFERENCE_STAGES
from tunelab.engine.refs import ModelRef
from tunelab.engine.spec import Experiment
from tunelab.store import TrialRecord, best_trial, experiment_spec, list_trials, require_experiment


@dataclass(frozen=True)
class ModelSource:
    ref: str  # base | trial:N
    base: str  # hub id or folder of the base model
    weights: str | None  # a trial's best/ folder (None for the base)
    adapter: bool
    experiment: Experiment


def resolve(store: Path, experiment: str, ref: str | ModelRef) -> ModelSource:
    """The model `ref` names in `experiment`: base, best, trial:N or N. A trial of another
    experiment is refused: its `trial:N` would name a trial of this one in the store's rows
    (a judge reads `EXPERIMENT:N` itself, with `ModelRef.of`)."""
    parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
    if parsed.experiment not in (None, experiment):
        raise TrainError(f"{parsed}: here a model is one of {experiment} (base, best, trial:N "
                         "or N)", "unknown model")
    parsed = parsed.of(experiment)[1]
    record = require_experiment(store, experiment)
    trials = list_trials(store, experiment)
    if parsed.kind == "best":
        found = best_trial(trials, record.direction)
        if found is None:
            raise TrainError(f"{experiment} has no complete trial yet", "no best trial")
        parsed = ModelRef.trial(found.number)
    spec = Experiment.model_validate(experiment_spec(store, experiment))
    if spec.method.head == "classification":
        raise TrainError(f"{experiment} trains a classifier: it answers a text with a label, "
                         "not in words; its samples and confusion matrix are in the trial screen, "
                         "and `tunelab export` ships it")
    if parsed.kind == "base" and spec.method.stage in PREFERENCE_STAGES:  # from its parent
        name, which = spec.method.parent  # best or N: a ref of the parent experiment
        return replace(resolve(store, name, which), ref="base")
    if parsed.kind == "base":
        for t in trials:  # any trial's manifest names the base the trials started from
            manifest = Path(t.artifact_dir or "") / "manifest.json"
            if manifest.exists():
                return ModelSource("base", json.loads(manifest.read_text())["base"], None,
                                   False, spec)
        if spec.base_model.base:
            return ModelSource("base", spec.base_model.base, None, False, spec)
        raise TrainError(f"{experiment}: the scratch base model is only known from a trial's "
                         "manifest; run a trial first", "no base model")
    if parsed.kind != "trial" or parsed.number is None:
        raise TrainError(f"{parsed}: a model of {experiment} is base, best, trial:N or N",
                         "unknown model")
    number = parsed.number
    trial = next((t for t in trials if t.number == number), None)
    if trial is None or trial.state != "complete":
        raise TrainError(f"{experiment} has no complete trial {number}", "unknown model")
    folder = kept_checkpoint(experiment, trial)
    best = folder / "best"
    manifest = json.loads((folder / "manifest.json").read_text())
    exp = Experiment.model_validate(json.loads((folder / "experiment.json").read_text()))
    if exp.method.stage == "reward":
        raise TrainError(f"trial {number} of {experiment} is a reward model: it scores answers "
                         "and writes none (`tunelab review NAME --reward "
                         f"{experiment}:{number}` shows its verdict after each vote)")
    return ModelSource(str(parsed), manifest["base"], str(best),
                       (best / "adapter_config.json").exists(), exp)


def kept_checkpoint(experiment: str, trial: TrialRecord) -> Path:
    """The folder of a trial whose best checkpoint is kept (best/, experiment.json and
    manifest.json in it), or a TrainError that says what is missing and why it may be."""
    folder = Path(trial.artifact_dir or "")
    if not trial.artifact_dir or not folder.is_dir():
        raise TrainError(f"trial {trial.number} of {experiment}: its folder {folder} is gone "
                         "(deleted with the runs folder?), and its checkpoint with it; train it "
                         f"again with `tunelab rerun {experiment} {trial.number}`", "no checkpoint")
    if not (folder / "best").is_dir():
        why = ("removed by `tunelab gc`?" if trial.state == "complete"
               else f"it is {trial.state}: only complete trials keep one")
        raise TrainError(f"trial {trial.number} of {experiment} kept no checkpoint at "
                         f"{folder / 'best'} ({why})", "no checkpoint")
    for name in ("experiment.json", "manifest.json"):
        if not (folder / name).is_file():
            raise TrainError(f"trial {trial.number} of {experiment}: {folder / name} is missing, "
                             "so its checkpoint cannot be loaded as it was trained",
                             "no checkpoint")
    return folder


def adapter_name(source: ModelSource) -> str:
    """The name a trial's adapter gets on the shared base (peft adapter names take no colon)."""
    return source.ref.replace(":", "_")


class ModelPool:
    """Loads each base once; adapters of trials on the same base are added to it by name
    (peft multi-adapter) and switched, instead of loading a full model per trial."""

    def __init__(self) -> None:
        self._bases: dict[str, Any] = {}
        self._full: dict[str, Any] = {}
        self._tokenizers: dict[str, Any] = {}

    def get(self, source: ModelSource) -> tuple[Any, Any]:
        from tunelab.engine.train import model as models

        exp = source.experiment
        if source.weights is None or not source.adapter:
            key = source.weights or source.base
            if key not in self._full:
                self._full[key] = models.load_model(key, exp)
                self._tokenizers[key] = models.load_tokenizer(key, exp)
            return self._full[key], self._tokenizers[key]
        from peft import PeftModel

        name = adapter_name(source)
        holder = self._bases.get(source.base)
        if holder is None:
            base = models.load_model(source.base, exp)
            holder = PeftModel.from_pretrained(base, source.weights, adapter_name=name)
            self._bases[source.base] = holder
            self._tokenizers[source.weights] = models.load_tokenizer(source.weights, exp)
        elif name not in holder.peft_config:
            holder.load_adapter(source.weights, adapter_name=name)
            self._tokenizers[source.weights] = models.load_tokenizer(source.weights, exp)
        holder.set_adapter(name)
        return holder, self._tokenizers[source.weights]
