"""Loading an experiment file: read, parse, apply `--set`, validate, and report every mistake
at once with where it is (the file's line, or the `--set` argument), the dotted key, what was
found and what is expected. Whatever is given, the answer is a SpecError, never a traceback."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import PREFERENCE_STAGES
from tunelab.engine.spec import measures
from tunelab.engine.spec.conditions import choices, condition_problems
from tunelab.engine.spec.experiment import NO_DATA, NO_MODEL, Experiment, LoadedSpec
from tunelab.engine.spec.lines import Places, key_lines, split_key
from tunelab.engine.spec.overrides import parse_override, set_parts, set_path
from tunelab.engine.spec.parent import resolve_parent
from tunelab.engine.spec.schema import close_match, model_at, path_exists
from tunelab.engine.spec.sections import RangeSpec

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# pydantic puts union members and tags in loc ("RangeSpec", "list[choices]"); they are not keys
NOT_A_KEY = re.compile(r"^(RangeSpec|ChoiceSpec|list\[|PrunerSpec|str|int|function-|literal\[)")

Mistake = tuple[str, str]  # (where, what)


def _describe(error: dict[str, Any], places: Places) -> Mistake:
    loc = [str(p) for p in error["loc"] if not NOT_A_KEY.match(str(p))]
    dotted = ".".join(loc) or "(top level)"
    where = places(dotted)
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = close_match(model_at(loc), loc[-1]) if loc else None
        known = model_at(loc)
        options = ", ".join(known.model_fields) if known is not None else ""
        text = f"unknown key {dotted!r}"
        text += f"; did you mean {'.'.join([*loc[:-1], hint])!r}?" if hint else f" (valid: {options})"
        return where, text
    if kind == "missing":
        return where, f"{dotted}: required key is missing"
    found = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    named = re.match(r"^([a-z_]+(?:\.[A-Za-z0-9_]+)+)[: ]", message)
    if not loc and named:  # a check across sections names its own key: point at its line
        return places(named.group(1)), message
    shown = json.dumps(found) if isinstance(found, (str, int, float, bool)) else None
    return where, f"{dotted}: {message}" + (f" (found {shown})" if shown is not None else "")


def _missing_sections(raw: dict[str, Any]) -> list[str]:
    """[model] and [data] that a supervised stage lacks. The model's own check names them too,
    but only once every field is valid: an empty file would learn of them one run at a time."""
    method = raw.get("method")
    if isinstance(method, dict) and method.get("stage") in PREFERENCE_STAGES:
        return []
    return [text for section, text in (("model", NO_MODEL), ("data", NO_DATA)) if section not in raw]


def _validate(raw: dict[str, Any], places: Places) -> tuple[Experiment | None, list[Mistake]]:
    try:
        return Experiment.model_validate(raw), []
    except ValidationError as error:
        found = [dict(e) for e in error.errors()]
        found += [{"loc": (), "msg": text, "type": "value_error"} for text in _missing_sections(raw)]
        seen: list[Mistake] = []
        for e in found:
            mistake = _describe(e, places)
            if mistake not in seen:
                seen.append(mistake)
        return None, seen


def _check_space(exp: Experiment, raw: dict[str, Any], places: Places) -> list[Mistake]:
    errors = []
    for dotted, dimension in exp.search.space.items():
        where = places(f"search.space.{dotted}")
        if not path_exists(dotted) or dotted.startswith("search."):
            parts = dotted.split(".")
            hint = close_match(model_at(parts), parts[-1])
            guess = f"; did you mean {'.'.join([*parts[:-1], hint])!r}?" if hint else ""
            errors.append((where, f"search.space: {dotted!r} is not a key of the experiment{guess}"))
            continue
        if isinstance(dimension, RangeSpec):
            candidates = [dimension.low, dimension.high]
        elif not (candidates := choices(dimension) or []):
            errors.append((where, f"search.space.{dotted}: the list of choices is empty"))
            continue
        for value in candidates:
            _, problems = _validate(set_path(raw, dotted, value), places)
            for _, what in problems:
                errors.append((where, f"search.space.{dotted}: the value {value!r} is not valid "
                                      f"here: {what.split(': ', 1)[-1]}"))
    if not errors:  # the conditions name keys and values of a space that is itself valid
        errors += [(places(f"search.space.{name}"), what) for name, what in condition_problems(exp)]
    return errors


def _dpo_sections(raw: dict[str, Any], places: Places,
                  store: Path | None) -> tuple[dict[str, Any], list[Mistake]]:
    """A dpo stage's file names its parent instead of [model] and [data]: with a store, the
    parent's sections are filled in and `best` is pinned to its trial number (so a later, better
    parent makes a new study, not a silent mix); the preference file becomes absolute."""
    stage = raw.get("method", {}).get("stage")
    errors = [(places(section), f"[{section}]: a {stage} stage uses its parent's {section} "
                                "(method.from); remove this section")
              for section in ("model", "data") if section in raw]
    method = raw.get("method", {})
    preferences = method.get("preferences")
    if isinstance(preferences, str) and not preferences.startswith(("review:", "arena:")):
        found = (places.file.parent / Path(preferences).expanduser()).resolve()
        if not found.is_file():
            errors.append((places("method.preferences"), f"method.preferences: no file at {found} "
                                                         "(or write \"review:NAME\")"))
        raw = set_path(raw, "method.preferences", str(found))
    if errors or store is None or not isinstance(method.get("from"), str):
        return raw, errors
    try:
        return resolve_parent(raw, store), []
    except SpecError as error:
        return raw, [(places("method.from"), f"method.from: {error}")]


def read_text(file: Path) -> str:
    """The text of an experiment file, or a SpecError that says what was given instead."""
    if file.is_dir():
        inside = sorted(p.name for p in file.glob("*.toml"))
        hint = f" (it holds {', '.join(inside[:5])}{', …' if len(inside) > 5 else ''})" if inside else ""
        raise SpecError(f"{file} is a folder; an experiment file (TOML) is expected{hint}",
                        "not an experiment file")
    if not file.exists():
        raise SpecError(f"{file}: no such experiment file")
    if file.suffix.lower() in DATA_SUFFIXES:
        raise SpecError(
            f"{file} is a data file; an experiment file (TOML) is expected. An experiment "
            f"trains on it with these two lines (beside name and [model]; see "
            f"experiments/quickstart.toml):\n\n[data]\ntrain = \"{file.name}\"",
            "not an experiment file")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise SpecError(f"{file}: cannot be read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark from some editors is harmless
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise SpecError(f"{file}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x} at line "
                        f"{line}); save the file as UTF-8") from None


def load_spec(path: str | Path, overrides: list[str] | None = None,
              store: str | Path | None = None) -> LoadedSpec:
    """Reads, validates and resolves an experiment file. Raises SpecError listing every mistake.
    A dpo stage is resolved against its parent in `store`; without one it is only checked."""
    file = Path(path)
    text = read_text(file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{file}: TOML syntax error: {error}") from None
    arguments: dict[str, str] = {}
    for item in overrides or []:
        key, value = parse_override(item)
        parts = split_key(key)
        raw = set_parts(raw, parts, value)
        arguments[".".join(parts)] = item
    places = Places(file, key_lines(text), arguments)
    early: list[Mistake] = []
    if isinstance(raw.get("method"), dict) and raw["method"].get("stage") in PREFERENCE_STAGES:
        raw, early = _dpo_sections(raw, places, Path(store) if store else None)
    experiment, errors = _validate(raw, places)
    errors = early + errors
    if experiment is not None:
        errors += _check_space(experiment, raw, places)
        sources = experiment.data if experiment.method.stage == "sft" else None
        for key, data in sources.missing_files(file.parent) if sources else []:
            errors.append((places(key), f"{key}: no file at {data}"))
        general = experiment.eval.general
        if general and not (file.parent / Path(general).expanduser()).exists():
            errors.append((places("eval.general"), f"eval.general: no file at {file.parent / general}"))
        errors += [(places(key), what) for key, what in measures.missing_paths(experiment, file.parent)]
    if errors or experiment is None:
        count = f"{len(errors)} mistake{'s' if len(errors) != 1 else ''}"
        raise SpecError("\n".join(f"{where}: {what}" for where, what in errors), f"{file}: {count}")
    named = {**measures.local_paths(experiment)}
    if experiment.eval.general:
        named["eval.general"] = experiment.eval.general
    if named:  # trials run elsewhere: paths become absolute here
        for key, text in named.items():
            raw = set_path(raw, key, str((file.parent / Path(text).expanduser()).resolve()))
        experiment = Experiment.model_validate(raw)
    return LoadedSpec(experiment=experiment, path=file.resolve(), raw=raw)
