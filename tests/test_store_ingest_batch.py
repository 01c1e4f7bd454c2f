"""The batched (Arrow) ingest keeps the rules of the per-row path: within one spool file the
newest event of a key wins, a column an event leaves out is not blanked, and ingesting the
same file again changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab import store as st
from tunelab.store.ingest import ingest_file


def metric(step: int, value: float, at: float, **extra: object) -> dict:
    return {"table": "metrics", "row": {"experiment": "e", "trial": 0, "split": "train",
                                        "name": "loss", "step": step, "value": value,
                                        "time": at, **extra}}


def write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def rows(store: Path) -> list[tuple]:
    return [tuple(r) for r in st.query(
        store, "SELECT step, value, epoch FROM metrics ORDER BY step").rows]


def test_a_repeated_key_in_one_file_keeps_the_newest_and_a_second_ingest_changes_nothing(
        tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    # a trial retried after out-of-memory logs steps 1 and 2 again, later, with other values
    events = [metric(1, 3.0, 100.0, epoch=0.1), metric(2, 2.5, 101.0, epoch=0.2),
              metric(1, 2.9, 200.0, epoch=0.1), metric(2, 2.4, 201.0, epoch=0.2),
              metric(3, 2.0, 202.0, epoch=0.3)]
    spool = write(tmp_path / "a.jsonl", events)
    with st.writing(store) as con:
        ingest_file(con, spool, {"metrics"})
    assert rows(store) == [(1, 2.9, 0.1), (2, 2.4, 0.2), (3, 2.0, 0.3)]
    with st.writing(store) as con:
        ingest_file(con, spool, {"metrics"})
    assert rows(store) == [(1, 2.9, 0.1), (2, 2.4, 0.2), (3, 2.0, 0.3)]


def test_a_newer_event_without_a_column_does_not_blank_it(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    with st.writing(store) as con:
        ingest_file(con, write(tmp_path / "a.jsonl", [metric(1, 3.0, 100.0, epoch=0.5)]),
                    {"metrics"})
        ingest_file(con, write(tmp_path / "b.jsonl", [metric(1, 2.0, 200.0)]), {"metrics"})
        # an older event never overwrites a newer one
        ingest_file(con, write(tmp_path / "c.jsonl", [metric(1, 9.0, 50.0, epoch=9.0)]),
                    {"metrics"})
    assert rows(store) == [(1, 2.0, 0.5)]
