"""Where a dotted key is in a TOML text, so that every mistake can name its line. A light
scan of the text (tomllib keeps no positions): tables, keys, dotted keys, inline tables.
A key set by `--set` is found at its argument instead: the file is not to blame for it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


def key_lines(text: str) -> dict[str, int]:
    """Dotted key -> line number, for tables, keys and inline-table keys of a TOML text."""
    lines: dict[str, int] = {}
    prefix = ""
    key = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_.-]+)'
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(rf"^\[\[?\s*({key}(?:\s*\.\s*{key})*)\s*\]\]?", stripped)
        if header:
            prefix = ".".join(_unquote(p) for p in _split_dotted(header.group(1)))
            lines.setdefault(prefix, number)
            continue
        assign = re.match(rf"^({key}(?:\s*\.\s*{key})*)\s*=", stripped)
        if assign:
            dotted = ".".join(_unquote(p) for p in _split_dotted(assign.group(1)))
            full = f"{prefix}.{dotted}" if prefix else dotted
            lines.setdefault(full, number)
            for inner in re.finditer(rf"[{{,]\s*({key})\s*=", stripped[assign.end():]):
                lines.setdefault(f"{full}.{_unquote(inner.group(1))}", number)
    return lines


def _split_dotted(text: str) -> list[str]:
    return [p.strip() for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text)]


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1] if part[:1] in "\"'" and part[-1:] == part[:1] else part


def line_of(lines: dict[str, int], dotted: str) -> int | None:
    parts = dotted.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None


def split_key(text: str) -> list[str]:
    """`search.space."train.epochs"` -> ["search", "space", "train.epochs"]."""
    return [_unquote(p) for p in _split_dotted(text)]


@dataclass(frozen=True)
class Places:
    """Where to send a person for a dotted key: the `--set` argument that set it (or a table
    above it), else the key's line in the file, else the file."""

    file: Path
    lines: dict[str, int]
    overrides: dict[str, str] = field(default_factory=dict)  # dotted key -> its --set argument

    def __call__(self, dotted: str) -> str:
        for key, argument in self.overrides.items():
            if dotted == key or dotted.startswith(key + "."):
                return f"--set {argument}"
        for key, argument in self.overrides.items():  # a table the --set made, not the file
            if key.startswith(dotted + ".") and dotted not in self.lines:
                return f"--set {argument}"
        line = line_of(self.lines, dotted)
        return f"{self.file}:{line}" if line else str(self.file)
