"""What a trial's training showed beyond its curves: the answers it gave to the watched prompts
at each evaluation (`watch_samples`) and the examples it found hardest (`example_losses`).

Frozen records out, read with short read-only connections like the rest of store.read. A store
from before these tables reads as empty, not as an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from tunelab.store import connection


@dataclass(frozen=True)
class WatchSample:
    step: int
    epoch: float | None
    position: int
    prompt: str | None
    output: str | None
    reference: str | None


@dataclass(frozen=True)
class ExampleLoss:
    split: str
    position: int
    origin: str | None
    source_row: int | None
    tokens: int | None
    loss: float | None


def watch_samples(store: str | Path, experiment: str, trial: int) -> list[WatchSample]:
    """The watched answers of a trial, by evaluation (step) then prompt."""
    with connection.reading(store) as con:
        try:
            rows = con.execute(
                "SELECT step, epoch, position, prompt, output, reference FROM watch_samples "
                "WHERE experiment = ? AND trial = ? ORDER BY step, position",
                [experiment, trial]).fetchall()
        except duckdb.CatalogException:  # an older store, read without migrating
            return []
    return [WatchSample(*r) for r in rows]


def hardest_examples(store: str | Path, experiment: str, trial: int, limit: int = 5
                     ) -> list[ExampleLoss]:
    """The examples with the highest loss under the trial's best checkpoint, highest first."""
    with connection.reading(store) as con:
        try:
            rows = con.execute(
                "SELECT split, position, origin, source_row, tokens, loss FROM example_losses "
                "WHERE experiment = ? AND trial = ? ORDER BY loss DESC NULLS LAST LIMIT ?",
                [experiment, trial, limit]).fetchall()
        except duckdb.CatalogException:
            return []
    return [ExampleLoss(*r) for r in rows]
