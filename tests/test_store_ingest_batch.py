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


def test_a_file_whose_metrics_are_partly_in_the_store_goes_through_the_upsert_whole(
        tmp_path: Path) -> None:
    # The plain INSERT that new metrics take is refused by the one key already there; the whole
    # file (the trial event before it included) then goes through the upsert, once.
    store = tmp_path / "s.duckdb"
    trial = {"table": "trials", "row": {"experiment": "e", "number": 0, "state": "running",
                                        "updated_at": 150.0}}
    with st.writing(store) as con:
        ingest_file(con, write(tmp_path / "a.jsonl", [metric(1, 3.0, 100.0, epoch=0.1)]),
                    {"metrics"})
        written = ingest_file(con, write(tmp_path / "b.jsonl", [
            trial, metric(1, 2.9, 200.0, epoch=0.1), metric(2, 2.5, 201.0, epoch=0.2)]))
    assert written == 3
    assert rows(store) == [(1, 2.9, 0.1), (2, 2.5, 0.2)]
    assert st.query(store, "SELECT number, state FROM trials").rows == [(0, "running")]


def test_a_metric_without_its_key_is_refused_with_the_column_named(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    event = metric(1, 3.0, 100.0)
    del event["row"]["step"]
    with st.writing(store) as con:
        ingest_file(con, write(tmp_path / "ok.jsonl", [metric(5, 1.0, 50.0)]), {"metrics"})
        try:
            ingest_file(con, write(tmp_path / "a.jsonl", [metric(2, 2.0, 90.0), event]),
                        {"metrics"})
        except st.StoreError as error:
            assert "lacks key column(s) ['step']" in str(error)
        else:
            raise AssertionError("a metric without its step was taken in")
    assert rows(store) == [(5, 1.0, None)]  # nothing of the refused file, the rest kept
