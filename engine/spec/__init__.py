"""The experiment file: parsed with tomllib, validated once by strict pydantic models, then frozen.

Every mistake is reported with the file, the line, the dotted key, what was found
and what is expected; misspelled keys get the closest valid key. All mistakes of
a file are collected in one pass.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tunelab.engine.errors import SpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScratchModel(_Strict):
    """A randomly initialised model with a tokenizer trained on the training data."""

    arch: Literal["llama", "auto"] = "llama"  # auto: the architecture of `like`, shrunk
    like: str | None = None  # a hub id or folder whose config and tokenizer to copy (smoke runs)
    hidden_size: int = Field(128, ge=8)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int | None = Field(None, ge=8)
    vocab_size: int = Field(512, ge=64, le=65536)
    max_position: int = Field(512, ge=16)


class ModelSpec(_Strict):
    base: str | None = None  # hub id or local folder
    scratch: ScratchModel | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = None  # a Jinja template, or a file holding one, to use instead

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.base is None) == (self.scratch is None):
            raise ValueError("give exactly one of model.base (hub id or folder) or model.scratch")
        return self


class SplitSpec(_Strict):
    train: float = Field(0.8, gt=0, lt=1)
    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, they sum to {total:g}")
        return self


class ColumnsSpec(_Strict):
    """Where the fields of a format are in the source, when its columns are named otherwise."""

    prompt: str | None = None  # prompt_completion
    completion: str | None = None
    messages: str | None = None  # messages and sharegpt: the list of turns
    instruction: str | None = None  # alpaca
    input: str | None = None
    output: str | None = None
    text: str | None = None  # text
    system: str | None = None  # any format: a column holding a system prompt


class RulesSpec(_Strict):
    """The file's own rules; a row that breaks one is dropped and reported."""

    min_prompt_chars: int = Field(0, ge=0)
    max_prompt_chars: int | None = Field(None, ge=1)
    min_completion_chars: int = Field(1, ge=0)
    max_completion_chars: int | None = Field(None, ge=1)
    prompt_prefix: str | None = None  # every prompt must start with this (a consistent template)
    completion_prefix: str | None = None
    banned_words: list[str] = []  # case-insensitive, whole words or phrases, in any turn


class MixSpec(_Strict):
    """Another source mixed into the training split (general data against forgetting, other tasks)."""

    source: str | list[str]  # files (relative to the experiment file) or "hub:owner/name"
    fraction: float = Field(gt=0, lt=1)  # its share of the final training split
    format: Literal["auto", "prompt_completion", "messages", "alpaca", "sharegpt", "text"] = "auto"
    columns: ColumnsSpec = ColumnsSpec()


class DataSpec(_Strict):
    train: str | list[str]  # files (relative to the experiment file) or "hub:owner/name[?split=…]"
    validation: str | list[str] | None = None  # explicit files override the split
    test: str | list[str] | None = None
    format: Literal["auto", "prompt_completion", "messages", "alpaca", "sharegpt", "text"] = "auto"
    columns: ColumnsSpec = ColumnsSpec()
    template: Literal["auto", "model", "plain", "chatml", "alpaca"] = "auto"
    split: SplitSpec = SplitSpec()
    dedupe: Literal["none", "exact", "near"] = "near"
    near_threshold: float = Field(0.85, gt=0, le=1)  # estimated Jaccard of word 3-grams
    min_examples: int = Field(100, ge=1)
    force: bool = False  # go on with fewer than min_examples
    too_long: Literal["drop", "truncate"] = "drop"  # rows over train.max_length tokens
    rules: RulesSpec = RulesSpec()
    mix: list[MixSpec] = []
    order: Literal["shuffle", "length", "difficulty"] = "shuffle"  # curriculum: easy first
    difficulty_column: str | None = None  # for order = "difficulty"

    @model_validator(mode="after")
    def _consistent(self) -> DataSpec:
        if sum(m.fraction for m in self.mix) >= 1:
            raise ValueError("the fractions of data.mix must sum to less than 1")
        if self.order == "difficulty" and not self.difficulty_column:
            raise ValueError('order = "difficulty" needs data.difficulty_column')
        return self

    def sources(self, split: str = "train") -> list[str]:
        value = getattr(self, split)
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    def missing_files(self, folder: Path) -> list[tuple[str, Path]]:
        """(dotted key, path) of each local source that matches no file; hub ids are not checked."""
        named = [(f"data.{s}", t) for s in ("train", "validation", "test") for t in self.sources(s)]
        for i, m in enumerate(self.mix):
            named += [(f"data.mix.{i}.source", t) for t in ([m.source] if isinstance(m.source, str)
                                                              else m.source)]
        missing = []
        for key, text in named:
            if text.startswith("hub:"):
                continue
            path = Path(text).expanduser()
            path = path if path.is_absolute() else folder / path
            found = bool(glob.glob(str(path))) if any(c in text for c in "*?[") else path.exists()
            if not found:
                missing.append((key, path))
        return missing


