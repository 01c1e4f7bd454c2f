"""Questions about the schema by dotted key: is it a key of the experiment, does it hold whole
numbers, which valid key is closest to a misspelled one."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from tunelab.engine.spec.experiment import Experiment


def model_at(parts: list[str]) -> type[BaseModel] | None:
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


def close_match(model: type[BaseModel] | None, name: str) -> str | None:
    if model is None:
        return None
    found = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
    return found[0] if found else None


def path_exists(dotted: str) -> bool:
    parts = dotted.split(".")
    holder = model_at(parts)
    return holder is not None and parts[-1] in holder.model_fields


def _kinds(dotted: str) -> set[Any]:
    """The types a key's value may have (those of a union, or the one); empty for no such key."""
    parts = dotted.split(".")
    holder = model_at(parts)
    if holder is None or parts[-1] not in holder.model_fields:
        return set()
    annotation = holder.model_fields[parts[-1]].annotation
    return set(getattr(annotation, "__args__", ())) or {annotation}


def field_is_int(dotted: str) -> bool:
    """True when the key holds whole numbers (its range is sampled as integers)."""
    kinds = _kinds(dotted)
    return int in kinds and float not in kinds


def field_is_number(dotted: str) -> bool:
    """True when the key holds numbers (whole or not), so that a range can be searched over it;
    false for true/false keys (a bool is an int to Python, never a range to search)."""
    kinds = _kinds(dotted)
    return bool(kinds & {int, float}) and bool not in kinds
