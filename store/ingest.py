"""Moves spooled events into DuckDB, idempotently.

An event is `{"table": name, "row": {column: value}}`. Every table has a key;
re-ingesting an event changes nothing. Tables whose rows change over time
(a trial goes from running to complete) are upserted, and an older event never
overwrites a newer one: the row with the later ordering column wins, so spools
can be ingested in any order (a dead process's spool after a live one's).
Times travel as seconds since the epoch and become TIMESTAMPTZ here.

Two paths do the same thing. `ingest_file` hands a spool file to DuckDB's own
JSON reader and does the dedupe and upsert in SQL: no Python per row, which is
what makes hundreds of thousands of metric rows per second possible. When that
reader refuses a file (a hand-edited line, a value of the wrong type) the file
goes through `ingest_events`, the per-row Python path, which skips lines that
are not JSON and names the table and column that is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tunelab.store.connection import _is_disk_full
from tunelab.store.damage import is_damage
from tunelab.store.errors import StoreError
from tunelab.store.rows import ROW_TYPES
from tunelab.store.views import refresh_trial_summary


@dataclass(frozen=True)
class TableRule:
    """How events of one table are ingested (see Row in store/rows.py)."""

    key: tuple[str, ...]
    order: str | None = None  # set for upserted tables: the newer row wins
    keep_on_update: tuple[str, ...] = ()
    # Nearly every event is a new key: the file path first tries a plain INSERT, which DuckDB
    # does at the speed of its own reader, and only when a key is already there or repeats (a
    # re-ingest, a retried trial) does the upsert.
    mostly_new: bool = False
    # A row in this state is final: only an event with the same value of `same_run` (the same
    # run of the same trial) changes it. So a trial of another study that reuses a number (a
    # journal lost and started again) never overwrites a finished trial's row.
    final_state: str | None = None
    same_run: str | None = None


# Each table's rule, read from its row type (store/rows.py), parents before children: the order
# the events of one batch are written in.
RULES: dict[str, TableRule] = {
    row.TABLE: TableRule(row.KEY, row.NEWEST_BY, row.KEEP_ON_UPDATE, row.MOSTLY_NEW,
                         row.FINAL_STATE, row.SAME_RUN)
    for row in ROW_TYPES
}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {name: kind for name, kind in rows}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _upsert_sql(table: str, source: str, columns: list[str], select: list[str]) -> str:
    """INSERT … ON CONFLICT for rows already one per key in `source`."""
    rule = RULES[table]
    cols = ", ".join(_q(c) for c in columns)
    keys = ", ".join(_q(c) for c in rule.key)
    sql = (f"INSERT INTO {_q(table)} ({cols}) SELECT {', '.join(select)} FROM {source} "
           f"ON CONFLICT ({keys}) ")
    updates = [c for c in columns if c not in rule.key and c not in rule.keep_on_update]
    if rule.order and updates:
        sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in updates)
        order = _q(rule.order)
        sql += (f"DO UPDATE SET {sets} WHERE ({_q(table)}.{order} IS NULL "
                f"OR excluded.{order} >= {_q(table)}.{order})")
        if rule.final_state and rule.same_run:
            state, same = "'" + rule.final_state.replace("'", "''") + "'", _q(rule.same_run)
            sql += (f" AND ({_q(table)}.state IS DISTINCT FROM {state} "
                    f"OR excluded.{same} IS NOT DISTINCT FROM {_q(table)}.{same})")
    else:
        sql += "DO NOTHING"
    return sql


# ---------------------------------------------------------------- the fast path: SQL on the file


def _transport_type(kind: str) -> str:
    """How a column travels in the spool: times as epoch seconds, everything else as itself."""
    return "DOUBLE" if kind.startswith("TIMESTAMP") else kind


def _row_struct(con: duckdb.DuckDBPyConnection, present: Collection[str]
                ) -> tuple[str, dict[str, dict[str, str]], set[str]]:
    """The type DuckDB's reader gives the `row` of an event: every column of the tables present.

    A column name with different types in different tables travels as JSON and is cast per
    table. Returns the STRUCT type, each table's {column: type}, and the tables with a column
    that has a DEFAULT (where an absent value and a NULL differ, so a plain INSERT won't do).
    """
    rows = con.execute(
        "SELECT table_name, column_name, data_type, column_default IS NOT NULL "
        "FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "ORDER BY table_name, column_index").fetchall()
    tables: dict[str, dict[str, str]] = {t: {} for t in RULES}
    defaults = set()
    for table, column, kind, has_default in rows:
        if table in tables:
            tables[table][column] = kind
            if has_default:
                defaults.add(table)
    union: dict[str, str] = {}
    for table, types in tables.items():
        if table not in present:
            continue  # fewer fields for the reader to look for: a metrics-only file reads faster
        for column, kind in types.items():
            kind = _transport_type(kind)
            union[column] = kind if union.get(column, kind) == kind else "JSON"
    fields = ", ".join(f"{_q(c)} {k}" for c, k in union.items())
    return f"STRUCT({fields})", {"__union__": union, **tables}, defaults


def _cast(column: str, kind: str, carried: str) -> str:
    ref = f"_row.{_q(column)}"
    if carried == "JSON" and kind != "JSON":
        ref = f"({ref})::{_transport_type(kind)}"
    if kind.startswith("TIMESTAMP"):
        return f"to_timestamp({ref})"
    if kind == "JSON":  # the engine sends json.dumps(...) text; a nested object works too
        return f"CASE WHEN json_type({ref}) = 'VARCHAR' THEN ({ref} ->> '$')::JSON ELSE {ref} END"
    return ref


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path,
                tables: Collection[str] | None = None) -> int:
    """Ingests one spool file in one transaction; returns the rows written. Safe to repeat.

    `tables`, when the caller knows it (a Spool knows what it wrote), names the tables the file
    has events for; otherwise the file is read once more to find out. The caller owns the file
    (its writer, or the holder of its flock), so nobody appends meanwhile. A torn last line (its
    writer was killed mid-write) was never acknowledged and is left out. Falls back to the
    per-row path when DuckDB's reader refuses the file.
    """
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return 0
    with path.open("rb") as f:
        f.seek(size - 1)
        torn = f.read(1) != b"\n"
    if torn:
        return ingest_events(con, read_events(path))
    for plain_insert in (True, False):
        con.execute("BEGIN")
        try:
            count = _ingest_file_sql(con, path, tables, plain_insert)
            con.execute("COMMIT")
            return count
        except StoreError:
            _rollback(con)
            raise
        except duckdb.ConstraintException:
            # A key already there or repeated (or missing): a plain INSERT refuses it and the
            # whole file goes again through the upsert, which keeps the newest row.
            _rollback(con)
            if not plain_insert:
                break
        except duckdb.Error as error:
            _rollback(con)
            if is_damage(error) or _is_disk_full(error):
                raise  # the file or the disk, not the spool, is at fault: per row fails the same
            break
    return ingest_events(con, read_events(path))


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Rolls back the batch; a COMMIT that failed (a full disk) has already ended it."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass  # "no transaction is active": nothing was committed


def _ingest_file_sql(con: duckdb.DuckDBPyConnection, path: Path,
                     tables: Collection[str] | None, plain_insert: bool = False) -> int:
    literal = "'" + str(path).replace("'", "''") + "'"
    if tables is None:
        found = con.execute(
            f"SELECT DISTINCT \"table\" FROM read_json({literal}, format = 'newline_delimited', "
            "columns = {'table': 'VARCHAR'}, maximum_object_size = 268435456)").fetchall()
        tables = [t for (t,) in found]
    unknown = [t for t in tables if t not in RULES]
    if unknown:
        raise StoreError(f"unknown table in event: {unknown[0]!r} (in {path})")
    struct, types, defaults = _row_struct(con, tables)
    # Each table's rows straight from DuckDB's reader into the table: one pass over the file per
    # table present (a trainer's spool holds metrics, and evaluations at the end). A value of the
    # wrong type or a line that is not JSON makes the reader raise, and the caller takes the
    # per-row path: nothing is skipped silently here.
    reader = (f"read_json({literal}, format = 'newline_delimited', "
              f"columns = {{'table': 'VARCHAR', 'row': '{struct}'}}, "
              "maximum_object_size = 268435456)")
    count = 0
    for table in RULES:  # parents before children
        if table in tables:
            source = f"(SELECT \"row\" AS _row FROM {reader} WHERE \"table\" = '{table}')"
            if plain_insert and RULES[table].mostly_new and table not in defaults:
                count += _plain_insert(con, table, source, types[table], types["__union__"])
            else:
                count += _insert_from_reader(con, table, source, types[table],
                                             types["__union__"])
    if "trial_params" in tables:
        refresh_trial_summary(con)
    return count


def _plain_insert(con: duckdb.DuckDBPyConnection, table: str, source: str,
                  types: dict[str, str], union: dict[str, str]) -> int:
    """Straight from the reader into the table, as plain DuckDB would: raises ConstraintException
    when a key is already in the table, repeats in the file or is missing. With no DEFAULT in
    the table, a column an event leaves out is NULL either way, so a new row is the upsert's."""
    select = ", ".join(_cast(c, types[c], union[c]) for c in types)
    cols = ", ".join(_q(c) for c in types)
    done = con.execute(f"INSERT INTO {_q(table)} ({cols}) SELECT {select} FROM {source}").fetchall()
    return int(done[0][0]) if done else 0


def _insert_from_reader(con: duckdb.DuckDBPyConnection, table: str, source: str,
                        types: dict[str, str], union: dict[str, str]) -> int:
    rule = RULES[table]
    select = [_cast(c, types[c], union[c]) for c in types]
    if not rule.order:
        # Append-only: ON CONFLICT DO NOTHING also drops duplicates within the file.
        done = con.execute(_upsert_sql(table, source, list(types), select)).fetchall()
        return int(done[0][0]) if done else 0
    # Upserted tables: metrics (hundreds of thousands of rows a file) and the small per-trial,
    # per-experiment ones. One pass over the file takes the table's rows, cast, into an Arrow
    # batch; which columns the events carry (a value in at least one row, as the per-row path
    # does, so an event that leaves a column out does not blank it) and whether a key repeats
    # are then read off the batch in memory instead of by further passes over the file. The
    # batch is as big as one spool file, which is ingested after every few hundred events.
    keys = ", ".join(_q(k) for k in rule.key)
    # _key_hash: one 64-bit value per key, computed in the same pass, so that whether a key
    # repeats is one count over a column of integers (a collision only sends the file down the
    # dedupe below, which is right for any file).
    batch = con.sql("SELECT *, hash(" + keys + ") AS _key_hash FROM (SELECT " + ", ".join(
        f"{_cast(c, types[c], union[c])} AS {_q(c)}" for c in types) + f" FROM {source})"
    ).to_arrow_table()
    if batch.num_rows == 0:
        return 0
    repeats = pc.count_distinct(batch.column("_key_hash")).as_py() < batch.num_rows
    batch = batch.drop_columns(["_key_hash"])
    columns = [c for c in types if batch.column(c).null_count < batch.num_rows]
    missing = [k for k in rule.key if k not in columns]
    if missing:
        raise StoreError(f"event for {table} lacks key column(s) {missing}")
    name = f"_ingest_{table}"
    con.register(name, batch)
    try:
        rows = name
        if repeats:
            # A key repeats (a trial retried after out-of-memory logs its steps again): keep the
            # newest. ON CONFLICT cannot choose between two rows of one statement itself.
            rows = (f"(SELECT * FROM {name} QUALIFY row_number() OVER "
                    f"(PARTITION BY {keys} ORDER BY {_q(rule.order)} DESC NULLS LAST) = 1)")
        done = con.execute(_upsert_sql(table, rows, columns, [_q(c) for c in columns])).fetchall()
    finally:
        con.unregister(name)
    return int(done[0][0]) if done else 0


# ---------------------------------------------------------------- the per-row path


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a spool; a torn last line (killed mid-write) was never acknowledged."""
    events = []
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def _unique(rule: TableRule, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per key: the newest for upserted tables, the first otherwise."""
    chosen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        key = tuple(row.get(k) for k in rule.key)
        if key not in chosen:
            chosen[key] = row
        elif rule.order and (row.get(rule.order) or 0) >= (chosen[key].get(rule.order) or 0):
            chosen[key] = row
    return list(chosen.values())


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[Mapping[str, Any]]) -> None:
    rule = RULES[table]
    types = _columns(con, table)
    rows = _unique(rule, rows)
    present = [c for c in types if any(c in r for r in rows)]
    # every key column is NOT NULL: one event without it would abort the transaction in DuckDB
    missing_key = [k for k in rule.key if any(r.get(k) is None for r in rows)]
    if missing_key:
        raise StoreError(f"event for {table} lacks key column(s) {missing_key}")
    batch = pa.Table.from_pylist([{c: r.get(c) for c in present} for r in rows])
    name = f"_batch_{table}"
    con.register(name, batch)
    try:
        select = [f"to_timestamp({_q(c)})" if types[c].startswith("TIMESTAMP") else _q(c)
                  for c in present]
        con.execute(_upsert_sql(table, name, present, select))
    finally:
        con.unregister(name)


def ingest_events(con: duckdb.DuckDBPyConnection, events: Iterable[Mapping[str, Any]]) -> int:
    """Writes events in one transaction; returns how many were given. Safe to repeat."""
    by_table: dict[str, list[Mapping[str, Any]]] = {}
    count = 0
    for event in events:
        table = event.get("table")
        if table not in RULES:
            raise StoreError(f"unknown table in event: {table!r}")
        by_table.setdefault(table, []).append(event["row"])
        count += 1
    if not count:
        return 0
    con.execute("BEGIN")
    try:
        for table in RULES:  # parents before children, the order of RULES
            if table in by_table:
                _insert(con, table, by_table[table])
        if "trial_params" in by_table:
            refresh_trial_summary(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return count