PARENT = re.compile(r"^([a-z0-9][a-z0-9_-]*):(best|[0-9]+)$")  # method.from: EXPERIMENT:best|N
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair",
              "sppo_hard", "apo_zero", "apo_down", "sigmoid_norm")


class MethodSpec(_Strict):
    # `from` is a Python keyword: the field is from_, the key in the file (and in dumps) is from
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)

    stage: Literal["sft", "dpo"] = "sft"  # dpo: preference tuning of an SFT trial (train_dpo.py)
    kind: Literal["full", "lora", "qlora", "prefix"] = "lora"
    # LoRA and QLoRA
    r: int = Field(16, ge=1, le=1024)
    alpha_ratio: float = Field(2.0, gt=0)  # lora_alpha = r * alpha_ratio
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    use_dora: bool = False
    # QLoRA: the 4-bit quantisation of the frozen base
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # prefix tuning
    num_virtual_tokens: int = Field(20, ge=1, le=512)
    # stage = "dpo": where it starts, what it learns from, how (TRL's DPOTrainer)
    from_: str | None = Field(None, alias="from")  # "EXPERIMENT:best" or "EXPERIMENT:N"
    preferences: str | None = None  # "review:NAME" (a review or an arena) or a JSONL file
    beta: float = Field(0.1, gt=0)  # how far from the parent: higher stays closer
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair",
                       "sppo_hard", "apo_zero", "apo_down", "sigmoid_norm"] = "sigmoid"
    heldout: float = Field(0.2, gt=0, lt=1)  # share of the pairs kept out to measure accuracy
    min_pairs: int = Field(32, ge=2)  # usable pairs (decisive votes) below which a run refuses

    @model_validator(mode="after")
    def _stage_keys(self) -> MethodSpec:
        if self.stage == "sft":
            for key in ("from_", "preferences"):
                if getattr(self, key) is not None:
                    name = key.rstrip("_")
                    raise ValueError(f"method.{name} is read only by a preference stage: add "
                                     f"stage = \"dpo\" to [method], or remove {name}")
            return self
        if self.from_ is None:
            raise ValueError('method.from: a dpo stage starts from a trial of a supervised '
                             'experiment: from = "EXPERIMENT:best" or "EXPERIMENT:N"')
        if not PARENT.match(self.from_):
            raise ValueError(f'method.from: {self.from_!r} is not EXPERIMENT:best or '
                             'EXPERIMENT:N (e.g. "quickstart:best", "quickstart:7")')
        if self.preferences is None:
            raise ValueError('method.preferences: a dpo stage learns from preference pairs: '
                             'preferences = "review:NAME" or a JSONL file of prompt/chosen/rejected')
        return self

    @property
    def parent(self) -> tuple[str, str]:
        """(experiment, "best" or the trial number) of method.from."""
        found = PARENT.match(self.from_ or "")
        assert found is not None, "only a dpo stage has a parent"
        return found.group(1), found.group(2)


