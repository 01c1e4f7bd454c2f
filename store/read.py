"""Typed reads. Each opens the store read-only, queries, closes; values are frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tunelab.store import connection


@dataclass(frozen=True)
class ExperimentRecord:
    name: str
    description: str | None
    objective: str | None
    direction: str | None
    spec_hash: str | None
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class TrialRecord:
    experiment: str
    number: int
    state: str
    method_kind: str | None
    params: dict[str, Any]
    value: float | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    fail_reason: str | None
    error: str | None
    artifact_dir: str | None


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def get_experiment(store: str | Path, name: str) -> ExperimentRecord | None:
    with connection.reading(store) as con:
        row = con.execute(
            "SELECT name, description, objective, direction, spec_hash, created_at, updated_at "
            "FROM experiments WHERE name = ?",
            [name],
        ).fetchone()
    return ExperimentRecord(*row) if row else None


def list_experiments(store: str | Path) -> list[ExperimentRecord]:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT name, description, objective, direction, spec_hash, created_at, updated_at "
            "FROM experiments ORDER BY updated_at DESC"
        ).fetchall()
    return [ExperimentRecord(*r) for r in rows]


def list_trials(store: str | Path, experiment: str) -> list[TrialRecord]:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT experiment, number, state, method_kind, params, value, started_at, "
            "finished_at, duration_s, fail_reason, error, artifact_dir "
            "FROM trials WHERE experiment = ? ORDER BY number",
            [experiment],
        ).fetchall()
    return [
        TrialRecord(*r[:4], json.loads(r[4]) if r[4] else {}, *r[5:])  # type: ignore[arg-type]
        for r in rows
    ]


def evaluations(store: str | Path, experiment: str) -> dict[str, dict[str, float]]:
    """{model_ref: {"split/name": value}} for an experiment."""
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT model_ref, split, name, value FROM evaluations WHERE experiment = ?",
            [experiment],
        ).fetchall()
    found: dict[str, dict[str, float]] = {}
    for ref, split, name, value in rows:
        found.setdefault(ref, {})[f"{split}/{name}"] = value
    return found


def query(store: str | Path, sql: str, wait: float = 10.0) -> QueryResult:
    """Runs one statement on a read-only connection; DuckDB's own errors propagate."""
    with connection.reading(store, wait=wait) as con:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult([], [], [])
        columns = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
        rows = cursor.fetchall()
    return QueryResult(columns, types, rows)


def experiment_spec(store: str | Path, name: str) -> dict[str, Any]:
    """The resolved experiment an experiment was last run with (empty if unknown)."""
    with connection.reading(store) as con:
        row = con.execute("SELECT spec FROM experiments WHERE name = ?", [name]).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def experiment_source(store: str | Path, name: str) -> str | None:
    """The experiment file an experiment was last run from."""
    with connection.reading(store) as con:
        row = con.execute("SELECT spec_path FROM experiments WHERE name = ?", [name]).fetchone()
    return row[0] if row else None
