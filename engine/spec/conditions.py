"""Conditional search spaces: which searched keys a trial samples, given the values it took.

A key of `[search.space]` may carry `when = { KEY = [values] }`: it is searched only in trials
where every named KEY took one of those values. KEY is another searched key (sampled first:
the space is sampled in dependency order) or a key fixed in the file. Keys of [method] that
only some kinds read (METHOD_KEYS_OF_KIND) carry the same kind of condition on method.kind
implicitly, so a full fine-tune never carries a LoRA rank. The invariant, for every trial: a
key is in its parameters exactly when its condition holds.
"""

from __future__ import annotations

import json
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.spec.experiment import Experiment
from tunelab.engine.spec.schema import close_match, field_is_int, model_at, path_exists
from tunelab.engine.spec.sections import METHOD_KEYS_OF_KIND, ChoiceSpec, RangeSpec

Condition = dict[str, list[Any]]  # key -> the values under which the conditioned key is searched


def choices(dimension: RangeSpec | ChoiceSpec | list[Any]) -> list[Any] | None:
    """The values of a list of choices; None for a range."""
    if isinstance(dimension, RangeSpec):
        return None
    return list(dimension.values if isinstance(dimension, ChoiceSpec) else dimension)


def _implicit(name: str) -> list[str] | None:
    section, _, key = name.partition(".")
    kinds = METHOD_KEYS_OF_KIND.get(key) if section == "method" else None
    return sorted(kinds) if kinds else None


def conditions(exp: Experiment) -> dict[str, Condition]:
    """The condition of each searched key (empty: always searched): the file's `when`, with the
    implicit method-kind rule folded in (the kinds both allow)."""
    out: dict[str, Condition] = {}
    space = exp.search.space
    for name, dimension in space.items():
        when: Condition = dict(getattr(dimension, "when", None) or {})
        kinds = _implicit(name)
        if kinds is not None:
            given = when.get("method.kind")
            kinds = kinds if given is None else [k for k in given if k in kinds]
            searched = space.get("method.kind")
            if searched is not None:  # only the kinds a trial can take: {lora}, not {lora, qlora}
                kinds = [k for k in kinds if k in (choices(searched) or [])]
            when["method.kind"] = kinds
        out[name] = when
    return out


def fixed_value(exp: Experiment, dotted: str) -> Any:
    """The resolved value of a key that the file fixes (or leaves at its default)."""
    if dotted == "train.learning_rate":
        return exp.learning_rate
    value: Any = exp
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(
            value, "from_" if part == "from" else part, None)
    return value


def order(exp: Experiment) -> list[str]:
    """The searched keys with each after the keys its condition names (otherwise in the file's
    order): the order in which a trial samples them."""
    space = exp.search.space
    needs = {name: [k for k in cond if k in space and k != name]
             for name, cond in conditions(exp).items()}
    done: list[str] = []
    while len(done) < len(space):
        ready = [n for n in space if n not in done and all(k in done for k in needs[n])]
        if not ready:
            left = [n for n in space if n not in done]
            raise SpecError(f"search.space: the conditions of {', '.join(left)} form a cycle",
                            "conditional search space")
        done.append(ready[0])
    return done


def holds(condition: Condition, values: dict[str, Any], exp: Experiment) -> bool:
    """Whether a key with this condition is searched in a trial that took `values` so far."""
    space = exp.search.space
    for key, allowed in condition.items():
        if key in space:
            if key not in values or values[key] not in allowed:
                return False
        elif fixed_value(exp, key) not in allowed:
            return False
    return True


def shown(values: list[Any]) -> str:
    return "{" + ", ".join(v if isinstance(v, str) else json.dumps(v) for v in values) + "}"


def describe(condition: Condition) -> str:
    """`only when method.kind ∈ {lora, qlora}`; empty for a key always searched."""
    if not condition:
        return ""
    return "only when " + " and ".join(f"{k} ∈ {shown(v)}" for k, v in condition.items())


def never_takes(key: str, dimension: RangeSpec | ChoiceSpec | list[Any], value: Any) -> bool:
    if not isinstance(dimension, RangeSpec):
        return value not in (choices(dimension) or [])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    if not dimension.low <= value <= dimension.high:
        return True
    step = dimension.step or (1 if field_is_int(key) else None)
    if step is None:
        return False
    off = (value - dimension.low) / step  # the grid Optuna draws from: low, low + step, …
    return abs(off - round(off)) > 1e-9


def _continuous(key: str, dimension: RangeSpec | ChoiceSpec | list[Any]) -> bool:
    """A range over real numbers without a step: any one value has no chance to be drawn."""
    return isinstance(dimension, RangeSpec) and dimension.step is None and not field_is_int(key)


def condition_problems(exp: Experiment) -> list[tuple[str, str]]:
    """(searched key, what is wrong) for every condition that cannot work as written."""
    space = exp.search.space
    found: list[tuple[str, str]] = []
    for name, dimension in space.items():
        when = getattr(dimension, "when", None) or {}
        where = f"search.space.{name}.when"
        for key, allowed in when.items():
            if key == name:
                found.append((name, f"{where}: {name} cannot be searched on a condition on itself"))
            elif not allowed:
                found.append((name, f"{where}: {key} = [] lets no value through"))
            elif key in space and isinstance(dim := space[key], RangeSpec) \
                    and _continuous(key, dim):
                found.append((name, f"{where}: {key} is searched over a continuous range "
                                    f"({dim.low:g} … {dim.high:g}), where a value comes up "
                                    f"almost never: search {key} over a list of choices (or a "
                                    "range with a step) to condition on it"))
            elif key in space:
                never = [v for v in allowed if never_takes(key, space[key], v)]
                if never:
                    dim = space[key]
                    takes = (f"{dim.low:g} … {dim.high:g}" if isinstance(dim, RangeSpec)
                             else shown(choices(dim) or []))
                    found.append((name, f"{where}: {key} never takes {shown(never)} (it is "
                                        f"searched over {takes})"))
            elif not path_exists(key) or key.startswith("search."):
                parts = key.split(".")
                hint = close_match(model_at(parts), parts[-1])
                guess = f"; did you mean {'.'.join([*parts[:-1], hint])!r}?" if hint else ""
                found.append((name, f"{where}: {key!r} is neither searched nor a key of the "
                                    f"experiment{guess}"))
            elif fixed_value(exp, key) not in allowed:
                found.append((name, f"{where}: {name} would never be searched: {key} is not "
                                    f"searched and is {json.dumps(fixed_value(exp, key))} here, "
                                    f"not one of {shown(allowed)} (search {key}, or drop the "
                                    "condition)"))
        kinds = _implicit(name)
        given = when.get("method.kind")
        said = any(f"{where}: method.kind " in what for _, what in found)  # one mistake, one message
        if kinds is not None and given and not said and not set(given) & set(kinds):
            found.append((name, f"{where}: {name} is read only by {', '.join(kinds)} trials, "
                                f"and the condition allows only {shown(given)}"))
    if not found:
        try:
            order(exp)
        except SpecError as error:
            found.append((next(iter(space)), error.message))
    conditional = [n for n, c in conditions(exp).items() if any(k in space for k in c)]
    if exp.search.sampler == "grid" and conditional:
        name = conditional[0]
        found.append((name, f"search.space.{name}: the grid sampler cannot leave a key out of a "
                            f"trial ({name} is searched {describe(conditions(exp)[name])}): "
                            "its grid would train the same trial once per value of it. Use the "
                            "tpe or random sampler, or a file per branch"))
    return found
