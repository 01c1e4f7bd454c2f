"""The sections of an experiment file as strict, frozen pydantic models, with the defaults
that follow current fine-tuning practice where the file is silent."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from tunelab.engine.spec.search import (  # [search], re-exported: importers name it from here
    MULTI_OBJECTIVE_SAMPLERS,
    SAMPLERS,
    ChoiceSpec,
    Dimension,
    PrunerKind,
    PrunerSpec,
    RangeSpec,
    SearchSpec,
    When,
)
from tunelab.engine.spec.strict import SEED_MAX, StrictModel

MAX_ROW_BYTES = 1_000_000  # data.max_row_bytes's default (engine.data.sources reads by it)


class ScratchModel(StrictModel):
    """A randomly initialised model with a tokenizer trained on the training data."""

    arch: Literal["llama", "auto"] = "llama"  # auto: the architecture of `like`, shrunk
    like: str | None = None  # a hub id or folder whose config and tokenizer to copy (smoke runs)
    hidden_size: int = Field(128, ge=8)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int | None = Field(None, ge=8)
    vocab_size: int = Field(512, ge=64, le=65536)
    max_position: int = Field(512, ge=16)

    @model_validator(mode="after")
    def _heads_split_hidden(self) -> ScratchModel:
        # each head takes hidden_size / heads dimensions, and rotary position embeddings rotate
        # them in pairs: an odd or fractional head size fails when the model is built
        head = self.hidden_size / self.heads
        if head != int(head) or int(head) % 2:
            raise ValueError(f"model.scratch.hidden_size {self.hidden_size} must be an even "
                             f"number of dimensions per head: a multiple of 2 x heads "
                             f"({2 * self.heads})")
        return self


class ModelSpec(StrictModel):
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


class SplitSpec(StrictModel):
    train: float = Field(0.8, gt=0, lt=1)
    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, they sum to {total:g}")
        return self


class ColumnsSpec(StrictModel):
    """Where the fields of a format are in the source, when its columns are named otherwise."""

    prompt: str | None = None  # prompt_completion
    completion: str | None = None
    messages: str | None = None  # messages and sharegpt: the list of turns
    instruction: str | None = None  # alpaca
    input: str | None = None
    output: str | None = None
    text: str | None = None  # text and label
    # label: the class of the text. New keys are left out of dumps at their default, so that a
    # study run before they existed keeps its spec hash (and resumes)
    label: str | None = Field(None, exclude_if=lambda v: v is None)
    system: str | None = None  # any format: a column holding a system prompt


class RulesSpec(StrictModel):
    """The file's own rules; a row that breaks one is dropped and reported."""

    min_prompt_chars: int = Field(0, ge=0)
    max_prompt_chars: int | None = Field(None, ge=1)
    min_completion_chars: int = Field(1, ge=0)
    max_completion_chars: int | None = Field(None, ge=1)
    prompt_prefix: str | None = None  # every prompt must start with this (a consistent template)
    completion_prefix: str | None = None
    banned_words: list[str] = []  # case-insensitive, whole words or phrases, in any turn


class MixSpec(StrictModel):
    """Another source mixed into the training split (general data against forgetting, other tasks)."""

    source: str | list[str]  # files (relative to the experiment file) or "hub:owner/name"
    fraction: float = Field(gt=0, lt=1)  # its share of the final training split
    format: Literal["auto", "prompt_completion", "messages", "alpaca", "sharegpt", "text"] = "auto"
    columns: ColumnsSpec = ColumnsSpec()


class DataSpec(StrictModel):
    train: str | list[str]  # files (relative to the experiment file) or "hub:owner/name[?split=…]"
    validation: str | list[str] | None = None  # explicit files override the split
    test: str | list[str] | None = None
    # label: {"text": …, "label": …} (JSONL or CSV), for method.head = "classification" or a
    # model that writes the label; never detected by "auto" (a text column with a label column
    # would otherwise stop training as plain text)
    format: Literal["auto", "prompt_completion", "messages", "alpaca", "sharegpt", "text",
                    "label"] = "auto"
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
    # a row (a line of JSON lines, a CSV row, a record) larger than this is reported by its line
    # and skipped unread; left out of dumps at its default, so existing studies keep their hash
    max_row_bytes: int = Field(MAX_ROW_BYTES, ge=1_000,
                               exclude_if=lambda v: v == MAX_ROW_BYTES)

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


