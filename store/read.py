"""Typed reads. Each opens the store read-only, queries, closes; values are frozen dataclasses."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from tunelab.store import connection
from tunelab.store.damage import is_damage, reason, truncation, what_else
from tunelab.store.errors import StoreDamaged, StoreError


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


# ---------------------------------------------------------------- reads for the terminal UI


@dataclass(frozen=True)
class ExperimentSummary:
    """One line of the TUI's experiments screen."""

    name: str
    description: str | None
    objective: str | None
    direction: str | None
    complete: int
    running: int
    pruned: int
    failed: int
    best_trial: int | None
    best_value: float | None
    baseline_value: float | None    # the base model on the objective's split and metric
    best_success: bool | None       # the [success] verdict of the best trial (None: not judged)
    last_activity: datetime | None  # the newest experiment, trial or metric row time

    @property
    def trials(self) -> int:
        return self.complete + self.running + self.pruned + self.failed


def experiment_summaries(store: str | Path) -> list[ExperimentSummary]:
    """Every experiment with its trials counted by state, best trial, baseline and last activity."""
    with connection.reading(store) as con:
        rows = con.execute(
            """WITH e AS (SELECT * FROM experiments),
            counts AS (
                SELECT experiment,
                       count(*) FILTER (WHERE state = 'complete') AS complete,
                       -- a trial waiting for the votes of a preference sweep is not done
                       count(*) FILTER (WHERE state IN ('running', 'voting')) AS running,
                       count(*) FILTER (WHERE state = 'pruned') AS pruned,
                       count(*) FILTER (WHERE state = 'failed') AS failed,
                       max(updated_at) AS updated
                FROM trials GROUP BY experiment),
            ranked AS (
                SELECT t.experiment, t.number, t.value, t.success, row_number() OVER (
                    PARTITION BY t.experiment ORDER BY
                    CASE WHEN e.direction = 'maximize' THEN -t.value ELSE t.value END, t.number) AS r
                FROM trials t JOIN e ON e.name = t.experiment
                WHERE t.state = 'complete' AND t.value IS NOT NULL),
            live AS (
                SELECT m.experiment, max(m.time) AS time FROM metrics m
                WHERE (m.experiment, m.trial) IN (
                    SELECT (experiment, number) FROM trials WHERE state = 'running')
                GROUP BY m.experiment),
            base AS (
                SELECT experiment, split, name, value FROM evaluations WHERE model_ref = 'base')
            SELECT e.name, e.description, e.objective, e.direction,
                   coalesce(c.complete, 0), coalesce(c.running, 0), coalesce(c.pruned, 0),
                   coalesce(c.failed, 0), b.number, b.value,
                   -- the baseline's objective, where evaluation put it: validation, or for
                   -- a dpo stage the held-out preference pairs
                   (SELECT value FROM base WHERE base.experiment = e.name
                      AND base.split = CASE WHEN coalesce(json_extract_string(e.spec,
                                                     '$.method.stage'), 'sft') <> 'sft'
                                             AND coalesce(e.objective, 'eval_loss') IN (
                                                 'eval_loss', 'reward_accuracy', 'reward_margin',
                                                 'preference_accuracy')
                                            THEN 'preferences' ELSE 'validation' END
                      AND base.name = regexp_replace(coalesce(e.objective, 'eval_loss'), '^eval_', '')
                    LIMIT 1),
                   b.success, greatest(e.updated_at, c.updated, l.time)
            FROM e LEFT JOIN counts c ON c.experiment = e.name
            LEFT JOIN ranked b ON b.experiment = e.name AND b.r = 1
            LEFT JOIN live l ON l.experiment = e.name
            ORDER BY greatest(e.updated_at, c.updated, l.time) DESC NULLS LAST, e.name"""
        ).fetchall()
    return [ExperimentSummary(*r) for r in rows]


@dataclass(frozen=True)
class TrialOverview(TrialRecord):
    """A trial as the trials screen shows it: the record, its cost and shape, and, while it runs,
    where it is (the last logged step and training loss)."""

    device: str | None = None
    steps: int | None = None
    tokens: int | None = None
    cost: float | None = None
    success: bool | None = None
    peak_memory_bytes: int | None = None
    params_trainable: int | None = None
    updated_at: datetime | None = None
    last_step: int | None = None          # running trials: the newest logged step …
    last_epoch: float | None = None
    last_train_loss: float | None = None  # … and the training loss there


def trial_overviews(store: str | Path, experiment: str,
                    numbers: Sequence[int] | None = None) -> list[TrialOverview]:
    """`list_trials` with the cost/shape columns and the live position of running trials."""
    with connection.reading(store) as con:
        return _trial_overviews(con, experiment, numbers)


def _trial_overviews(con: duckdb.DuckDBPyConnection, experiment: str,
                     numbers: Sequence[int] | None, running: Sequence[int] | None = None
                     ) -> list[TrialOverview]:
    # _trial_rows's columns are TrialOverview's fields in order (TrialRecord's first)
    return [TrialOverview(*r) for r in _trial_rows(con, experiment, numbers, running)]


