"""The whole experiment (its sections checked against each other) and a loaded file: where it
came from, the values it set, and the variants of it that a run needs (renamed, smoke, one
trial's)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import (
    CONDITION,
    EXTRA_OBJECTIVES,
    LOSS_METRICS,
    PREFERENCE,
    PREFERENCE_METRICS,
    PREFERENCE_STAGES,
)
from tunelab.engine.spec import measures
from tunelab.engine.spec.overrides import set_path
from tunelab.engine.spec.sections import (
    DEFAULT_LEARNING_RATE,
    DPO_LEARNING_RATE,
    REWARD_LEARNING_RATE,
    DataSpec,
    EvalSpec,
    MethodSpec,
    ModelSpec,
    ResourcesSpec,
    SearchSpec,
    StrictModel,
    TrainSpec,
)


def default_learning_rates(stage: str) -> dict[str, float]:
    """The learning rate of each method kind where the file gives none, for this stage."""
    if stage == "reward":
        return REWARD_LEARNING_RATE
    return DPO_LEARNING_RATE if stage in PREFERENCE_STAGES else DEFAULT_LEARNING_RATE


# how a stage is written in a sentence
STAGE_NAMES = {"sft": "SFT", "dpo": "DPO", "kto": "KTO", "reward": "reward-model", "orpo": "ORPO",
               "simpo": "SimPO"}

# a supervised stage's required sections (a dpo stage takes both from its parent)
NO_MODEL = "model.base or model.scratch: required: the experiment has no [model] section"
NO_DATA = "data.train: required: the experiment has no [data] section"


class Experiment(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    description: str = ""
    # a dpo stage's file has neither: they are its parent's, filled in when it is resolved
    model: ModelSpec | None = None
    data: DataSpec | None = None
    method: MethodSpec = MethodSpec()
    train: TrainSpec = TrainSpec()
    search: SearchSpec = SearchSpec()
    eval: EvalSpec = EvalSpec()
    success: dict[str, str] = {}  # metric -> condition, e.g. exact_match = ">= 0.9" (on test)
    resources: ResourcesSpec = ResourcesSpec()

    @model_validator(mode="after")
    def _objective_and_success_are_computed(self) -> Experiment:
        if self.method.stage == "sft":
            if self.model is None:
                raise ValueError(NO_MODEL)
            if self.data is None:
                raise ValueError(NO_DATA)
        for problem in measures.problems(self):
            raise ValueError(problem)
        computed = self.computed_metrics
        if self.method.stage in PREFERENCE_STAGES:
            searched = [k for k in ("method.beta", "method.loss_type", "method.simpo_gamma")
                        if k in self.search.space]
            if searched and self.search.objective in ("eval_loss", "loss"):
                raise ValueError(
                    f"search.objective: the {STAGE_NAMES[self.method.stage]} loss is not "
                    "comparable across "
                    f"{searched[0]} values (each scales it differently), so eval_loss cannot "
                    'choose between them: use objective = "reward_accuracy" with direction = '
                    '"maximize", or search neither')
        if not self.computes(self.search.objective) and self.search.objective != PREFERENCE:
            raise ValueError(
                f"search.objective {self.search.objective!r} is never computed; use eval_loss "
                f"or add it to eval.metrics (computed: {', '.join(sorted(computed))})")
        for name in self.search.all_objectives[1:]:  # the one rule for check and run
            if not self.computes(name) and name not in {*EXTRA_OBJECTIVES, PREFERENCE}:
                raise ValueError(f"search.objectives: {name!r} is never computed; use eval_loss, "
                                 "cost, duration_s or a metric that evaluation computes "
                                 f"(computed: {', '.join(sorted(computed))})")
        mistake = preference_mistake(self)
        if mistake:
            raise ValueError(mistake)
        for metric, condition in self.success.items():
            if not self.computes(metric):
                raise ValueError(f"success.{metric}: {metric!r} is never computed; add it to "
                                 f"eval.metrics (computed: {', '.join(sorted(computed))})")
            if not CONDITION.match(condition):
                raise ValueError(f"success.{metric}: {condition!r} is not a condition; "
                                 "write e.g. \">= 0.9\" or \"< 1.5\"")
        return self

    @property
    def computed_metrics(self) -> set[str]:
        """What evaluation computes, so what an objective or a success criterion may name (and
        the TASK:METRIC scores of [eval.harness]: see `computes`)."""
        if self.method.stage == "reward":  # a reward model writes nothing: its pairs only
            return {"eval_loss", "reward_accuracy", "reward_margin"}
        if self.method.head == "classification":  # a classifier's loss has no perplexity
            return {"eval_loss", "loss", *measures.measured(self)}
        found = {"eval_loss", *LOSS_METRICS, *self.eval.metrics, *measures.measured(self)}
        return found | set(PREFERENCE_METRICS) if self.method.stage in PREFERENCE_STAGES else found

    def computes(self, metric: str) -> bool:
        """Whether evaluation computes `metric` (a benchmark's TASK:METRIC once it runs)."""
        return metric in self.computed_metrics or measures.is_benchmark_score(self, metric)

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate or default_learning_rates(self.method.stage)[self.method.kind]

    @property
    def base_model(self) -> ModelSpec:
        """[model]: the file's, or for a dpo stage its parent's (once resolved)."""
        if self.model is None:
            raise SpecError(f"{self.name}: the {self.method.stage} stage's parent is not resolved "
                            "yet (its model comes from method.from)")
        return self.model

    @property
    def dataset(self) -> DataSpec:
        """[data]: the file's, or for a dpo stage its parent's (once resolved)."""
        if self.data is None:
            raise SpecError(f"{self.name}: the {self.method.stage} stage's parent is not resolved "
                            "yet (its data comes from method.from)")
        return self.data


def preference_mistake(exp: Experiment) -> str | None:
    """What keeps a sweep steered by votes (objective "preference") from running, or None: it
    is checked when the file loads, and again by the runner (engine.run.preference.check)."""
    search = exp.search
    if PREFERENCE not in search.all_objectives:
        return None
    if exp.eval.samples < 1:
        return ("eval.samples: search.objective = \"preference\" compares the trials' samples: "
                "set eval.samples to the prompts to vote on (e.g. 8)")
    if search.all_directions[search.all_objectives.index(PREFERENCE)] != "maximize":
        return ("search.direction: a preference rating is maximised (a higher rating won more "
                "votes); leave the direction out or write \"maximize\"")
    if not exp.eval.baseline:
        return ("eval.baseline: search.objective = \"preference\" compares the first trial with "
                "the base model: set eval.baseline = true")
    return None


class LoadedSpec(StrictModel):
    """A validated experiment, with where it came from."""

    experiment: Experiment
    path: Path
    raw: dict[str, Any]  # the file's own values, overrides applied: the base for every trial

    @property
    def folder(self) -> Path:
        return self.path.parent

    def renamed(self, name: str) -> LoadedSpec:
        raw = set_path(self.raw, "name", name)
        return LoadedSpec(experiment=Experiment.model_validate(raw), path=self.path, raw=raw)

    def smoke(self) -> LoadedSpec:
        """The same pipeline in under a minute on a CPU: a tiny model of the same family, one
        short epoch, two trials, a separate study (`NAME-smoke`) so the real one stays clean."""
        raw = self.raw
        if self.experiment.method.stage in PREFERENCE_STAGES:  # the parent's: only do less
            changes: dict[str, Any] = {
                "name": f"{self.experiment.name}-smoke"[:64], "train.epochs": 1,
                "train.logging_steps": 1, "search.trials": 2, "search.pruner": "none",
                "eval.samples": 4, "eval.max_examples": 8, "eval.max_new_tokens": 16}
            for key, value in changes.items():
                raw = set_path(raw, key, value)
            raw["search"].pop("timeout", None)
            return LoadedSpec(experiment=Experiment.model_validate(raw), path=self.path, raw=raw)
        model = raw.get("model", {})
        if "base" in model:
            tiny: dict[str, Any] = {"arch": "auto", "like": model["base"], "hidden_size": 64,
                                    "layers": 2, "heads": 4}
        else:
            tiny = {**model.get("scratch", {}), "hidden_size": 32, "layers": 1, "heads": 2}
        changes = {"name": f"{self.experiment.name}-smoke"[:64], "model.scratch": tiny,
                   "train.epochs": 1, "train.batch_size": 8, "train.micro_batch_size": "auto",
                   "train.logging_steps": 1, "search.trials": 2, "search.timeout": None,
                   "search.pruner": "none", "eval.samples": 4, "eval.max_examples": 8,
                   "eval.max_new_tokens": 16}
        for key, value in changes.items():
            raw = set_path(raw, key, value)
        raw["model"].pop("base", None)
        raw["search"].pop("timeout", None)
        return LoadedSpec(experiment=Experiment.model_validate(raw), path=self.path, raw=raw)

    def spec_hash(self) -> str:
        """What makes trials comparable: everything but the budget, the text and the hardware."""
        plain = self.experiment.model_dump(mode="json")
        plain.pop("description", None)
        plain.pop("resources", None)
        for key in ("trials", "timeout", "workers"):
            plain["search"].pop(key, None)
        text = json.dumps(plain, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_overrides(spec: LoadedSpec, values: dict[str, Any]) -> Experiment:
    """The experiment of one trial: the file's values with the sampled ones set."""
    raw = spec.raw
    for dotted, value in values.items():
        raw = set_path(raw, dotted, value)
    return Experiment.model_validate(raw)
