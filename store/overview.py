"""The reads of the terminal UI: the experiments' and trials' overviews, what changed since the
last refresh, curves since a step, samples, a log's tail. Short read-only connections, frozen
records, as in store.read."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from tunelab.store import connection
from tunelab.store.read import CurveSeries, TrialCurve, TrialRecord, _evaluations, _trial_rows


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
