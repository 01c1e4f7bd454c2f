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


def _merge_spools(paths: list[Path]) -> None:
    """Events still in a store's spool are merged before the query, when the store can be
    written; when it cannot (a full disk, a damaged file) the query reads it as it is."""
    for path in paths:
        if not path.exists():
            continue
        try:
            st.flush_orphans(path)
        except st.StoreError as error:
            first = error.message.splitlines()[0]
            errors.print(f"note: {path}: the events waiting in its spool are not in this result "
                         f"({error.title}: {first})", markup=False)


def sql(
    query: Annotated[str | None, typer.Argument(
        help="The SQL query; read from standard input when absent or '-'.")] = None,
    stores: StoresOption = None,
    format_: Annotated[str, typer.Option(
        "--format", help="table (for people); csv, json or parquet (for scripts).")] = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the result to this file (needed for parquet).")] = None,
    allow_files: Annotated[list[Path] | None, typer.Option(
        "--allow-files", help="A file or folder the query may use (read_csv, read_parquet, glob…; "
                              "repeatable). Without it a query reads the stores only.")] = None,
) -> None:
    import duckdb

    if format_ not in FORMATS:
        raise TunelabError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}",
                           "bad option")
    if format_ == "parquet" and out is None:
        raise TunelabError("--format parquet writes a file: add --out FILE.parquet", "bad option")
    if out is not None:
        _check_out(out)
    allowed = allow_files or []
    for path in allowed:
        if not path.exists():
            raise TunelabError(f"--allow-files {path}: no such file or folder", "bad option")
    paths = stores or [default_store()]
    text = sys.stdin.read() if query in (None, "-") else query
    if not text or not text.strip():
        raise TunelabError("no query given", "bad query")
    st.check_read_only(text)
    _merge_spools(paths)
    try:
        if format_ == "parquet":
            assert out is not None
            count = st.query_to_parquet(paths, text, out, allow=allowed)
            errors.print(f"{fmt.counted(count, 'row')} → {out}")
            return
        result = st.query(paths, text, allow=allowed)
    except duckdb.Error as error:
        raise TunelabError(str(error), "query failed") from None
    except OSError as error:  # the parquet file (a full disk, /dev/full)
        raise TunelabError(f"--out {out}: cannot be written: {error.strerror or error}",
                           "cannot write") from None
    if format_ in {"csv", "json"}:
        _write(_as_text(result, format_), out)
        return
    _print_table(result, out)


tables, views = st.schema_names()
sql.__doc__ = (  # generated, so that the list is the schema's: one paragraph a line
    "Query the store with SQL (read-only).\n\n"
    f"Tables: {', '.join(tables)}. Views: {', '.join(views)} (see docs/store-and-sql.md). With "
    "several --store files, each table is the union of the files' and each file is also "
    "reachable by its name (box1.duckdb → box1.trials).\n\n"
    "A query reads the stores only: no other file, no setting, no extension, unless "
    "--allow-files names the files it may use.")


def _as_text(result: st.QueryResult, format_: str) -> str:
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
    return buffer.getvalue()


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        st.write_whole(out, lambda f: f.write(text.encode("utf-8")))
    except OSError as error:
        raise TunelabError(f"--out {out}: cannot be written: {error.strerror or error}",
                           "cannot write") from None


def _print_table(result: st.QueryResult, out: Path | None) -> None:
    """On a terminal, fitted to the window (one block per row when too wide to read). Into a
    pipe or a file, whole: every value as it is, at the table's natural width."""
    table = Table()
    for column, kind in zip(result.columns, result.types, strict=True):
        numeric = any(k in kind.upper() for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL"))
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    cells = [[_cell(v) for v in row] for row in result.rows]
    for row in cells:
        table.add_row(*row)
    counted = fmt.counted(len(result.rows), "row")
    if out is None and console.is_terminal:
        _print_fitted(result, cells, table)
        console.print(counted)
        return
    # each column at its widest line, plus the borders and padding rich draws
    widths = [max([len(line) for c in column for line in c.splitlines() or [""]] + [len(name)])
              for name, column in zip(result.columns, zip(*cells, strict=True) if cells
                                      else [[]] * len(result.columns), strict=True)]
    width = max(80, sum(widths) + 3 * len(widths) + 1)
    buffer = io.StringIO()
    Console(file=buffer, width=width, highlight=False, color_system=None).print(table)
    _write(buffer.getvalue() + counted + "\n", out)


def _print_fitted(result: st.QueryResult, cells: list[list[str]], table: Table) -> None:
    # each column needs its title and a few characters of its values, plus the borders
    columns = [list(c) for c in zip(*cells, strict=True)] or [[]] * len(result.columns)
    needed = sum(max(len(name), min(max((len(c) for c in column), default=0), 12)) + 3
                 for name, column in zip(result.columns, columns, strict=True)) + 1
    if needed <= console.width:
        for column in table.columns:
            column.no_wrap = False
        console.print(table)
        return
    # too wide to read squeezed: one block per row, a column a line (psql's \x)
    for number, row in enumerate(cells, start=1):
        record = Table(show_header=False, box=None, padding=(0, 1), title_justify="left",
                       title=f"── row {number} ──")
        record.add_column(style="bold", no_wrap=True)
        record.add_column()
        for name, value in zip(result.columns, row, strict=True):
            record.add_row(name, value)
        console.print(record)
