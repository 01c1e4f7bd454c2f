"""One trial's values, checked as the runner will use them: a configuration queued by
`tunelab enqueue --set KEY=VALUE`, and the experiment a re-run runs (the one its trials ran
with, as the store recorded it, not the file as it is now)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunelab.engine.errors import SpecError
from tunelab.engine.format import counted
from tunelab.engine.spec import conditions as cond
from tunelab.engine.spec.experiment import Experiment, LoadedSpec
from tunelab.engine.spec.lines import Places, split_key
from tunelab.engine.spec.load import validate
from tunelab.engine.spec.overrides import parse_override, set_path
from tunelab.engine.spec.sections import RangeSpec


def _outside(name: str, dimension: Any, value: Any) -> str | None:
    """Why a trial of the space never takes this value, or None."""
    if not cond.never_takes(name, dimension, value):
        return None
    if isinstance(dimension, RangeSpec):
        step = f" in steps of {dimension.step:g}" if dimension.step else ""
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        return (f"{name} is searched over {dimension.low:g} … {dimension.high:g}{step}, and "
                + (f"{value:g} is not one of its values" if number else
                   f"{json.dumps(value) if isinstance(value, str) else value} is not a number"))
    return f"{name} is searched over {cond.shown(cond.choices(dimension) or [])}"


def _condition_mistakes(exp: Experiment, params: dict[str, Any]) -> list[str]:
    """A queued value of a conditional key must be one its trial would use: its condition has to
    hold with the other values given (a trial never carries a key its condition rules out)."""
    found = []
    for key, condition in cond.conditions(exp).items():
        if key not in params or not condition:
            continue
        missing = [k for k in condition if k in exp.search.space and k not in params]
        if missing:
            found.append(f"{key} is searched {cond.describe(condition)}: give "
                         f"{' and '.join(f'--set {k}=…' for k in missing)} too")
        elif not cond.holds(condition, params, exp):
            found.append(f"{key} is searched {cond.describe(condition)}, which these values "
                         f"rule out: drop --set {key}")
    return found


def queued_params(spec: LoadedSpec, arguments: list[str]) -> dict[str, Any]:
    """The parameters of `--set KEY=VALUE` arguments, each a searched key and a value the
    space can take, that make a valid experiment together; else a SpecError naming each
    mistake and the argument that made it."""
    exp = spec.experiment
    space = exp.search.space
    params: dict[str, Any] = {}
    given: dict[str, str] = {}
    mistakes: list[str] = []
    for item in arguments:
        key, value = parse_override(item)
        name = ".".join(split_key(key))
        params[name], given[name] = value, item
        if name not in space:
            mistakes.append(f"--set {item}: {name} is not in search.space of {exp.name} "
                            f"(searched: {', '.join(space) or 'nothing'}); a fixed key changes in "
                            "the file")
        elif (why := _outside(name, space[name], value)) is not None:
            mistakes.append(f"--set {item}: {why}; no trial of this sweep would take it (widen "
                            "search.space in the file, with --new-study, to try it)")
    if not mistakes:
        mistakes += _condition_mistakes(exp, params)
    if not mistakes:
        raw = spec.raw
        for name, value in params.items():
            raw = set_path(raw, name, value)
        places = Places(spec.path, {}, given)
        mistakes += [f"{where}: {what}" for where, what in validate(raw, places)[1]]
    if mistakes:
        raise SpecError("\n".join(mistakes), f"cannot queue: {counted(len(mistakes), 'mistake')}")
    return params


def recorded_spec(record: dict[str, Any], source: str | None, name: str) -> LoadedSpec:
    """The experiment as the store recorded it when its trials ran (the resolved values, its
    `--set`s included): what a re-run runs, whatever the file says now. `record` is the
    experiments row's `spec`, `source` its file (relative data paths are read beside it)."""
    if not record:
        raise SpecError(f"the store does not hold the configuration {name}'s trials ran with "
                        "(it predates that record); run the trial's parameters with `tunelab "
                        "enqueue` and `tunelab run` instead", "no recorded configuration")
    try:
        experiment = Experiment.model_validate(record)
    except ValidationError as error:
        first = error.errors()[0]
        raise SpecError(f"the configuration recorded for {name} is not valid in this tunelab "
                        f"({'.'.join(map(str, first['loc']))}: {first['msg']})",
                        "recorded configuration") from None
    return LoadedSpec(experiment=experiment, path=Path(source or f"{name}.toml").resolve(),
                      raw=record)
