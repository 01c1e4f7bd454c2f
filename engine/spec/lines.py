"""Where a dotted key is in a TOML text, so that every mistake can name its line. A light
scan of the text (tomllib keeps no positions): tables, keys, dotted keys, inline tables."""

from __future__ import annotations

import re


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
