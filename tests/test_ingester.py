"""A trial's spool moves into DuckDB on the ingester's thread, and a store fault still reaches
the training thread (engine/run/ingester.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.store.ingester import Ingester


def _row(step: int) -> st.MetricRow:
    return st.MetricRow(experiment="x", trial=0, step=step, epoch=0.0, tokens=0, split="train",
                        name="loss", value=1.0 / step, time=time.time())


def test_logged_metrics_reach_the_store_through_the_ingester_thread(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    threads: list[str] = []

    class Watched(st.Spool):
        def ingest(self, wait: float = 0.2, final: bool = False) -> bool:
            threads.append(threading.current_thread().name)
            return super().ingest(wait, final)

    with Watched(store, tag="trial0") as spool:
        ingester = Ingester(spool)
        for step in (1, 2, 3):
            spool.write([_row(step)], ingest=False)
        ingester.request()
        ingester.close()
        assert threads == ["tunelab-ingest"]  # not the thread that wrote (the training loop)
        rows = st.query(store, "select step from metrics order by step").rows
        assert [r[0] for r in rows] == [1, 2, 3]


def test_a_store_fault_met_by_the_ingester_is_raised_on_the_training_thread(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    spool = st.Spool(store, tag="trial0")
    spool.write([_row(1)])  # the store exists now
    store.unlink()
    ingester = Ingester(spool)
    spool.write([_row(2)], ingest=False)
    ingester.request()
    with pytest.raises(st.StoreGone, match="was deleted"):
        ingester.close()
    assert '"step":2' in spool.path.read_text()  # the event waits in the spool
