"""Typed reads. Each opens the store read-only, queries, closes; values are frozen dataclasses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from tunelab.store import connection
from tunelab.store.errors import StoreError


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
    # The objective so far: `value` once the trial has finished, the best validation value
    # logged yet while it runs (None before its first evaluation).
    best_value: float | None = None


@dataclass(frozen=True)
class CurveSeries:
    """One logged quantity of a trial over training, at most `max_points` points."""

    split: str                      # train | validation
    name: str                       # loss, learning_rate, grad_norm, ...
    steps: tuple[int, ...]
    tokens: tuple[int | None, ...]
    epochs: tuple[float | None, ...]
    values: tuple[float | None, ...]
    total_points: int               # how many rows the store holds (more than shown if downsampled)


@dataclass(frozen=True)
class TrialCurve:
    experiment: str
    trial: int
    series: tuple[CurveSeries, ...]

    def get(self, split: str, name: str) -> CurveSeries | None:
        return next((s for s in self.series if s.split == split and s.name == name), None)


def get_experiment(store: str | Path, name: str) -> ExperimentRecord | None:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT name, description, objective, direction, spec_hash, created_at, updated_at "
            "FROM experiments WHERE name = ?",
            [name],
        ).fetchall()
    row = rows[0] if rows else None
    return ExperimentRecord(*row) if row else None


def list_experiments(store: str | Path) -> list[ExperimentRecord]:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT name, description, objective, direction, spec_hash, created_at, updated_at "
            "FROM experiments ORDER BY updated_at DESC"
        ).fetchall()
    return [ExperimentRecord(*r) for r in rows]


def _objective_metric(objective: str | None) -> tuple[str, str]:
    """The metrics row an objective is read from: eval_loss → (validation, loss)."""
    objective = objective or "eval_loss"
    return ("validation", objective[5:]) if objective.startswith("eval_") else ("train", objective)


def list_trials(store: str | Path, experiment: str,
                numbers: Sequence[int] | None = None) -> list[TrialRecord]:
    """The trials of an experiment by number, each with its objective so far (`best_value`);
    only those `numbers` when given (a live screen re-reads the trials that changed)."""
    with connection.reading(store) as con:
        return _list_trials(con, experiment, numbers)


def _list_trials(con: duckdb.DuckDBPyConnection, experiment: str,
                 numbers: Sequence[int] | None) -> list[TrialRecord]:
    return [TrialRecord(*r[:13]) for r in _trial_rows(con, experiment, numbers)]


def _trial_rows(con: duckdb.DuckDBPyConnection, experiment: str, numbers: Sequence[int] | None,
                running: Sequence[int] | None = None) -> list[tuple[Any, ...]]:
    """Each trial as TrialRecord's fields in order (params parsed, the objective so far last),
    then the overview's columns: cost and shape, and for a running trial its newest step, epoch
    and training loss. `running`: the numbers of the running trials, when the caller knows them."""
    found = con.execute("SELECT objective, direction FROM experiments WHERE name = ?",
                        [experiment]).fetchall()
    row = found[0] if found else None
    split, name = _objective_metric(row[0] if row else None)
    best = "max" if row and row[1] == "maximize" else "min"
    # Only running trials need the metrics: finished ones carry their value. Their numbers
    # go in as a list, which lets DuckDB skip the row groups of other trials; a subquery on
    # `trials` did not (19 ms against 2 ms at 5,000,000 metric rows), and list_contains on
    # the list costs 1.5 ms less than IN (SELECT unnest(...)). One scan gives both the
    # objective so far and the live position (two scans cost 1.5 ms more).
    if running is None:
        running = con.execute(
            "SELECT coalesce(list(number), []) FROM trials WHERE experiment = ? "
            "AND state = 'running'", [experiment]).fetchall()[0][0]
    args: dict[str, Any] = {"experiment": experiment}
    only = ""
    if numbers is not None:
        only, args["numbers"] = "AND list_contains($numbers::INTEGER[], number)", list(numbers)
    if running:
        live = f"""SELECT trial, {best}(value) FILTER (WHERE split = $split AND name = $name)
                          AS best, max(step) AS step, arg_max(epoch, step) AS epoch,
                          arg_max(value, step) FILTER (WHERE split = 'train' AND name = 'loss')
                          AS loss
                   FROM metrics WHERE experiment = $experiment
                     AND list_contains($running::INTEGER[], trial)
                   GROUP BY trial"""
        args.update(split=split, name=name, running=list(running))
    else:  # nothing runs: the metrics are not read at all (a damaged block there stays unread)
        live = ("SELECT NULL::INTEGER AS trial, NULL::DOUBLE AS best, NULL::INTEGER AS step, "
                "NULL::DOUBLE AS epoch, NULL::DOUBLE AS loss LIMIT 0")
    rows = con.execute(
        f"""WITH t AS (SELECT * FROM trials WHERE experiment = $experiment {only}),
            live AS ({live})
        SELECT t.experiment, t.number, t.state, t.method_kind, t.params, t.value,
               t.started_at, t.finished_at, t.duration_s, t.fail_reason, t.error,
               t.artifact_dir, coalesce(t.value, live.best),
               t.device, t.steps, t.tokens, t.cost, t.success, t.peak_memory_bytes,
               t.params_trainable, t.updated_at, live.step, live.epoch, live.loss
        FROM t LEFT JOIN live ON live.trial = t.number ORDER BY t.number""", args).fetchall()
    folder = _store_folder(con)
    return [(*r[:4], json.loads(r[4]) if r[4] else {}, *r[5:11], _resolved(folder, r[11]), *r[12:])
            for r in rows]


def _store_folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the store this connection reads (None for an in-memory union)."""
    found = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = "
                        "current_database()").fetchall()
    return Path(found[0][0]).parent if found and found[0][0] else None


