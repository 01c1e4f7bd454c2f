"""What every benchmark shares: paired timing and the row it hands the suite.

A figure is measured beside the plain library doing the same work in the same run, the two
alternating (A B A B …) so that load from other processes falls on both alike; the median is
the figure and the spread (max − min over the runs) says how much to trust it.

A bench script run with `--json PATH` writes a list of rows (`Row.as_dict`) there; the suite
(`python -m bench`) collects them into docs/benchmarks.md. Imported by the bench scripts as
`from measure import …` (the script's folder is on sys.path) and by the suite as `bench.measure`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    median: float
    spread: float  # max − min over the runs
    runs: int


@dataclass(frozen=True)
class Row:
    """One line of the report. `ratio` is tunelab / plain in the figure's own unit."""

    figure: str
    tunelab: float | None
    plain: float | None
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target
    tunelab_spread: float | None = None
    plain_spread: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.tunelab is None or self.plain in (None, 0):
            return None
        return self.tunelab / self.plain  # type: ignore[operator]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio}


def summarise(values: list[float]) -> Timing:
    return Timing(statistics.median(values), max(values) - min(values), len(values))


def paired(ours: Callable[[], object], plain: Callable[[], object], repeat: int,
           scale: float = 1000.0) -> tuple[Timing, Timing]:
    """Wall time of each (ms by default), alternating, `repeat` runs each."""
    a: list[float] = []
    b: list[float] = []
    for i in range(repeat):
        # alternate which goes first too, so neither always inherits the other's warm cache
        order = ((ours, a), (plain, b)) if i % 2 == 0 else ((plain, b), (ours, a))
        for fn, into in order:
            start = time.perf_counter()
            fn()
            into.append((time.perf_counter() - start) * scale)
    return summarise(a), summarise(b)


def timed(fn: Callable[[], object], repeat: int) -> Timing:
    """Wall time in ms of `fn` alone (a figure with no plain counterpart)."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return summarise(runs)


def write_rows(path: Path | None, rows: list[Row]) -> None:
    if path is not None:
        path.write_text(json.dumps([r.as_dict() for r in rows], indent=1))
