"""`tunelab … --help` as a person reads it, for every command and subcommand, at 80 columns
and at a wide terminal: no Python type (`<bool>`, `<list[str]>`, `<list[Path]>`), no sentence
broken where the source file's line ended (`Ctrl-C once: the` / `running trials…`); and
`tunelab --version`."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tunelab.tui.cli import app

from conftest import tunelab_command

WIDTHS = (80, 200)
# a type in angle brackets, as typer prints an annotation: <bool>, <str>, <list[Path]>, <int range>
PYTHON_TYPE = re.compile(r"<[A-Za-z_]+(?:\[[^\]>]*\])?(?: range)?>")
CELL = re.compile(r"\S+(?: \S+)*")  # a run of words; two spaces or more end it


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...], width: int) -> str:
    done = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)},
                              terminal_width=width)
    assert done.exit_code == 0, done.output
    return done.output


def _cells(line: str) -> list[tuple[int, str]]:
    """(column, text) of each run of words of a line, box borders left out."""
    return [(m.start(), m.group()) for m in CELL.finditer(line.replace("│", " "))]


def cut_lines(text: str, width: int) -> list[str]:
    """Pairs of lines where the second continues the first's text, in the same column, though
    its first word would have fitted at the end of the first: a break the author's source
    file made, not the terminal."""
    lines = text.splitlines()
    cut = []
    for above, below in zip(lines, lines[1:], strict=False):
        a, b = _cells(above), _cells(below)
        if not a or len(b) != 1 or b[0][0] != a[-1][0] or b[0][1].startswith("["):
            continue  # not a continuation (typer puts `[default: …]` on a line of its own)
        border = above.rstrip().endswith("│")
        edge = len(above.rstrip()) - 3 if border else width - 2  # the last column text may use
        end = a[-1][0] + len(a[-1][1])
        if end + 1 + len(b[0][1].split()[0]) <= edge:
            cut.append(f"{above.strip()}\n{below.strip()}")
    return cut


def test_cut_lines_finds_a_break_in_the_middle_of_a_sentence() -> None:
    # the detector itself, on the case seen in `tunelab run --help` at 80 columns
    seen = (" Running it again resumes a stopped sweep; finished trials are kept. Ctrl-C\n"
            " once: the\n"
            " running trials stop after their current evaluation; twice: they stop now.\n")
    assert cut_lines(seen, 80) == ["once: the\nrunning trials stop after their current "
                                   "evaluation; twice: they stop now."]
    wrapped = (" Running it again resumes a stopped sweep; finished trials are kept. Ctrl-C\n"
               " once: the running trials stop after their current evaluation; twice: they\n"
               " stop now.\n")
    assert cut_lines(wrapped, 80) == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tunelab")
def test_every_help_reads_without_python_types_or_cut_sentences(path: tuple[str, ...],
                                                               width: int) -> None:
    text = _help(path, width)
    assert not PYTHON_TYPE.findall(text), text
    assert not cut_lines(text, width), "\n\n".join(cut_lines(text, width)) + "\n\n" + text


def test_run_help_keeps_the_ctrl_c_sentence_whole_at_80_columns() -> None:
    text = " ".join(line.strip(" │") for line in _help(("run",), 80).splitlines())
    assert "Ctrl-C once: the running trials stop after their current evaluation" in \
        re.sub(r"\s+", " ", text)


def test_version_prints_the_installed_version() -> None:
    done = subprocess.run([*tunelab_command(), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tunelab {version('tunelab')}"