def _resolved(folder: Path | None, artifact_dir: str | None) -> str | None:
    """A trial's folder as a path to open: the store records it relative to the store's own
    folder (so a store and its runs folder move together, and `--store ../x.duckdb` finds
    them from anywhere); older rows hold an absolute path, or one relative to where the run
    started, which was the store's folder by default."""
    if not artifact_dir or folder is None or Path(artifact_dir).is_absolute():
        return artifact_dir
    return str(folder / artifact_dir)


def trial_curve(store: str | Path, experiment: str, trial: int, max_points: int = 2000,
                names: Sequence[str] | None = None) -> TrialCurve:
    """A trial's logged series (all, or those `names`), each downsampled to ≤ max_points.

    A series longer than `max_points` is cut into `max_points` equal ranges of steps; each
    shows its last step, tokens and epoch and the mean of its values, so a curve keeps its shape
    and its end point. The scan touches only the row groups holding the trial (zone maps on
    `trial`: a trial's rows arrive together, so they sit together in the file).
    """
    import numpy as np

    max_points = max(1, int(max_points))
    name_filter = ""
    args: list[Any] = [experiment, trial]
    if names:
        name_filter = "AND name IN (SELECT unnest($3::VARCHAR[]))"
        args.append(list(names))
    with connection.reading(store) as con:
        # Columns as arrays, not a Python tuple per point: the conversion is what costs here.
        found = con.execute(
            "SELECT split, name, step, tokens, epoch, value FROM metrics "
            f"WHERE experiment = $1 AND trial = $2 {name_filter} ORDER BY split, name, step",
            args,
        ).fetchnumpy()
    split, name, step = found["split"], found["name"], np.asarray(found["step"], dtype=np.int64)
    tokens, epoch = np.ma.asarray(found["tokens"]), np.ma.asarray(found["epoch"])
    value = np.ma.asarray(found["value"], dtype=np.float64).filled(np.nan)
    n = len(step)
    bounds: list[int] = []
    if n:
        cuts = np.flatnonzero((split[1:] != split[:-1]) | (name[1:] != name[:-1])) + 1
        bounds = [0, *[int(c) for c in cuts], n]
    series = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        s_step, s_value = step[lo:hi], value[lo:hi]
        s_tokens, s_epoch = tokens[lo:hi], epoch[lo:hi]
        total = hi - lo
        if total > max_points:
            first, last = int(s_step[0]), int(s_step[-1])
            bucket = (s_step - first) * max_points // (last - first + 1)
            starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
            ends = np.concatenate((starts[1:], [total])) - 1
            valid = ~np.isnan(s_value)
            sums = np.add.reduceat(np.where(valid, s_value, 0.0), starts)
            counts = np.add.reduceat(valid.astype(np.int64), starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                s_value = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            s_step, s_tokens, s_epoch = s_step[ends], s_tokens[ends], s_epoch[ends]
        series.append(CurveSeries(
            split=str(split[lo]), name=str(name[lo]), steps=tuple(s_step.tolist()),
            tokens=tuple(np.ma.asarray(s_tokens).tolist()),
            epochs=tuple(np.ma.asarray(s_epoch).tolist()),
            values=tuple(None if v != v else v for v in s_value.tolist()),
            total_points=total))
    return TrialCurve(experiment, trial, tuple(series))


def evaluations(store: str | Path, experiment: str) -> dict[str, dict[str, float]]:
    """{model_ref: {"split/name": value}} for an experiment."""
    with connection.reading(store) as con:
        return _evaluations(con, experiment)


def _evaluations(con: duckdb.DuckDBPyConnection, experiment: str) -> dict[str, dict[str, float]]:
    rows = con.execute(
        "SELECT model_ref, split, name, value FROM evaluations WHERE experiment = ?",
        [experiment],
    ).fetchall()
    found: dict[str, dict[str, float]] = {}
    for ref, split, name, value in rows:
        found.setdefault(ref, {})[f"{split}/{name}"] = value
    return found


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


def ranked_trials(trials: Sequence[TrialRecord], direction: str | None) -> list[TrialRecord]:
    """The complete trials, best objective first (ties: the lower number first). The store
    imports nothing of the engine, so this is its one copy of "better in this direction"
    (the engine's is tunelab.engine.objectives)."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]


def best_trial(trials: Sequence[TrialRecord], direction: str | None) -> TrialRecord | None:
    """The complete trial with the best objective (ties: the lower number)."""
    return next(iter(ranked_trials(trials, direction)), None)


def require_experiment(store: str | Path, name: str) -> ExperimentRecord:
    """The experiment, or a StoreError that lists the experiments the store has."""
    found = get_experiment(store, name)
    if found is None:
        known = ", ".join(e.name for e in list_experiments(store)) or "none yet"
        raise StoreError(f"no experiment {name!r} in {store} (experiments: {known})",
                         "unknown experiment")
    return found