def curve_since(store: str | Path, experiment: str, trial: int,
                after: dict[tuple[str, str], int]) -> TrialCurve:
    """Only the metric rows newer than what a screen already has: for each (split, name) the
    rows with a step above `after[(split, name)]` (all rows of a series not in `after`)."""
    keys = list(after.items())
    with connection.reading(store) as con:
        rows = con.execute(
            """WITH k AS (SELECT unnest($3::VARCHAR[]) AS split, unnest($4::VARCHAR[]) AS name,
                                 unnest($5::INTEGER[]) AS step)
               SELECT m.split, m.name, m.step, m.tokens, m.epoch, m.value
               FROM metrics m LEFT JOIN k ON k.split = m.split AND k.name = m.name
               WHERE m.experiment = $1 AND m.trial = $2 AND m.step > coalesce(k.step, -1)
               ORDER BY m.split, m.name, m.step""",
            [experiment, trial, [k[0][0] for k in keys], [k[0][1] for k in keys],
             [k[1] for k in keys]]).fetchall()
    grouped: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for split, name, *rest in rows:
        grouped.setdefault((split, name), []).append(tuple(rest))
    series = tuple(
        CurveSeries(split=split, name=name, steps=tuple(r[0] for r in points),
                    tokens=tuple(r[1] for r in points), epochs=tuple(r[2] for r in points),
                    values=tuple(None if r[3] is None or r[3] != r[3] else r[3] for r in points),
                    total_points=len(points))
        for (split, name), points in grouped.items())
    return TrialCurve(experiment, trial, series)


@dataclass(frozen=True)
class Sample:
    model_ref: str
    position: int | None
    prompt: str | None
    output: str | None
    reference: str | None


def samples(store: str | Path, experiment: str, model_ref: str, limit: int = 50) -> list[Sample]:
    """The generated test outputs kept for a model (`base`, `trial:N`), in test-split order."""
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT model_ref, position, prompt, output, reference FROM samples "
            "WHERE experiment = ? AND model_ref = ? ORDER BY position NULLS LAST LIMIT ?",
            [experiment, model_ref, limit]).fetchall()
    return [Sample(*r) for r in rows]


def log_tail(path: str | Path, lines: int = 200, max_bytes: int = 256 * 1024) -> list[str]:
    """The last `lines` lines of a text file such as a trial's `trial.log` (empty if missing)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    # progress bars redraw with \r: keep what a terminal would show last on each line
    shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    if size > max_bytes:
        shown = shown[1:]  # the first line was cut
    while shown and not shown[-1]:
        shown.pop()
    return shown[-lines:]


def trial_costs(store: str | Path, experiment: str) -> dict[int, float | None]:
    """Each trial's cost (hours × devices × resources.price_per_hour), by trial number: an
    objective of a study that weighs quality against what it costs."""
    with connection.reading(store) as con:
        rows = con.execute("SELECT number, cost FROM trials WHERE experiment = ?",
                           [experiment]).fetchall()
    return {int(number): cost for number, cost in rows}


@dataclass(frozen=True)
class TrialsChange:
    """What a live trials screen re-reads of one store (see `trials_changed`)."""

    digests: dict[int, int]            # every trial: {number: a hash of its row}
    changed: list[TrialOverview]       # those whose hash is not the one known, and running ones
    evaluations: dict[str, dict[str, float]]  # as `evaluations` reads them


def trials_changed(store: str | Path, experiment: str, known: Mapping[int, int]) -> TrialsChange:
    """What a live screen re-reads, in one open: a hash of every trial's row, the overviews of
    the trials whose hash is not the one `known` and of the running ones (their position moves
    with the metrics), and the evaluations. Every other trial is as the screen last read it."""
    with connection.reading(store) as con:
        rows = con.execute("SELECT number, hash(t), state FROM trials t WHERE experiment = ?",
                           [experiment]).fetchall()
        running = [n for n, _, state in rows if state == "running"]
        need = [n for n, digest, state in rows if state == "running" or known.get(n) != digest]
        changed = _trial_overviews(con, experiment, need, running) if need else []
        found = _evaluations(con, experiment)
    return TrialsChange({number: digest for number, digest, _ in rows}, changed, found)


# A file written this recently may be written again within the same tick of the file system's
# clock (a coarse tick of a few ms; a whole second on some file systems) without its stamp
# changing, so its stamp does not vouch for its content: the racy-clean rule of git's index.
RACY_S = 2.0


def file_state(store: str | Path) -> tuple[int, ...] | None:
    """What the file system says of a store without opening it: the inode, size and
    modification time of the file and of its write-ahead log. Equal states mean equal content,
    so a reader that finds the state it last read at may skip the read (microseconds against
    milliseconds). None when the store was written within RACY_S seconds: read it again."""
    path = Path(store)
    found: list[int] = []
    newest = 0
    for part in (path, path.with_name(path.name + ".wal")):
        try:
            stat = os.stat(part)
        except FileNotFoundError:
            found += (0, 0, 0)
            continue
        found += (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        newest = max(newest, stat.st_mtime_ns)
    if time.time_ns() - newest < RACY_S * 1e9:
        return None
    return tuple(found)