class MethodSpec(StrictModel):
    # `from` is a Python keyword: the field is from_, the key in the file (and in dumps) is from
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)

    # sft, or a stage that starts from an SFT trial and learns from votes (PREFERENCE_STAGES)
    stage: Literal["sft", "dpo", "kto", "reward", "orpo", "simpo"] = "sft"
    kind: Literal["full", "lora", "qlora", "prefix"] = "lora"
    # lm: the model writes its answer; classification: a sequence-classification head on the
    # base (data.format = "label"), trained fully or with LoRA (the head trained in full)
    head: Literal["lm", "classification"] = Field("lm", exclude_if=lambda v: v == "lm")
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
    min_pairs: int = Field(32, ge=2)  # usable pairs (a kto stage: examples) below which it refuses
    # dpo with loss_type robust or exo_pair: the share of votes taken to be flipped; or
    # "from-consistency": measured from the raters' swapped repeats (engine.data.rater_noise)
    # (these two are left out of dumps at their defaults, so older files keep their spec hash)
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] | Literal["from-consistency"] = Field(
        0.0, exclude_if=lambda v: v == 0.0)
    simpo_gamma: float = Field(0.5, ge=0, exclude_if=lambda v: v == 0.5)  # simpo: target margin

    @model_validator(mode="after")
    def _stage_keys(self) -> MethodSpec:
        self._smoothing_is_read()
        if self.stage == "sft":
            for key in ("from_", "preferences"):
                if getattr(self, key) is not None:
                    name = key.rstrip("_")
                    raise ValueError(f"method.{name} is read only by a preference stage: add "
                                     f"stage = \"dpo\" to [method], or remove {name}")
            return self
        if self.stage == "reward" and self.kind == "prefix":
            raise ValueError('method.kind: a reward stage trains a scoring head on full weights '
                             'or an adapter: kind = "full", "lora" or "qlora"')
        if self.from_ is None:
            raise ValueError(f'method.from: a {self.stage} stage starts from a trial of a '
                             'supervised experiment: from = "EXPERIMENT:best" or "EXPERIMENT:N"')
        if not PARENT.match(self.from_):
            raise ValueError(f'method.from: {self.from_!r} is not EXPERIMENT:best or '
                             'EXPERIMENT:N (e.g. "quickstart:best", "quickstart:7")')
        if self.preferences is None:
            raise ValueError(f'method.preferences: a {self.stage} stage learns from votes: '
                             'preferences = "review:NAME" or a JSONL file of prompt/chosen/rejected')
        return self

    def _smoothing_is_read(self) -> None:
        """label_smoothing only where TRL reads it: a dpo stage's robust or exo_pair loss (its
        sigmoid loss ignores it since TRL 1.x, so a value there would silently do nothing)."""
        if self.label_smoothing == 0.0:
            return
        if self.stage != "dpo" or self.loss_type not in SMOOTHED_LOSSES:
            raise ValueError(
                "method.label_smoothing is read only by a dpo stage with loss_type = \"robust\" "
                "(robust DPO: the share of flipped votes) or \"exo_pair\"; set one, or remove "
                "label_smoothing")
        if self.preferences is not None and self.label_smoothing == "from-consistency" and \
                not self.preferences.startswith(("review:", "arena:")):
            raise ValueError(
                'method.label_smoothing = "from-consistency" measures the raters\' swapped '
                'repeats of a review: preferences = "review:NAME" (a file has no repeats), or '
                "give the share of flipped votes as a number")

    @property
    def parent(self) -> tuple[str, str]:
        """(experiment, "best" or the trial number) of method.from."""
        found = PARENT.match(self.from_ or "")
        assert found is not None, "only a dpo stage has a parent"
        return found.group(1), found.group(2)


# the DPO losses that read method.label_smoothing (TRL's sigmoid loss ignores it)
SMOOTHED_LOSSES = ("robust", "exo_pair")


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
# A reward model's scoring head starts from random: steps nearer supervised ones (TRL's
# RewardConfig default is 1e-4 for an adapter)
REWARD_LEARNING_RATE = {"full": 1e-5, "lora": 1e-4, "qlora": 1e-4, "prefix": 1e-4}


class TrainSpec(StrictModel):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)  # effective: micro-batch x accumulation
    micro_batch_size: int | Literal["auto"] = "auto"
    learning_rate: float | None = Field(None, gt=0, lt=1)  # None: the method's default
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(512, ge=8)
    seed: int = Field(42, ge=0, le=SEED_MAX)
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
        if micro != "auto" and micro < 1:
            raise ValueError(f"train.micro_batch_size must be \"auto\" or a number of examples "
                             f">= 1 (found {micro})")
        if micro != "auto" and self.batch_size % micro:
            raise ValueError(f"train.micro_batch_size {micro} must divide train.batch_size "
                             f"{self.batch_size}")
        if isinstance(self.eval_every, int) and self.eval_every < 1:
            raise ValueError("train.eval_every must be \"epoch\" or a number of steps >= 1 "
                             f"(found {self.eval_every})")
        return self


