"""The first phase of a preparation: every source read, each record normalised to the internal
form and checked by the row rules, and kept on disk (engine.data.spill) with a few numbers a row
in memory: which split it belongs to (by a seeded hash of its content, unless the split has its
own files) or which mixed-in source it came from, where the stable shuffle puts it, and its
difficulty. A record that cannot be read or breaks a rule is reported by its place and dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tunelab.engine.data import formats
from tunelab.engine.data import sources as data_sources
from tunelab.engine.data.checks import Findings, RowRules
from tunelab.engine.data.progress import Progress
from tunelab.engine.data.spill import SpillWriter
from tunelab.engine.errors import DataError
from tunelab.engine.spec import ColumnsSpec, DataSpec

SPLITS = ("train", "validation", "test")
MIX = len(SPLITS)  # the group of the rows of mixed-in source i is MIX + i


def content_key(row: dict[str, Any]) -> str:
    content = row.get("text") if "text" in row else [(m["role"], m["content"]) for m in row["messages"]]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def bucket(key: str, seed: int, salt: str = "split") -> float:
    """A stable position in [0, 1) from an example's content and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Table:
    """A number or two for every row kept on disk, by row number (the order rows were read)."""

    group: Any = field(default_factory=lambda: array("b"))  # a split (0-2) or MIX + i
    order: Any = field(default_factory=lambda: array("d"))  # the stable shuffle's key
    mix: Any = field(default_factory=lambda: array("d"))  # a mixed-in row's draw (else 0)
    difficulty: Any = field(default_factory=lambda: array("d"))  # NaN without one

    def freeze(self) -> None:
        """The columns as numpy arrays, once every row is read."""
        self.group, self.order, self.mix, self.difficulty = (
            np.frombuffer(a, dtype=a.typecode) for a in (self.group, self.order, self.mix, self.difficulty))

    def rows_of(self, group: int) -> np.ndarray:
        return np.flatnonzero(self.group == group)


@dataclass
class Reader:
    """Reads the sources of one preparation into the spill and its table."""

    data: DataSpec
    seed: int
    spill: SpillWriter
    findings: Findings
    progress: Progress
    table: Table = field(default_factory=Table)
    formats_seen: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0

    def read(self, sources: list[str], fmt: str, columns: ColumnsSpec, group: int | None,
             splits: list[tuple[float, int]] | None = None) -> None:
        """Every record of the sources into the group (a split, MIX + i), or for the training
        files into the split its hash falls in (`splits`: the upper end of each split's range)."""
        rules = RowRules(self.data.rules)
        for source in sources:
            # a hub source's own split: the training one, but for explicit validation/test files
            split = SPLITS[group] if group is not None and group < MIX else "train"
            name, items = data_sources.stream_records(source, split, self.data.max_row_bytes)
            use, head = self._format(source, items, fmt, columns)
            if use is None:
                continue
            self.formats_seen[name] = use
            self.progress.stage(f"reading {name}", data_sources.size_hint(source))
            for item in itertools.chain(head, items):
                self._one(item, use, columns, rules, group, splits)

    def _format(self, source: str, items: Iterator[Any], fmt: str, columns: ColumnsSpec
                ) -> tuple[str | None, list[data_sources.Record]]:
        """The source's format (told from its first records) and those records."""
        head: list[data_sources.Record] = []
        for item in items:
            if isinstance(item, data_sources.Record):
                head.append(item)
                if len(head) == formats.DETECT_RECORDS:
                    break
            else:
                self.rows_read += 1
                self.findings.add("unreadable", "warning", f"row not readable: {item[0]}", item[1],
                                  removed=True)
        use = fmt if fmt != "auto" else formats.detect(head, columns)
        if use is None and head:
            keys = ", ".join(sorted(head[0].data)[:8])
            raise DataError(f"{source}: cannot tell the format of this data (fields: {keys}); set "
                            "data.format (prompt_completion, messages, alpaca, sharegpt, text) and, "
                            "if the fields are named otherwise, data.columns")
        return use, head

    def _one(self, item: Any, use: str, columns: ColumnsSpec, rules: RowRules, group: int | None,
             splits: list[tuple[float, int]] | None) -> None:
        self.rows_read += 1
        if self.rows_read % 10_000 == 0:
            self.progress.advance(10_000)
        if not isinstance(item, data_sources.Record):
            self.findings.add("unreadable", "warning", f"row not readable: {item[0]}", item[1], removed=True)
            return
        try:
            row = formats.normalise(item.data, use, columns)
        except formats.RowProblem as problem:
            self.findings.add("bad_row", "warning", f"not a {use} example: {problem}", item.origin,
                              removed=True)
            return
        broken = rules.problem(row)
        if broken is not None:
            self.findings.add(broken[0], "warning", broken[1], item.origin, removed=True)
            return
        try:
            data = orjson.dumps(row)
        except orjson.JSONEncodeError:  # a lone surrogate ("\ud800" escaped in the JSON)
            self.findings.add("bad_row", "warning", "not valid Unicode (a lone surrogate)", item.origin,
                              removed=True)
            return
        difficulty = float("nan")
        if self.data.order == "difficulty" and (group is None or group < MIX):
            try:
                difficulty = float(item.data.get(self.data.difficulty_column or ""))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                self.findings.add("no_difficulty", "warning",
                                  f"no number in the difficulty column {self.data.difficulty_column!r}",
                                  item.origin, removed=True)
                return
        key = content_key(row)
        if group is None:
            assert splits is not None
            place = bucket(key, self.seed)
            group = next((s for cut, s in splits if place < cut), splits[-1][1])
        self.spill.append(data, item.origin)
        table = self.table
        table.group.append(group)
        table.order.append(bucket(key, self.seed, "order"))
        table.mix.append(bucket(key, self.seed, f"mix{group - MIX}") if group >= MIX else 0.0)
        table.difficulty.append(difficulty)


Read = tuple[Table, Findings, dict[str, str], int, int]


def read_sources(data: DataSpec, seed: int, sources: dict[str, list[str]], path: Path,
                 findings: Findings, progress: Progress) -> Read:
    """Every source of a preparation into a spill at `path` (in a child process, when beside the
    tokenizer: engine.data.prepare): (the table, the findings, the formats, the rows read, the
    rows written). The spill's writer is made here, so a child's is its own (the parent's copy
    of it would close the file a second time)."""
    reader = Reader(data, seed, SpillWriter(path), findings, progress)
    explicit = {s for s in ("validation", "test") if sources[s]}  # their files override the split
    reader.read(sources["train"], data.format, data.columns, None, split_cuts(data, explicit))
    for split in ("validation", "test"):
        if split in explicit:
            reader.read(sources[split], data.format, data.columns, SPLITS.index(split))
    for i, mix in enumerate(data.mix):
        reader.read(sources[f"mix{i}"], mix.format, mix.columns, MIX + i)
    count = reader.spill.close().count
    progress.close()  # a child's bar goes with it; the parent draws its own after
    return reader.table, reader.findings, reader.formats_seen, reader.rows_read, count


def split_cuts(data: DataSpec, explicit: set[str]) -> list[tuple[float, int]]:
    """Hash-based split among the splits that have no explicit files, fractions renormalised:
    (the upper end of each split's range in [0, 1), the split)."""
    fractions = {SPLITS.index(s): getattr(data.split, s) for s in SPLITS if s not in explicit}
    total = sum(fractions.values())
    cuts, running = [], 0.0
    for split, share in fractions.items():
        running += share / total
        cuts.append((running, split))
    return cuts
