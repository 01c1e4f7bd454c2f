"""`tunelab … --help` in words a person reads, set once on the whole command tree.

Typer (0.29, rich help) keeps every line break of a docstring, so a sentence wrapped in the
source file breaks in the middle on every terminal (`Ctrl-C once: the` / `running trials…`),
and it names each value by its Python annotation (`<bool>`, `<list[str]>`, `<list[Path]>`).
`HelpGroup`, the class of the `tunelab` group, fixes both on every command under it when the
tree is built: paragraphs are reflowed (the terminal wraps them), an option shows a metavar
(`PATH`, `TEXT`, `INTEGER`; none for a flag) and an argument its name in capitals.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_args

import typer
from typer.core import TyperArgument, TyperGroup

# the Python types of option values, in the words the help shows
METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def reflow(text: str | None) -> str | None:
    """Each paragraph on one line (the terminal wraps it); a paragraph that opens with `\\b`
    keeps its lines, as in click."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


class _Argument(TyperArgument):
    """An argument shown by its name alone (`FILE`), in the usage line and its help row."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return [name if self.required else f"[{name}]"]


def _metavar(param: Any) -> str:
    if param.is_flag:
        return ""  # a flag takes no value
    described = param.type_descriptor  # typer's reading of the annotation
    if described.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in described.choices)
    if described.is_path:
        return "PATH"
    kind = get_args(described.annotation)[0] if described.is_list else described.annotation
    return METAVARS.get(kind, "VALUE")


def tidy(command: Any) -> None:
    """The help of `command` and of every command under it, in words (see the module)."""
    command.help = reflow(command.help)
    command.short_help = reflow(command.short_help)
    # --help is made on first use; made now, so that it is tidied with the rest
    helper = command.get_help_option(typer.Context(command, **(command.context_settings or {})))
    for param in [*command.params, *([helper] if helper is not None else [])]:
        param.help = reflow(getattr(param, "help", None))
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            param.__class__ = _Argument  # typer offers no way to choose a parameter's class
        elif param.metavar is None:
            param.metavar = _metavar(param)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)


class HelpGroup(TyperGroup):
    """The `tunelab` group: its tree's help tidied once, when typer builds it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        tidy(self)
