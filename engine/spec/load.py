"""Loading an experiment file: read, parse, apply `--set`, validate, and report every mistake
at once with where it is (the file's line, or the `--set` argument), the dotted key, what was
found and what is expected. Whatever is given, the answer is a SpecError, never a traceback."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunelab.engine.errors import SpecError
from tunelab.engine.format import counted
from tunelab.engine.objectives import PREFERENCE_STAGES
from tunelab.engine.spec import measures
from tunelab.engine.spec.conditions import condition_problems
from tunelab.engine.spec.experiment import NO_DATA, NO_MODEL, Experiment, LoadedSpec
from tunelab.engine.spec.lines import Places, key_lines, split_key
from tunelab.engine.spec.overrides import parse_override, set_parts, set_path
from tunelab.engine.spec.parent import resolve_parent
from tunelab.engine.spec.schema import model_at, path_exists
from tunelab.engine.spec.space import trial_mistakes, value_mistakes

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# pydantic puts union members and tags in loc ("RangeSpec", "list[choices]"); they are not keys
NOT_A_KEY = re.compile(r"^(RangeSpec|ChoiceSpec|list\[|PrunerSpec|str|int|function-|literal\[)")

Mistake = tuple[str, str]  # (where, what)


DIMENSION_KEYS = ("low", "high", "log", "step", "values", "when")


def _not_a_dimension(dotted: str, found: Any) -> str:
    """A searched key whose value is a table of neither a range nor choices: one message for
    it, with the likely cause (an unquoted dotted key, a misspelled `values`)."""
    name = dotted.removeprefix("search.space.")
    expected = "expected a list of choices, a range { low = …, high = … } or { values = […] }"
    if not isinstance(found, dict) or not found:
        return f"{dotted}: {expected}"
    inner = [k for k in found if path_exists(f"{name}.{k}")]
    if inner:  # search.space.train.learning_rate = {…}: the dots made tables
        key = f"{name}.{inner[0]}"
        return (f"{dotted}: {name!r} is not a key; a searched key is quoted, as it is one dotted "
                f"name: \"{key}\" = {{…}} in the file, or --set 'search.space.\"{key}\"={{…}}'")
    hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(
        k, DIMENSION_KEYS, n=1, cutoff=0.6)) else repr(k) for k in found]
    return f"{dotted}: {expected}; found {', '.join(hints)}"


def _not_finite(value: Any) -> str:
    return "nan is not a number" if value != value else f"{value} is not a finite number"


def _describe(error: dict[str, Any], places: Places) -> Mistake:
    loc = [str(p) for p in error["loc"] if not NOT_A_KEY.match(str(p))]
    dotted = ".".join(loc) or "(top level)"
    where = places(dotted)
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        known = model_at(loc)
        names = list(known.model_fields) if known is not None else list(DIMENSION_KEYS) \
            if loc[:2] == ["search", "space"] else []  # inside a searched key's table
        near = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6) if loc else []
        hint = near[0] if near else None
        options = ", ".join(names)
        text = f"unknown key {dotted!r}"
        text += f"; did you mean {'.'.join([*loc[:-1], hint])!r}?" if hint else f" (valid: {options})"
        return where, text
    if kind == "missing":
        return where, f"{dotted}: required key is missing"
    if kind == "dimension":
        return where, _not_a_dimension(dotted, found)
    if kind == "finite_number":
        return where, f"{dotted}: {_not_finite(found)}; write a number"
    if kind == "int_parsing_size":
        return where, f"{dotted}: {found:g} is too large a number" if isinstance(found, float) \
            else f"{dotted}: too large a number"
    if kind == "int_from_float" and isinstance(found, float):
        return where, f"{dotted}: {found:g} is not a whole number"
    message = error["msg"].removeprefix("Value error, ")
    named = re.match(r"^([a-z_]+(?:\.[A-Za-z0-9_]+)+)[: ]", message)
    # a check across keys names its own key: point at that key's line (or its --set)
    if named and (not loc or named.group(1).startswith(dotted + ".")):
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


def validate(raw: dict[str, Any], places: Places) -> tuple[Experiment | None, list[Mistake]]:
    """The experiment of these values, or every mistake in them, each with where it is."""
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
    def mistakes_of(values: dict[str, Any]) -> list[str]:
        return [what for _, what in validate(values, places)[1]]

    # each check assumes the one before passed: conditions name the keys and values of a valid
    # space, and the trials of a space are drawn by its conditions
    for mistakes in (value_mistakes, lambda e, *_: condition_problems(e), trial_mistakes):
        found = mistakes(exp, raw, mistakes_of)
        if found:
            return [(places(f"search.space.{name}"), what) for name, what in found]
    return []


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
    experiment, errors = validate(raw, places)
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
        count = counted(len(errors), "mistake")
        raise SpecError("\n".join(f"{where}: {what}" for where, what in errors), f"{file}: {count}")
    named = {**measures.local_paths(experiment)}
    if experiment.eval.general:
        named["eval.general"] = experiment.eval.general
    if named:  # trials run elsewhere: paths become absolute here
        for key, text in named.items():
            raw = set_path(raw, key, str((file.parent / Path(text).expanduser()).resolve()))
        experiment = Experiment.model_validate(raw)
    return LoadedSpec(experiment=experiment, path=file.resolve(), raw=raw)