# Keys of [method] that only some kinds read; when method.kind is searched they are
# sampled only in the trials of those kinds.
ADAPTER_KINDS = {"lora", "qlora"}
METHOD_KEYS_OF_KIND: dict[str, set[str]] = {
    "r": ADAPTER_KINDS,
    "alpha_ratio": ADAPTER_KINDS,
    "dropout": ADAPTER_KINDS,
    "target_modules": ADAPTER_KINDS,
    "use_dora": ADAPTER_KINDS,
    "quant_type": {"qlora"},
    "double_quant": {"qlora"},
    "compute_dtype": {"qlora"},
    "num_virtual_tokens": {"prefix"},
}

# Learning rates from practice: full fine-tuning moves every weight and wants a small step;
# adapters start from zero and want a larger one; prefix tuning larger still.
DEFAULT_LEARNING_RATE = {"full": 2e-5, "lora": 2e-4, "qlora": 2e-4, "prefix": 3e-3}
# Preference tuning moves a model that already answers well, and DPO's loss is steep: steps
# an order of magnitude or two below supervised ones (TRL's default is 1e-6 for full weights).
DPO_LEARNING_RATE = {"full": 1e-6, "lora": 5e-6, "qlora": 5e-6, "prefix": 1e-4}
# What a dpo stage computes besides the losses: on the held-out pairs (split "preferences")
PREFERENCE_METRICS = ("reward_accuracy", "reward_margin", "preference_accuracy")


class TrainSpec(_Strict):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)  # effective: micro-batch x accumulation
    micro_batch_size: int | Literal["auto"] = "auto"
    learning_rate: float | None = Field(None, gt=0, lt=1)  # None: the method's default
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(512, ge=8)
    seed: int = 42
    early_stopping_patience: int | None = Field(2, ge=1)  # evaluations without improvement
    logging_steps: int = Field(5, ge=1)
    eval_every: Literal["epoch"] | int = "epoch"  # or a number of optimizer steps
    gradient_checkpointing: bool = False  # trades compute for memory on long sequences
    max_oom_retries: int = Field(3, ge=0, le=8)  # halvings of the micro-batch on out-of-memory
    # examples packed into rows of max_length tokens, kept apart by position ids (batch_size then
    # counts packed rows); no padding computed on length-skewed data
    packing: bool = False

    @model_validator(mode="after")
    def _micro_divides(self) -> TrainSpec:
        micro = self.micro_batch_size
        if micro != "auto" and self.batch_size % int(micro):
            raise ValueError(f"micro_batch_size {micro} must divide batch_size {self.batch_size}")
        if isinstance(self.eval_every, int) and self.eval_every < 1:
            raise ValueError("eval_every must be \"epoch\" or a number of steps >= 1")
        return self


class RangeSpec(_Strict):
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class PrunerSpec(_Strict):
    """`[search.pruner]`: when a trial whose validation loss lags is stopped early. Steps are
    evaluations (one per epoch by default)."""

    kind: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    startup_trials: int = Field(5, ge=0)  # median/percentile: trials that finish before any is pruned
    warmup_epochs: int = Field(0, ge=0)  # median/percentile: evaluations before a trial may be pruned
    percentile: float = Field(25.0, gt=0, lt=100)  # percentile: kept if in the best PERCENTILE %
    min_resource: int | Literal["auto"] = "auto"  # halving/hyperband: evaluations before the first rung
    max_resource: int | Literal["auto"] = "auto"  # hyperband: evaluations of a full trial
    reduction_factor: int = Field(3, ge=2)  # halving/hyperband: 1/FACTOR of trials go up a rung


SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
MULTI_OBJECTIVE_SAMPLERS = ("nsga2", "random", "tpe", "gp")
EXTRA_OBJECTIVES = ("cost", "duration_s")  # measured by the runner, not evaluated


