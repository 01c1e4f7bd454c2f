"""The whole store to Parquet files, from one read-only snapshot (`tunelab export-store`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tunelab.store import connection
from tunelab.store.damage import is_damage, reason, truncation, what_else
from tunelab.store.errors import StoreDamaged


@dataclass(frozen=True)
class ExportedTable:
    table: str
    rows: int
    path: Path
    bytes: int


def export_store(store: str | Path, folder: str | Path, wait: float = 10.0) -> list[ExportedTable]:
    """Every table of the store to `folder/TABLE.parquet` (zstd), from one read-only snapshot.

    Each file is written under a temporary name and renamed once complete, so the folder never
    holds a partial file. A damaged store is exported as far as it can be read: the tables that
    cannot be read are skipped, and StoreDamaged then names them and the files that were written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done: list[ExportedTable] = []
    failed: dict[str, str] = {}
    try:
        with connection.reading(store, wait=wait, check=False) as con:
            _export_tables(con, folder, done, failed)
    except StoreDamaged as error:
        if done or failed:
            raise
        raise StoreDamaged(f"{store} is damaged ({error.why}); DuckDB cannot read it, so "
                           "nothing could be exported.\n" + "\n".join(what_else(Path(store))),
                           path=str(store), why=error.why) from error
    truncated = truncation(Path(store))
    if failed or truncated:
        written = ", ".join(f"{d.table} ({d.rows:,} rows)" for d in done) or "none"
        lines = [f"{store} is damaged. Exported to {folder}: {written}."]
        if failed:
            lines.append("Could not read: "
                         + "; ".join(f"{t} ({why})" for t, why in failed.items()) + ".")
        else:
            lines.append(f"Every table read, but the file is {truncated}: check the rows.")
        raise StoreDamaged("\n".join(lines + what_else(Path(store))), path=str(store))
    return done


def _export_tables(con: duckdb.DuckDBPyConnection, folder: Path, done: list[ExportedTable],
                   failed: dict[str, str]) -> None:
    """Each table to its Parquet file; a table DuckDB cannot read goes to `failed`."""
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name").fetchall()]
    for table in tables:
        out = folder / f"{table}.parquet"
        partial = folder / f".{table}.parquet.{os.getpid()}.partial"
        literal = str(partial).replace("'", "''")
        try:
            count = con.execute(f'COPY "{table}" TO \'{literal}\' '
                                "(FORMAT parquet, COMPRESSION zstd)").fetchall()
        except duckdb.Error as error:
            partial.unlink(missing_ok=True)
            if not is_damage(error):
                raise
            failed[table] = reason(error)
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(out)
        done.append(ExportedTable(table, int(count[0][0]) if count else 0, out,
                                  out.stat().st_size))
