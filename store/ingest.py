"""Moves spooled events into DuckDB, idempotently.

An event is `{"table": name, "row": {column: value}}`. Every table has a key;
re-ingesting an event changes nothing. Tables whose rows change over time
(a trial goes from running to complete) are upserted, and an older event never
overwrites a newer one: the row with the later ordering column wins, so spools
can be ingested in any order (a dead process's spool after a live one's).
Times travel as seconds since the epoch and become TIMESTAMPTZ here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from tunelab.store.errors import StoreError


@dataclass(frozen=True)
class TableRule:
    key: tuple[str, ...]
    order: str | None = None  # set for upserted tables: the newer row wins
    keep_on_update: tuple[str, ...] = ()


RULES: dict[str, TableRule] = {
    "experiments": TableRule(("name",), order="updated_at", keep_on_update=("created_at",)),
    "trials": TableRule(("experiment", "number"), order="updated_at"),
    "trial_params": TableRule(("experiment", "number", "name")),
    # a trial retried after out-of-memory logs the same steps again: the newer value wins
    "metrics": TableRule(("experiment", "trial", "split", "name", "step"), order="time"),
    "evaluations": TableRule(("experiment", "model_ref", "split", "name"), order="time"),
    "samples": TableRule(("experiment", "model_ref", "prompt_id"), order="time"),
    "data_reports": TableRule(("experiment", "fingerprint")),
}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main'",
        [table],
    ).fetchall()
    return {name: kind for name, kind in rows}


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
    missing_key = [k for k in rule.key if k not in present]
    if missing_key:
        raise StoreError(f"event for {table} lacks key column(s) {missing_key}")
    batch = pa.Table.from_pylist([{c: r.get(c) for c in present} for r in rows])
    name = f"_batch_{table}"
    con.register(name, batch)
    try:
        select = ", ".join(
            f'to_timestamp("{c}")' if types[c].startswith("TIMESTAMP") else f'"{c}"'
            for c in present
        )
        cols = ", ".join(f'"{c}"' for c in present)
        keys = ", ".join(f'"{c}"' for c in rule.key)
        sql = f'INSERT INTO "{table}" ({cols}) SELECT {select} FROM {name} ON CONFLICT ({keys}) '
        updates = [c for c in present if c not in rule.key and c not in rule.keep_on_update]
        if rule.order and updates:
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in updates)
            sql += (
                f'DO UPDATE SET {sets} WHERE "{table}"."{rule.order}" IS NULL '
                f'OR excluded."{rule.order}" >= "{table}"."{rule.order}"'
            )
        else:
            sql += "DO NOTHING"
        con.execute(sql)
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
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return count
