"""The store rules: nobody keeps the file open, events are spooled before they count,
ingest is idempotent, the schema is versioned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from tunelab import store as st
from tunelab.store.spool import spool_dir


def _metric(trial: int, step: int, value: float = 1.0) -> dict:
    return {"table": "metrics", "row": {"experiment": "e", "trial": trial, "step": step,
                                        "split": "train", "name": "loss", "value": value,
                                        "time": time.time()}}


def _count(path: Path, sql: str = "select count(*) from metrics") -> int:
    return st.query(path, sql).rows[0][0]


def test_a_new_store_gets_every_table_and_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    tables = {r[0] for r in st.query(path, "select table_name from information_schema.tables").rows}
    assert {"experiments", "trials", "trial_params", "metrics", "evaluations",
            "schema_version"} <= tables
    assert _count(path, "select max(version) from schema_version") == st.SCHEMA_VERSION


def test_a_store_from_a_newer_tunelab_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path) as con:
        con.execute("insert into schema_version (version) values (999)")
    with pytest.raises(st.StoreError, match="newer than this tunelab"):
        st.query(path, "select 1")
    with pytest.raises(st.StoreError, match="newer than this tunelab"):
        with st.writing(path):
            pass


def test_an_empty_duckdb_file_is_said_to_be_no_store_and_a_run_still_fills_it(
        tmp_path: Path) -> None:
    """A DuckDB file without tunelab's tables (a user's own, or one left empty) is refused by
    every reader in a sentence, not DuckDB's catalog error; a writer still makes it a store."""
    from conftest import tunelab

    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    for args in (["trials", "x"], ["review", "stats", "r"], ["gc", "x"]):
        ran = tunelab(*args, "--store", str(path))
        assert ran.returncode == 1, ran.stdout
        assert "not a tunelab store" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
        assert "Catalog" not in ran.stderr
    with st.writing(path):
        pass
    assert _count(path, "select max(version) from schema_version") == st.SCHEMA_VERSION


def test_reingesting_a_spool_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    events = [_metric(0, i) for i in range(50)]
    with st.Spool(path) as spool:
        spool.write(events)
        spool.write(events)
    with st.Spool(path) as spool:
        spool.write(events[:10])
    assert _count(path) == 50


def test_an_older_trial_event_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"

    def trial(state: str, at: float) -> dict:
        return {"table": "trials", "row": {"experiment": "e", "number": 0, "state": state,
                                           "updated_at": at}}

    with st.Spool(path) as spool:
        spool.write([trial("complete", 200.0)])
        spool.write([trial("running", 100.0)])  # e.g. a dead process's spool ingested late
    assert st.list_trials(path, "e")[0].state == "complete"


def test_events_wait_in_the_spool_while_the_file_is_held(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    holder = duckdb.connect(str(path))  # this process holds the file: others must wait
    try:
        spool = st.Spool(path)
        # another process's spool is locked out: simulate with a child writer
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import time
            from tunelab.store import Spool
            s = Spool({str(path)!r}, tag="child")
            s.write([{{"table": "metrics", "row": {{"experiment": "e", "trial": 1, "step": i,
                     "split": "train", "name": "loss", "value": 1.0}}}} for i in range(5)])
            print("closed", s.close(wait=0.5))
        """)], capture_output=True, text=True, timeout=60)
        assert "closed False" in child.stdout, child.stderr
        assert "is held by" in child.stderr  # the user is told once who holds the file
        leftover = list(spool_dir(path).glob("*child*.jsonl"))
        assert len(leftover) == 1 and leftover[0].read_text().count("\n") == 5
        del spool
    finally:
        holder.close()
    assert st.flush_orphans(path)
    assert _count(path) == 5
    assert not list(spool_dir(path).glob("*child*.jsonl"))


WRITER = """
import sys, time
from tunelab.store import Spool
path, trial, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spool = Spool(path, tag=f"w{trial}")
for start in range(0, n, 10):
    spool.write([{"table": "metrics", "row": {"experiment": "e", "trial": trial, "step": i,
                  "split": "train", "name": "loss", "value": float(i), "time": time.time()}}
                 for i in range(start, start + 10)])
    print(start + 10, flush=True)   # acknowledged: on disk in the spool
    time.sleep(0.005)
spool.close()
"""

READER = """
import pathlib, sys, time
from tunelab import store
path, stop = sys.argv[1], pathlib.Path(sys.argv[2])
reads = 0
# reads until the test says the writers are done, and has had at least one answer (no fixed
# window: on a busy machine the writers may start late or finish early)
while not (stop.exists() and reads):
    try:
        store.query(path, "select count(*) from metrics")
        reads += 1
    except store.StoreError as e:
        if "no store" not in str(e):
            raise
    time.sleep(0.01)
print(reads)
"""


def test_two_writers_and_a_reader_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    env = dict(os.environ)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(t), "300"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for t in (1, 2)]
    stop = tmp_path / "writers-done"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    stop.touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert int(out) > 0  # the reader got answers while both wrote
    rows = st.query(path, "select trial, count(*), count(distinct step) from metrics "
                          "group by 1 order by 1").rows
    assert rows == [(1, 300, 300), (2, 300, 300)]


def test_a_killed_writers_acknowledged_events_are_ingested_by_the_next_writer(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    holder = duckdb.connect(str(path))  # keep the writer from ingesting: all stays in its spool
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "3", "100000"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    acknowledged = 0
    assert writer.stdout is not None
    for line in writer.stdout:
        acknowledged = int(line)
        if acknowledged >= 50:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    holder.close()
    with st.Spool(path) as spool:  # any writer that gets the lock takes in the orphans
        spool.write([_metric(9, 0)])
    got = _count(path, "select count(*) from metrics where trial = 3")
    assert got >= acknowledged
    assert _count(path, "select count(*) - count(distinct step) from metrics where trial = 3") == 0
    assert not list(spool_dir(path).glob("*.jsonl"))
