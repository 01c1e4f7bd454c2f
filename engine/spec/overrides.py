"""Values set by dotted key: `--set train.epochs=2` on the command line, a trial's sampled
parameters, a dpo stage's parent sections."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from tunelab.engine.errors import SpecError


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the dotted key set to value (tables created as needed)."""
    return set_parts(raw, dotted.split("."), value)


def set_parts(raw: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    """set_path for a key given by its parts, which may hold dots themselves (the keys of
    [search.space] are dotted paths: `search.space."train.epochs"`)."""
    out = json.loads(json.dumps(raw))
    node = out
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """`train.epochs=2` -> ("train.epochs", 2); the value is read as TOML, else as a string.
    The key is as written (TOML quoting kept: split it with lines.split_key)."""
    key, sign, value = text.partition("=")
    if not sign or not key.strip():
        raise SpecError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=2")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed
