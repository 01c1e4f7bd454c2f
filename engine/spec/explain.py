"""The experiment as a person reads it: every resolved key with its source, and the search
space in words. Used by `tunelab check`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from tunelab.engine.format import counted, number
from tunelab.engine.objectives import PREFERENCE_STAGES
from tunelab.engine.spec import measures
from tunelab.engine.spec.conditions import choices, conditions, describe, fixed_value, order
from tunelab.engine.spec.experiment import Experiment, default_learning_rates
from tunelab.engine.spec.schema import field_is_int
from tunelab.engine.spec.sections import (
    METHOD_KEYS_OF_KIND,
    ChoiceSpec,
    RangeSpec,
)


def resolved(exp: Experiment) -> list[tuple[str, Any, bool]]:
    """(dotted key, value, is_default) for every leaf of the resolved experiment."""
    rows: list[tuple[str, Any, bool]] = []

    def walk(model: BaseModel, prefix: str, parent_default: bool) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            dotted = f"{prefix}{info.alias or name}"  # method.from, not from_
            default = parent_default or name not in model.model_fields_set
            if isinstance(value, BaseModel):
                walk(value, dotted + ".", default)
            elif dotted == "train.learning_rate" and value is None:
                rows.append((dotted, exp.learning_rate, True))
            elif name == "space":
                continue
            else:
                rows.append((dotted, value, default))

    walk(exp, "", False)
    return rows


def method_keys_unused(exp: Experiment) -> set[str]:
    kind = exp.method.kind
    searched = "method.kind" in exp.search.space
    return {f"method.{key}" for key, kinds in METHOD_KEYS_OF_KIND.items()
            if kind not in kinds and not searched}


def describe_dimension(name: str, dimension: RangeSpec | ChoiceSpec | list[Any]) -> str:
    options = choices(dimension)
    if options is not None:
        return "one of " + ", ".join(v if isinstance(v, str) else json.dumps(v) for v in options)
    assert isinstance(dimension, RangeSpec)
    scale = "log-uniform" if dimension.log else "uniform"
    step = f" in steps of {number(dimension.step)}" if dimension.step else ""
    low, high = ((int(dimension.low), int(dimension.high)) if field_is_int(name)
                 else (dimension.low, dimension.high))
    return f"{scale} {number(low)} … {number(high)}{step}"


def space(exp: Experiment) -> list[tuple[str, str, str]]:
    """(key, what is sampled, when) for each searched key, in the order a trial samples them. The
    implicit method-kind rule reads like a condition of the file: "only when method.kind ∈ {…}".
    A condition on a fixed key that holds is left out (the key is always searched)."""
    rows = []
    when = conditions(exp)
    for name in order(exp):
        searched = {k: v for k, v in when[name].items() if k in exp.search.space}
        fixed_false = {k: v for k, v in when[name].items()
                       if k not in exp.search.space and fixed_value(exp, k) not in v}
        text = describe(searched)
        empty = [k for k, v in searched.items() if not v]
        if empty:  # the implicit rule, when no searched kind reads the key
            text = f"never: no searched {empty[0]} reads it"
        if fixed_false:  # the implicit rule on a fixed method.kind (the file's own is refused)
            key = next(iter(fixed_false))
            text = f"never: {key} is {fixed_value(exp, key)}"
        rows.append((name, describe_dimension(name, exp.search.space[name]), text))
    return rows


def stage_settings(exp: Experiment) -> str:
    """What a preference stage's method is tuned by, in words ("beta 0.1 · robust loss")."""
    m = exp.method
    smoothing = (f" · label smoothing {m.label_smoothing}" if isinstance(m.label_smoothing, str)
                 else f" · label smoothing {m.label_smoothing:g}" if m.label_smoothing else "")
    return {"dpo": f"beta {m.beta:g} · {m.loss_type} loss{smoothing}",
            "kto": f"beta {m.beta:g} · class weights from the example counts",
            "reward": "a scoring head, the pairwise (Bradley–Terry) loss",
            "orpo": f"odds-ratio weight {m.beta:g}",
            "simpo": f"beta {m.beta:g} · margin gamma {m.simpo_gamma:g}"}[m.stage]


def summary(exp: Experiment) -> list[str]:
    s = exp.search
    pruner = s.pruner_spec
    after = f"after {counted(pruner.startup_trials, 'finished trial')}"
    prune = (f"no pruner ({s.pruner_off})" if s.pruner_off else "no pruner" if pruner.kind == "none"
             else f"percentile pruner: stops a trial in the worst {100 - pruner.percentile:g} % at "
                  f"an evaluation ({after})" if pruner.kind == "percentile"
             else f"{pruner.kind} pruner ({after})")
    m = exp.model
    model = "?" if m is None else m.base or (
        f"scratch {m.scratch.arch} (hidden {m.scratch.hidden_size}, {m.scratch.layers} layers)"
        if m.scratch else "?")
    method = exp.method
    lr = exp.train.learning_rate
    rates = default_learning_rates(method.stage)
    defaults = ", ".join(f"{k} {number(v)}" for k, v in rates.items())
    lr_text = number(lr) if lr else f"{number(exp.learning_rate)} (the {method.kind} default; {defaults})"
    if method.stage in PREFERENCE_STAGES:
        where = f"{model}, " if m is not None else "the parent's: "
        on = f"a {method.kind}" if m is not None else "the parent's adapter or weights"
        unit = "examples" if method.stage == "kto" else "pairs"
        head = [f"model   {where}trial {method.from_} ({method.stage} starts from it)",
                f"data    {method.preferences} ({method.heldout:g} held out by prompt; at least "
                f"{method.min_pairs} {unit})",
                f"method  {method.stage} on {on} · {stage_settings(exp)}"]
    else:
        d = exp.dataset
        head = [f"model   {model}",
                f"data    {d.train} (split {d.split.train:g}/{d.split.validation:g}/{d.split.test:g})",
                f"method  {method.kind}" + (" · a classification head" if method.head == "classification"
                                            else "")]
    lines = [
        *head,
        f"train   {exp.train.epochs} epochs · batch {exp.train.batch_size} · lr {lr_text} · "
        f"warmup {exp.train.warmup_ratio:g} · {exp.train.scheduler}",
        f"search  {counted(s.trials, 'trial')} · {s.sampler} (seed {s.seed}) · {prune} · "
        f"{s.direction} {s.objective}" + (f" · timeout {s.timeout:g}s" if s.timeout else ""),
    ]
    measured = measures.describe(exp)
    if measured:
        lines.append(measured)
    if exp.success:
        lines.append("success " + " and ".join(f"{k} {v}" for k, v in exp.success.items()))
    return lines
