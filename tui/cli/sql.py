"""`tunelab sql`: read-only SQL over one store or several, as a table for people or as csv,
json or parquet for scripts."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.store.errors import TunelabError
from tunelab.tui.cli.options import StoresOption, default_store
from tunelab.tui.cli.output import console, errors


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    """A value as a person reads it in a table: short numbers, times to the second."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return fmt.number(value)
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


FORMATS = ("table", "csv", "json", "parquet")


def _check_out(out: Path) -> None:
    """Refused before the query runs: a folder that is not there is a typo more often than a
    wish (no folder is made), and a folder is not a file."""
    folder = out.parent
    if not folder.is_dir():
        raise TunelabError(f"--out {out}: the folder {folder} does not exist; create it first "
                           "or choose another path", "bad option")
    if out.is_dir():
        raise TunelabError(f"--out {out} is a folder; give a file name", "bad option")


# A query may start with a comment ("-- the best trial…"): not an option, the query itself.
SETTINGS = {"ignore_unknown_options": True}


def sql(
    query: Annotated[str | None, typer.Argument(
        help="The SQL query; read from standard input when absent or '-'.")] = None,
    stores: StoresOption = None,
    format_: Annotated[str, typer.Option(
        "--format", help="table (for people); csv, json or parquet (for scripts).")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the result to this file (needed for parquet).")] = None,
) -> None:
    """Query the store with SQL (read-only).

    Tables: experiments, trials, trial_params, metrics, evaluations, samples, data_reports,
    reviews, review_items,
    votes. Views: best_trials, curves, trial_summary, leaderboard (see the README). With several
    --store files, each table is the union of the files' and each file is also reachable by its
    name (box1.duckdb → box1.trials).
    """
    import duckdb

    if format_ not in FORMATS:
        raise TunelabError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}",
                           "bad option")
    if format_ == "parquet" and out is None:
        raise TunelabError("--format parquet writes a file: add --out FILE.parquet", "bad option")
    if out is not None:
        _check_out(out)
    paths = stores or [default_store()]
    text = sys.stdin.read() if query in (None, "-") else query
    if not text or not text.strip():
        raise TunelabError("no query given", "bad query")
    st.check_read_only(text)
    for path in paths:
        if path.exists():
            st.flush_orphans(path)
    try:
        if format_ == "parquet":
            assert out is not None
            count = st.query_to_parquet(paths, text, out)
            errors.print(f"{count:,} row{'s' if count != 1 else ''} → {out}")
            return
        result = st.query(paths, text)
    except duckdb.Error as error:
        raise TunelabError(str(error), "query failed") from None
    if format_ in {"csv", "json"}:
        buffer = io.StringIO()
        if format_ == "csv":
            # LF, as the DuckDB shell writes it: the csv module's default CRLF would carry a \r
            # into every last value read by `$(tunelab sql --format csv …)`
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows([[_plain(v) for v in row] for row in result.rows])
        else:
            rows = [{c: _plain(v) for c, v in zip(result.columns, row, strict=True)}
                    for row in result.rows]
            buffer.write(json.dumps(rows, indent=1) + "\n")
        if out is not None:
            out.write_text(buffer.getvalue(), encoding="utf-8")
        else:
            sys.stdout.write(buffer.getvalue())
        return
    table = Table()
    for column, kind in zip(result.columns, result.types, strict=True):
        numeric = any(k in kind.upper() for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL"))
        table.add_column(column, justify="right" if numeric else "left")
    for row in result.rows:
        table.add_row(*[_cell(v) for v in row])
    counted = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if out is None:
        # each column needs its title and a few characters of its values, plus the borders
        cells = [[_cell(v) for v in column] for column in zip(*result.rows, strict=True)]
        needed = sum(max(len(name), min(max((len(c) for c in column), default=0), 12)) + 3
                     for name, column in zip(result.columns, cells or [[]] * len(result.columns),
                                             strict=True)) + 1
        if needed > console.width:
            # too wide to read squeezed: one block per row, a column a line (psql's \x)
            for number, row in enumerate(result.rows, start=1):
                record = Table(show_header=False, box=None, padding=(0, 1), title_justify="left",
                               title=f"── row {number} ──")
                record.add_column(style="bold", no_wrap=True)
                record.add_column()
                for column, value in zip(result.columns, row, strict=True):
                    record.add_row(column, _cell(value))
                console.print(record)
        else:
            console.print(table)
        console.print(counted)
        return
    with out.open("w", encoding="utf-8") as f:
        target = Console(file=f, width=200, highlight=False)
        target.print(table)
        target.print(counted)
