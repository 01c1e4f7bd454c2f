"""Loading an experiment file: read, parse, apply `--set`, validate, and report every mistake
at once with the file, the line, the dotted key, what was found and what is expected."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunelab.engine.errors import SpecError
from tunelab.engine.spec.experiment import Experiment, LoadedSpec
from tunelab.engine.spec.lines import key_lines, line_of
from tunelab.engine.spec.overrides import parse_override, set_path
from tunelab.engine.spec.parent import resolve_parent
from tunelab.engine.spec.schema import close_match, model_at, path_exists


def _describe(error: dict[str, Any], file: Path, lines: dict[str, int]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal["))]
    # pydantic puts union member names in loc ("RangeSpec", "list[any]"); they are not keys
    loc = [p for p in loc if not re.match(r"^(RangeSpec|list\[|PrunerSpec|str|int)", p)]
    dotted = ".".join(loc) or "(top level)"
    line = line_of(lines, dotted)
    where = f"{file}:{line}" if line else f"{file}"
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = close_match(model_at(loc), loc[-1]) if loc else None
        known = model_at(loc)
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
        line = line_of(lines, named.group(1))
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


def _check_space(exp: Experiment, raw: dict[str, Any], file: Path, lines: dict[str, int]) -> list[str]:
    errors = []
    for dotted, dimension in exp.search.space.items():
        where = f"{file}:{line_of(lines, 'search.space.' + dotted) or '?'}"
        if not path_exists(dotted) or dotted.startswith("search."):
            parts = dotted.split(".")
            hint = close_match(model_at(parts), parts[-1])
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
    errors = [f"{file}:{line_of(lines, section) or '?'}: [{section}]: a dpo stage uses its "
              f"parent's {section} (method.from); remove this section"
              for section in ("model", "data") if section in raw]
    method = raw.get("method", {})
    preferences = method.get("preferences")
    if isinstance(preferences, str) and not preferences.startswith(("review:", "arena:")):
        found = (file.parent / Path(preferences).expanduser()).resolve()
        if not found.is_file():
            errors.append(f"{file}:{line_of(lines, 'method.preferences') or '?'}: "
                          f"method.preferences: no file at {found} (or write \"review:NAME\")")
        raw = set_path(raw, "method.preferences", str(found))
    if errors or store is None or not isinstance(method.get("from"), str):
        return raw, errors
    try:
        return resolve_parent(raw, store), []
    except SpecError as error:
        return raw, [f"{file}:{line_of(lines, 'method.from') or '?'}: method.from: {error}"]


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
    lines = key_lines(text)
    early: list[str] = []
    if isinstance(raw.get("method"), dict) and raw["method"].get("stage") == "dpo":
        raw, early = _dpo_sections(raw, file, lines, Path(store) if store else None)
    experiment, errors = _validate(raw, file, lines)
    errors = early + errors
    if experiment is not None:
        errors += _check_space(experiment, raw, file, lines)
        sources = experiment.data if experiment.method.stage == "sft" else None
        for key, data in sources.missing_files(file.parent) if sources else []:
            errors.append(f"{file}:{line_of(lines, key) or '?'}: {key}: no file at {data}")
        general = experiment.eval.general
        if general and not (file.parent / Path(general).expanduser()).exists():
            errors.append(f"{file}:{line_of(lines, 'eval.general') or '?'}: eval.general: "
                          f"no file at {file.parent / general}")
    if errors or experiment is None:
        count = f"{len(errors)} mistake{'s' if len(errors) != 1 else ''}"
        raise SpecError("\n".join(errors), f"{file}: {count}")
    if experiment.eval.general:  # trials run elsewhere: paths become absolute here
        raw = set_path(raw, "eval.general", str((file.parent / experiment.eval.general).resolve()))
        experiment = Experiment.model_validate(raw)
    return LoadedSpec(experiment=experiment, path=file.resolve(), raw=raw)
