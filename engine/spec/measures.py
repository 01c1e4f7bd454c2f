"""What the classification head, the forgetting measure and the benchmarks ask of the rest of an
experiment file, and the metrics they compute (so an objective or a criterion may name them).
Checked once, when the file is validated (engine.spec.experiment)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.engine.objectives import FORGETTING
from tunelab.engine.spec.sections import GENERATION_METRICS

if TYPE_CHECKING:
    from tunelab.engine.spec.experiment import Experiment

# what a classification trial reports (engine.train.classify), on validation and test
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
CLASSIFIER_KINDS = ("full", "lora")
# the general text shipped with tunelab (engine/data/general/), by its name in eval.forgetting.source
SHIPPED_GENERAL = "tunelab:general"
HARNESS_MISSING = ("eval.harness: lm-evaluation-harness is not installed; install the extra with "
                   "pip install 'tunelab[harness]' (or pip install lm-eval), or remove [eval.harness]")


def measured(exp: Experiment) -> set[str]:
    """The metrics that [eval.forgetting] and the head add to what evaluation computes."""
    found: set[str] = set()
    if exp.method.head == "classification":
        found |= set(CLASSIFICATION_METRICS)
    if exp.eval.forgetting is not None:
        found.add(FORGETTING)
    return found


def is_benchmark_score(exp: Experiment, name: str) -> bool:
    """TASK:METRIC of a task of [eval.harness]: its metrics are known once lm-eval runs it."""
    task, colon, metric = name.partition(":")
    return bool(colon and metric) and exp.eval.harness is not None and task in exp.eval.harness.tasks


def problems(exp: Experiment) -> list[str]:
    """Each combination that a run would refuse, as `key: what to do` (the first key is the line
    the error points at)."""
    found = []
    if exp.eval.forgetting is not None and exp.eval.general:
        found.append("eval.general: [eval.forgetting] measures the general text's loss before and "
                     "after training; keep one of the two (forgetting also gives the change)")
    source = exp.eval.forgetting.source if exp.eval.forgetting is not None else ""
    if source.startswith("tunelab:") and source != SHIPPED_GENERAL:
        found.append(f"eval.forgetting.source: tunelab ships {SHIPPED_GENERAL!r}, not {source!r}; "
                     "or name a file of your own")
    if exp.method.stage != "sft" and (exp.eval.forgetting or exp.eval.harness):
        found.append(f"eval.forgetting: a {exp.method.stage} stage is judged on its held-out "
                     "votes; measure forgetting and benchmarks in its supervised parent")
    if exp.method.stage == "kto" and (exp.train.batch_size < 2 or exp.train.micro_batch_size == 1):
        found.append("train.batch_size: a kto stage estimates its KL term from the other answers "
                     "of each micro-batch: batch_size and micro_batch_size of at least 2")
    if "method.head" in exp.search.space:
        found.append("search.space.method.head: a classifier and a language model have losses "
                     "that do not compare; run them as two experiments")
    if exp.method.head != "classification":
        return found
    method = exp.method
    if method.stage != "sft":
        found.append('method.head: "classification" trains a supervised head; a preference '
                     'stage has none')
        return found
    if exp.dataset.format != "label":
        found.append('method.head: "classification" learns text -> label: set data.format = '
                     '"label" (rows {"text": …, "label": …}, JSONL or CSV)')
    if method.kind not in CLASSIFIER_KINDS:  # a searched kind is checked value by value
        found.append(f"method.kind: a classification head trains fully or with LoRA, not "
                     f"{method.kind}")
    if exp.train.packing:
        found.append("train.packing: a classifier reads one text per row; remove packing")
    if exp.eval.watch:
        found.append("eval.watch: a classifier writes no answers to watch; its accuracy is "
                     "logged at each evaluation instead (remove eval.watch)")
    for key, value in (("eval.forgetting", exp.eval.forgetting), ("eval.harness", exp.eval.harness)):
        if value is not None:
            found.append(f"{key}: needs a language-model head; a classifier has none "
                         "(remove it, or train with method.head = \"lm\")")
    return found



def local_paths(exp: Experiment) -> dict[str, str]:
    """Dotted key -> the path as the file gives it, for the files and folders these sections
    name (relative to the experiment file; made absolute when it is loaded)."""
    found = {}
    forgetting, harness = exp.eval.forgetting, exp.eval.harness
    if forgetting is not None and not forgetting.source.startswith("tunelab:"):
        found["eval.forgetting.source"] = forgetting.source
    if harness is not None and harness.include_path:
        found["eval.harness.include_path"] = harness.include_path
    return found


def missing_paths(exp: Experiment, folder: Path) -> list[tuple[str, str]]:
    """(dotted key, what to do) for each named path that is not there, and for an [eval.harness]
    without lm-evaluation-harness installed."""
    found = [(key, f"{key}: no file or folder at {folder / text}")
             for key, text in local_paths(exp).items() if not (folder / Path(text).expanduser()).exists()]
    if exp.eval.harness is not None and importlib.util.find_spec("lm_eval") is None:
        found.append(("eval.harness", HARNESS_MISSING))
    return found


def fewshot_baseline(exp: Experiment) -> bool:
    """Whether the baseline also prompts the base model with examples (eval.baseline_shots): a
    supervised stage with something to score, a generation metric or a classifier's labels
    (without one it would generate for nothing)."""
    scores = exp.method.head == "classification" or any(m in GENERATION_METRICS
                                                         for m in exp.eval.metrics)
    return exp.eval.baseline and exp.eval.baseline_shots > 0 and exp.method.stage == "sft" \
        and scores


def describe(exp: Experiment) -> str | None:
    """What the baselines and these sections measure beside the trials' own splits, in words
    (`tunelab check`'s eval line); None when nothing is."""
    parts = []
    shots = exp.eval.baseline_shots
    if fewshot_baseline(exp):
        parts.append(f"the base model also with {shots} example{'s' if shots != 1 else ''} "
                     "in its prompts")
    if exp.eval.forgetting is not None:
        parts.append(f"forgetting on {exp.eval.forgetting.source}")
    if exp.eval.harness is not None:
        parts.append(f"benchmarks {', '.join(exp.eval.harness.tasks)} (lm-eval, seed "
                     f"{exp.eval.harness.seed})")
    return "eval    " + " · ".join(parts) if parts else None