class SearchSpec(_Strict):
    trials: int = Field(8, ge=1)  # finished (complete or pruned) trials to reach
    timeout: float | None = Field(None, gt=0)  # seconds; no new trial starts after it
    sampler: Literal["tpe", "random", "grid", "cmaes", "gp", "nsga2"] = "tpe"
    pruner: Literal["median", "percentile", "successive_halving", "hyperband", "none"] | PrunerSpec = "median"
    objective: str = "eval_loss"  # eval_loss, or a metric of [eval] metrics (on validation)
    direction: Literal["minimize", "maximize"] = "minimize"
    # several objectives (a Pareto front): e.g. ["eval_loss", "cost"]; the first is `objective`
    objectives: list[str] = []
    directions: list[Literal["minimize", "maximize"]] = []  # one per objective
    seed: int = 0
    workers: int | None = Field(None, ge=1)  # trials at once on this machine; None: one per device
    space: dict[str, RangeSpec | list[Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _first_objective_is_the_objective(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("objectives"):
            return data
        objectives = list(data["objectives"])
        directions = list(data.get("directions") or [
            "minimize" if o in ("eval_loss", *LOSS_METRICS, *EXTRA_OBJECTIVES) else "maximize"
            for o in objectives])
        if len(directions) != len(objectives):
            raise ValueError(f"search.directions has {len(directions)} entries for "
                             f"{len(objectives)} objectives")
        if len(set(objectives)) != len(objectives):
            raise ValueError("search.objectives names an objective twice")
        for key, first in (("objective", objectives[0]), ("direction", directions[0])):
            if key in data and data[key] != first:
                raise ValueError(f"search.{key} is {data[key]!r} but search.{key}s starts with "
                                 f"{first!r}; give only search.{key}s")
        return {**data, "objectives": objectives, "directions": directions,
                "objective": objectives[0], "direction": directions[0]}

    @model_validator(mode="after")
    def _sampler_fits(self) -> SearchSpec:
        if len(self.objectives) > 1 and self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
            raise ValueError(f"the {self.sampler} sampler takes one objective; for several use "
                             f"{', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
        if self.sampler == "grid":
            for name, dim in self.space.items():
                if not isinstance(dim, list) and dim.step is None:
                    raise ValueError(f"the grid sampler needs a list or a step for {name}")
        return self

    @property
    def pruner_spec(self) -> PrunerSpec:
        return self.pruner if isinstance(self.pruner, PrunerSpec) else PrunerSpec(kind=self.pruner)

    @property
    def all_objectives(self) -> list[str]:
        return self.objectives or [self.objective]

    @property
    def all_directions(self) -> list[str]:
        return self.directions or [self.direction]


GENERATION_METRICS = ("exact_match", "accuracy", "macro_f1", "bleu", "chrf", "rouge_l", "contains")
LOSS_METRICS = ("loss", "perplexity")


class EvalSpec(_Strict):
    baseline: bool = True  # evaluate the base model once, before the trials
    metrics: list[Literal["perplexity", "exact_match", "accuracy", "macro_f1", "bleu", "chrf",
                          "rouge_l", "contains"]] = ["perplexity"]
    samples: int = Field(20, ge=0)  # generated outputs kept per model, for review
    max_new_tokens: int = Field(64, ge=1)
    max_examples: int | None = Field(200, ge=1)  # test rows generated for metrics (None: all)
    general: str | None = None  # held-out general text (JSONL with "text"): forgetting check


CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


class ResourcesSpec(_Strict):
    # the devices trials may use; "auto": every visible GPU (none on a CPU machine)
    devices: Literal["auto"] | list[int] = "auto"
    # devices per trial; > 1 launches the trial with torchrun (DDP). On a CPU machine it is the
    # number of processes of the trial (gloo backend).
    gpus_per_trial: int = Field(1, ge=1)
    price_per_hour: float = Field(0.0, ge=0)  # per device: the estimated cost of each trial


class Experiment(_Strict):
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
                raise ValueError("model.base or model.scratch: required: the experiment has no "
                                 "[model] section")
            if self.data is None:
                raise ValueError("data.train: required: the experiment has no [data] section")
        computed = self.computed_metrics
        if self.method.stage == "dpo":
            searched = [k for k in ("method.beta", "method.loss_type") if k in self.search.space]
            if searched and self.search.objective in ("eval_loss", "loss"):
                raise ValueError(
                    f"search.objective: the DPO loss is not comparable across {searched[0]} "
                    "values (each beta or loss type scales it differently), so eval_loss cannot "
                    'choose between them: use objective = "reward_accuracy" with direction = '
                    '"maximize", or search neither')
        if self.search.objective not in computed:
            raise ValueError(
                f"search.objective {self.search.objective!r} is never computed; use eval_loss "
                f"or add it to eval.metrics (computed: {', '.join(sorted(computed))})")
        for metric, condition in self.success.items():
            if metric not in computed:
                raise ValueError(f"success.{metric}: {metric!r} is never computed; add it to "
                                 f"eval.metrics (computed: {', '.join(sorted(computed))})")
            if not CONDITION.match(condition):
                raise ValueError(f"success.{metric}: {condition!r} is not a condition; "
                                 "write e.g. \">= 0.9\" or \"< 1.5\"")
        return self

    @property
    def computed_metrics(self) -> set[str]:
        """What evaluation computes, so what an objective or a success criterion may name."""
        found = {"eval_loss", *LOSS_METRICS, *self.eval.metrics}
        return found | set(PREFERENCE_METRICS) if self.method.stage == "dpo" else found

    @property
    def learning_rate(self) -> float:
        defaults = DPO_LEARNING_RATE if self.method.stage == "dpo" else DEFAULT_LEARNING_RATE
        return self.train.learning_rate or defaults[self.method.kind]

    @property
    def base_model(self) -> ModelSpec:
        """[model]: the file's, or for a dpo stage its parent's (once resolved)."""
        if self.model is None:
            raise SpecError(f"{self.name}: the dpo stage's parent is not resolved yet (its "
                            "model comes from method.from)")
        return self.model

    @property
    def dataset(self) -> DataSpec:
        """[data]: the file's, or for a dpo stage its parent's (once resolved)."""
        if self.data is None:
            raise SpecError(f"{self.name}: the dpo stage's parent is not resolved yet (its "
                            "data comes from method.from)")
        return self.data


class LoadedSpec(_Strict):
    """A validated experiment, with where it came from."""

    experiment: Experiment
    path: Path
    raw: dict[str, Any]  # the file's own values, overrides applied: the base for every trial

    @property
    def folder(self) -> Path:
        return self.path.parent

    def data_path(self) -> Path:
        """The first training source (a file or folder; see data.sources for all of them)."""
        p = Path(self.experiment.dataset.sources("train")[0]).expanduser()
        return p if p.is_absolute() else self.folder / p

    def renamed(self, name: str) -> LoadedSpec:
        raw = set_path(self.raw, "name", name)
        return LoadedSpec(experiment=Experiment.model_validate(raw), path=self.path, raw=raw)

    def smoke(self) -> LoadedSpec:
        """The same pipeline in under a minute on a CPU: a tiny model of the same family, one
        short epoch, two trials, a separate study (`NAME-smoke`) so the real one stays clean."""
        raw = self.raw
        if self.experiment.method.stage == "dpo":  # the parent's model: only do less of it
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


# ---------------------------------------------------------------- locating keys


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> line number, for tables, keys and inline-table keys of a TOML text."""
    lines: dict[str, int] = {}
    prefix = ""
    key = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_.-]+)'
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(rf"^\[\[?\s*({key}(?:\s*\.\s*{key})*)\s*\]\]?", stripped)
        if header:
            prefix = ".".join(_unquote(p) for p in _split_dotted(header.group(1)))
            lines.setdefault(prefix, number)
            continue
        assign = re.match(rf"^({key}(?:\s*\.\s*{key})*)\s*=", stripped)
        if assign:
            dotted = ".".join(_unquote(p) for p in _split_dotted(assign.group(1)))
            full = f"{prefix}.{dotted}" if prefix else dotted
            lines.setdefault(full, number)
            for inner in re.finditer(rf"[{{,]\s*({key})\s*=", stripped[assign.end():]):
                lines.setdefault(f"{full}.{_unquote(inner.group(1))}", number)
    return lines


def _split_dotted(text: str) -> list[str]:
    return [p.strip() for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text)]


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1] if part[:1] in "\"'" and part[-1:] == part[:1] else part


def _line_of(lines: dict[str, int], dotted: str) -> int | None:
    parts = dotted.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None


# ---------------------------------------------------------------- schema walking


def _model_at(parts: list[str]) -> type[BaseModel] | None:
    """The pydantic model that holds the last part of a dotted path, if the path is in the schema."""
    current: type[BaseModel] = Experiment
    for part in parts[:-1]:
        field = current.model_fields.get(part)
        if field is None:
            return None
        sub = _submodel(field.annotation)
        if sub is None:
            return None
        current = sub
    return current


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _close_match(model: type[BaseModel] | None, name: str) -> str | None:
    if model is None:
        return None
    found = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
    return found[0] if found else None


def path_exists(dotted: str) -> bool:
    parts = dotted.split(".")
    holder = _model_at(parts)
    return holder is not None and parts[-1] in holder.model_fields


def field_is_int(dotted: str) -> bool:
    """True when the key holds whole numbers (its range is sampled as integers)."""
    parts = dotted.split(".")
    holder = _model_at(parts)
    if holder is None or parts[-1] not in holder.model_fields:
        return False
    annotation = holder.model_fields[parts[-1]].annotation
    kinds = set(getattr(annotation, "__args__", ())) or {annotation}
    return int in kinds and float not in kinds


# ---------------------------------------------------------------- loading


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the dotted key set to value (tables created as needed)."""
    out = json.loads(json.dumps(raw))
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
    return out


def _describe(error: dict[str, Any], file: Path, lines: dict[str, int]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal["))]
    # pydantic puts union member names in loc ("RangeSpec", "list[any]"); they are not keys
    loc = [p for p in loc if not re.match(r"^(RangeSpec|list\[|PrunerSpec|str|int)", p)]
    dotted = ".".join(loc) or "(top level)"
    line = _line_of(lines, dotted)
    where = f"{file}:{line}" if line else f"{file}"
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _close_match(_model_at(loc), loc[-1]) if loc else None
        known = _model_at(loc)
        options = ", ".join(known.model_fields) if known is not None else ""
        text = f"unknown key {dotted!r}"
        text += f"; did you mean {'.'.join([*loc[:-1], hint])!r}?" if hint else f" (valid: {options})"
        return f"{where}: {text}"
    if kind == "missing":
        return f"{where}: {dotted}: required key is missing"
    found = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    named = re.match(r"^([a-z_]+(?:\.[A-Za-z0-9_]+)+)[: ]", message)
    if not loc and named:  # a check across sections names its own key: point at its line
        line = _line_of(lines, named.group(1))
        where = f"{file}:{line}" if line else f"{file}"
        return f"{where}: {message}"
    shown = json.dumps(found) if isinstance(found, (str, int, float, bool)) else None
    return f"{where}: {dotted}: {message}" + (f" (found {shown})" if shown is not None else "")


def _validate(raw: dict[str, Any], file: Path, lines: dict[str, int]) -> tuple[Experiment | None, list[str]]:
    try:
        return Experiment.model_validate(raw), []
    except ValidationError as error:
        seen: list[str] = []
        for e in error.errors():
            text = _describe(dict(e), file, lines)
            if text not in seen:
                seen.append(text)
        return None, seen


def parse_override(text: str) -> tuple[str, Any]:
    """`train.epochs=2` -> ("train.epochs", 2); the value is read as TOML, else as a string."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=2")
    key, value = text.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def _check_space(exp: Experiment, raw: dict[str, Any], file: Path, lines: dict[str, int]) -> list[str]:
    errors = []
    for dotted, dimension in exp.search.space.items():
        where = f"{file}:{_line_of(lines, 'search.space.' + dotted) or '?'}"
        if not path_exists(dotted) or dotted.startswith("search."):
            parts = dotted.split(".")
            hint = _close_match(_model_at(parts), parts[-1])
            guess = f"; did you mean {'.'.join([*parts[:-1], hint])!r}?" if hint else ""
            errors.append(f"{where}: search.space: {dotted!r} is not a key of the experiment{guess}")
            continue
        if isinstance(dimension, list) and not dimension:
            errors.append(f"{where}: search.space.{dotted}: the list of choices is empty")
            continue
        candidates = dimension if isinstance(dimension, list) else [dimension.low, dimension.high]
        for value in candidates:
            _, problems = _validate(set_path(raw, dotted, value), file, lines)
            for p in problems:
                errors.append(f"{where}: search.space.{dotted}: the value {value!r} is not valid "
                              f"here: {p.split(': ', 2)[-1]}")
    return errors


def _dpo_sections(raw: dict[str, Any], file: Path, lines: dict[str, int],
                  store: Path | None) -> tuple[dict[str, Any], list[str]]:
    """A dpo stage's file names its parent instead of [model] and [data]: with a store, the
    parent's sections are filled in and `best` is pinned to its trial number (so a later, better
    parent makes a new study, not a silent mix); the preference file becomes absolute."""
    errors = [f"{file}:{_line_of(lines, section) or '?'}: [{section}]: a dpo stage uses its "
              f"parent's {section} (method.from); remove this section"
              for section in ("model", "data") if section in raw]
    method = raw.get("method", {})
    preferences = method.get("preferences")
    if isinstance(preferences, str) and not preferences.startswith(("review:", "arena:")):
        found = (file.parent / Path(preferences).expanduser()).resolve()
        if not found.is_file():
            errors.append(f"{file}:{_line_of(lines, 'method.preferences') or '?'}: "
                          f"method.preferences: no file at {found} (or write \"review:NAME\")")
        raw = set_path(raw, "method.preferences", str(found))
    if errors or store is None or not isinstance(method.get("from"), str):
        return raw, errors
    from tunelab.engine.data.preferences import resolve_parent

    try:
        return resolve_parent(raw, store), []
    except SpecError as error:
        return raw, [f"{file}:{_line_of(lines, 'method.from') or '?'}: method.from: {error}"]


def load_spec(path: str | Path, overrides: list[str] | None = None,
              store: str | Path | None = None) -> LoadedSpec:
    """Reads, validates and resolves an experiment file. Raises SpecError listing every mistake.
    A dpo stage is resolved against its parent in `store`; without one it is only checked."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"{file}: no such experiment file")
    text = file.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{file}: TOML syntax error: {error}") from error
    for item in overrides or []:
        key, value = parse_override(item)
        raw = set_path(raw, key, value)
    lines = _key_lines(text)
    early: list[str] = []
    if isinstance(raw.get("method"), dict) and raw["method"].get("stage") == "dpo":
        raw, early = _dpo_sections(raw, file, lines, Path(store) if store else None)
    experiment, errors = _validate(raw, file, lines)
    errors = early + errors
    if experiment is not None:
        errors += _check_space(experiment, raw, file, lines)
        sources = experiment.data if experiment.method.stage == "sft" else None
        for key, data in sources.missing_files(file.parent) if sources else []:
            errors.append(f"{file}:{_line_of(lines, key) or '?'}: {key}: no file at {data}")
        general = experiment.eval.general
        if general and not (file.parent / Path(general).expanduser()).exists():
            errors.append(f"{file}:{_line_of(lines, 'eval.general') or '?'}: eval.general: "
                          f"no file at {file.parent / general}")
    if errors or experiment is None:
        count = f"{len(errors)} mistake{'s' if len(errors) != 1 else ''}"
        raise SpecError("\n".join(errors), f"{file}: {count}")
    if experiment.eval.general:  # trials run elsewhere: paths become absolute here
        raw = set_path(raw, "eval.general", str((file.parent / experiment.eval.general).resolve()))
        experiment = Experiment.model_validate(raw)
    return LoadedSpec(experiment=experiment, path=file.resolve(), raw=raw)


def with_overrides(spec: LoadedSpec, values: dict[str, Any]) -> Experiment:
    """The experiment of one trial: the file's values with the sampled ones set."""
    raw = spec.raw
    for dotted, value in values.items():
        raw = set_path(raw, dotted, value)
    return Experiment.model_validate(raw)