GENERATION_METRICS = ("exact_match", "accuracy", "macro_f1", "bleu", "chrf", "rouge_l", "contains")


class ForgettingSpec(StrictModel):
    """`[eval.forgetting]`: general text the fine-tune should not forget. Its loss is measured on
    the model before and after each trial's training; `forgetting` is the difference (after
    minus before: above 0, the trial got worse at general text). peft#2925's method."""

    # "tunelab:general" (a small general set shipped with tunelab), or a file relative to the
    # experiment file: JSONL with a "text" field, or plain text with blank lines between texts
    source: str = "tunelab:general"
    max_texts: int = Field(200, ge=1)  # the first N texts are measured
    max_length: int = Field(256, ge=8)  # tokens of each text (longer ones are cut)


class HarnessSpec(StrictModel):
    """`[eval.harness]`: benchmarks of lm-evaluation-harness run on the trained model inside each
    trial (and on the base in the baseline). A score is named TASK:METRIC (e.g. "arc_easy:acc")
    and may be an objective or a success criterion. Needs `pip install 'tunelab[harness]'`."""

    tasks: list[str] = Field(min_length=1)  # lm-eval task names, e.g. ["tunelab_tiny"]
    limit: int | None = Field(100, ge=1)  # documents per task (None: all of them)
    num_fewshot: int | None = Field(None, ge=0)  # None: each task's own number
    seed: int = 1234  # the few-shot examples drawn with this seed (lm-eval's default)
    batch_size: int = Field(8, ge=1)
    include_path: str | None = None  # a folder of task YAMLs of your own (relative to the file)


class EvalSpec(StrictModel):
    baseline: bool = True  # evaluate the base model once, before the trials
    # the base model also with this many training examples in the prompt (a few-shot baseline:
    # does a good prompt already do the job?); its generation metrics beside the zero-shot ones.
    # 0: off. 3 is where few-shot gains mostly are (see docs/experiment-file.md)
    baseline_shots: int = Field(3, ge=0, le=32, exclude_if=lambda v: v == 3)
    metrics: list[Literal["perplexity", "exact_match", "accuracy", "macro_f1", "bleu", "chrf",
                          "rouge_l", "contains"]] = ["perplexity"]
    samples: int = Field(20, ge=0)  # generated outputs kept per model, for review
    max_new_tokens: int = Field(64, ge=1)
    max_examples: int | None = Field(200, ge=1)  # test rows generated for metrics (None: all)
    general: str | None = None  # held-out general text (JSONL with "text"): forgetting check
    # general text's loss change against the base (left out of dumps when absent: see label)
    forgetting: ForgettingSpec | None = Field(None, exclude_if=lambda v: v is None)
    # lm-evaluation-harness benchmarks, inside each trial
    harness: HarnessSpec | None = Field(None, exclude_if=lambda v: v is None)
    # at each evaluation during training, greedy answers to the first N validation prompts are
    # stored (watch_samples), so a person sees the outputs change; 0: off
    watch: int = Field(0, ge=0)
    watch_max_new_tokens: int = Field(32, ge=1)  # short: watching must cost little
    # after training, the loss of every train and validation example under the best checkpoint
    # (example_losses): the examples a model finds hardest are often mislabelled. It costs about
    # a third of one epoch (a forward pass without the backward; bench/bench_watch.py), so
    # "auto" scores when train.epochs >= 4, where that stays within 10 % of the trial
    example_losses: Literal["auto"] | bool = "auto"


class ResourcesSpec(StrictModel):
    # the devices trials may use; "auto": every visible GPU (none on a CPU machine)
    devices: Literal["auto"] | list[int] = "auto"
    # devices per trial; > 1 launches the trial with torchrun (DDP). On a CPU machine it is the
    # number of processes of the trial (gloo backend).
    gpus_per_trial: int = Field(1, ge=1)
    price_per_hour: float = Field(0.0, ge=0)  # per device: the estimated cost of each trial


# the names of [search] (engine.spec.search) that importers take from here; the rest are this
# module's own
__all__ = ["MULTI_OBJECTIVE_SAMPLERS", "SAMPLERS", "SEED_MAX", "ChoiceSpec", "Dimension",
           "PrunerKind", "PrunerSpec", "RangeSpec", "SearchSpec", "StrictModel", "When"]
