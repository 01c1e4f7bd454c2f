"""The rows of a preparation on disk while it runs, so that its memory stays flat in their number.

Every normalised row is written once, as it is read, to an Arrow IPC file of fixed-size batches
(the row as orjson bytes, and its origin `file.jsonl:17`); the passes that follow (the checks
of the whole set, de-duplication, counting tokens) read it back a batch at a time, in this
process or in the workers (engine.data.parallel), and the output is written from it in the
final order. What stays in memory is a few numbers a row (engine.data.prepare); a million rows
of text never are.

A batch is read into memory and dropped, not memory-mapped: pages of a mapped file count in the
process's memory for as long as the map is open.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

BATCH = 2000  # rows a batch: the unit of every pass and of the workers' tasks
SCHEMA = pa.schema([("row", pa.binary()), ("origin", pa.binary())])


def _origin_bytes(origin: str) -> bytes:
    return origin.encode("utf-8", "surrogateescape")  # a file name need not be valid UTF-8


def origin_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class SpillWriter:
    """Rows appended one by one, written a full batch at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = pa.ipc.new_file(str(path), SCHEMA)
        self._rows: list[bytes] = []
        self._origins: list[bytes] = []
        self.count = 0

    def append(self, row: bytes, origin: str) -> int:
        """Adds a row; returns its number (rows are numbered from 0 in the order they come)."""
        self._rows.append(row)
        self._origins.append(_origin_bytes(origin))
        if len(self._rows) == BATCH:
            self._flush()
        self.count += 1
        return self.count - 1

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_batch(pa.record_batch(
                [pa.array(self._rows, pa.binary()), pa.array(self._origins, pa.binary())], schema=SCHEMA))
            self._rows, self._origins = [], []

    def close(self) -> Spill:
        self._flush()
        self._writer.close()
        return Spill(self.path, self.count)


class Spill:
    """The written rows, read back by batch or by row number."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.count = count

    def batch(self, n: int) -> tuple[list[bytes], list[bytes]]:
        """(rows, origins) of batch n: rows n * BATCH to (n + 1) * BATCH."""
        with pa.OSFile(str(self.path)) as source:
            found = pa.ipc.open_file(source).get_batch(n)
            return found.column(0).to_pylist(), found.column(1).to_pylist()

    def batches(self, wanted: np.ndarray | None = None) -> Iterator[tuple[int, list[bytes], list[bytes]]]:
        """(number of the first row, rows, origins) of each batch, in order; with a mask over
        the rows, only the batches that hold a wanted row."""
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            for n in range(reader.num_record_batches):
                if wanted is not None and not wanted[n * BATCH:(n + 1) * BATCH].any():
                    continue
                found = reader.get_batch(n)
                yield n * BATCH, found.column(0).to_pylist(), found.column(1).to_pylist()

    def origins(self) -> Any:
        """Every row's origin, as one Arrow array (a few bytes a row; `origin_text(a[i].as_py())`)."""
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            arrays = [reader.get_batch(n).column(1) for n in range(reader.num_record_batches)]
        return pa.concat_arrays(arrays) if arrays else pa.array([], pa.binary())

    def take(self, numbers: np.ndarray) -> list[bytes]:
        """The rows with these numbers, in the order given; each batch read once."""
        order = np.argsort(numbers, kind="stable")
        found: list[bytes] = [b""] * len(numbers)
        loaded, rows = -1, []
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            for place in order.tolist():
                number = int(numbers[place])
                if number // BATCH != loaded:
                    loaded = number // BATCH
                    rows = reader.get_batch(loaded).column(0).to_pylist()
                found[place] = rows[number % BATCH]
        return found

    def write_in_order(self, places: dict[str, np.ndarray], files: dict[str, Path],
                       line: Callable[[bytes, str], bytes], done: Callable[[int], None]) -> None:
        """Each split's rows into its file, in the order of `places[split]` (row numbers): one
        pass sorts the rows into runs of RUN consecutive output places (files beside the spill),
        then each run is read, put in order and written: two sequential passes, one run in
        memory. `line` makes a row's output line from its bytes and origin."""
        runs: dict[tuple[str, int], Any] = {}
        where = {split: np.full(self.count, -1, dtype=np.int64) for split in places}
        for split, numbers in places.items():
            where[split][numbers] = np.arange(len(numbers))
        wanted = np.zeros(self.count, dtype=bool)
        for numbers in places.values():
            wanted[numbers] = True
        try:
            for first, rows, origins in self.batches(wanted):
                for split, at in where.items():
                    for j in np.flatnonzero(at[first:first + len(rows)] >= 0).tolist():
                        place = int(at[first + j])
                        key = (split, place // RUN)
                        if key not in runs:
                            runs[key] = (self.path.parent / f"run-{split}-{key[1]}").open("wb")
                        runs[key].write(_RECORD.pack(place, len(rows[j]), len(origins[j])) + rows[j]
                                        + origins[j])
            for run in runs.values():
                run.close()
            for split, numbers in places.items():
                with files[split].open("wb") as out:
                    for n in range((len(numbers) + RUN - 1) // RUN):
                        out.writelines(line(row, origin) for row, origin in
                                       _read_run(self.path.parent / f"run-{split}-{n}"))
                        done(min(RUN, len(numbers) - n * RUN))
        finally:
            for key, run in runs.items():
                run.close()
                (self.path.parent / f"run-{key[0]}-{key[1]}").unlink(missing_ok=True)


RUN = 50_000  # output places a run holds: the rows in memory while the output is written
_RECORD = struct.Struct("<QII")  # place, bytes of the row, bytes of its origin


def _read_run(path: Path) -> list[tuple[bytes, str]]:
    """A run's (row, origin) in the order of their places."""
    data = path.read_bytes()
    found = []
    at = 0
    while at < len(data):
        place, size, origin_size = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        found.append((place, data[at:at + size], origin_text(data[at + size:at + size + origin_size])))
        at += size + origin_size
    found.sort(key=lambda r: r[0])
    return [(row, origin) for _, row, origin in found]
