"""The store's commands (`sql`, `export-store`, `gc`), run against a store produced by a small real
sweep (`documented_store`, tests/conftest.py, which tests/test_docs.py reads too)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunelab import store as st

from conftest import tunelab_command


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tunelab_command(), *args], input=stdin, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_sql_reads_stdin_and_writes_csv_json_and_parquet_files(documented_store: Path,
                                                               tmp_path: Path) -> None:
    query = "select number, state, value from trials order by number"
    piped = _cli("sql", "--store", str(documented_store), "--format", "csv", stdin=query)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[0] == "number,state,value"
    assert len(piped.stdout.splitlines()) == 4

    out = tmp_path / "trials.parquet"
    done = _cli("sql", query, "--store", str(documented_store), "--format", "parquet", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.column_names == ["number", "state", "value"] and table.num_rows == 3

    as_json = tmp_path / "trials.json"
    assert _cli("sql", query, "--store", str(documented_store), "--format", "json",
                "--out", str(as_json)).returncode == 0
    assert [r["number"] for r in json.loads(as_json.read_text())] == [0, 1, 2]

    commented = _cli("sql", "-- the trials\n" + query, "--store", str(documented_store), "--format", "csv")
    assert commented.returncode == 0 and commented.stdout == piped.stdout  # a comment first is fine

    missing = _cli("sql", query, "--store", str(documented_store), "--format", "parquet")
    assert missing.returncode == 1 and "--out" in missing.stderr


@pytest.mark.slow
def test_sql_queries_several_stores_as_one(documented_store: Path, tmp_path: Path) -> None:
    other = tmp_path / "box2.duckdb"
    shutil.copy(documented_store, other)
    done = _cli("sql", "select count(*) as n from trials", "--store", str(documented_store),
                "--store", str(other), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 6}]
    one = _cli("sql", "select count(*) as n from box2.trials", "--store", str(documented_store),
               "--store", str(other), "--format", "json")
    assert json.loads(one.stdout) == [{"n": 3}]


@pytest.mark.slow
def test_sql_refuses_statements_that_write(documented_store: Path) -> None:
    for statement in ("delete from trials", "copy trials to 'x.csv'",
                      "attach 'other.duckdb' as o", "drop view best_trials"):
        done = _cli("sql", statement, "--store", str(documented_store))
        assert done.returncode == 1 and "read-only" in done.stderr, statement
        assert "Traceback" not in done.stderr
    assert st.query(documented_store, "select count(*) from trials").rows == [(3,)]


@pytest.mark.slow
def test_export_store_writes_every_table_to_parquet(documented_store: Path, tmp_path: Path) -> None:
    done = _cli("export-store", str(tmp_path / "out"), "--store", str(documented_store))
    assert done.returncode == 0, done.stderr
    tables = [r[0] for r in st.query(documented_store, "select table_name from duckdb_tables() "
                                            "where database_name = current_database()").rows]
    for table in tables:
        exported = pq.read_table(tmp_path / "out" / f"{table}.parquet")
        count = st.query(documented_store, f"select count(*) from {table}").rows[0][0]
        assert exported.num_rows == count, table
    assert {"metrics", "trials", "votes"} <= set(tables)


def test_gc_deletes_checkpoints_outside_the_best_n_after_showing_them(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    runs = tmp_path / "runs"
    events: list[dict] = [{"table": "experiments", "row": {
        "name": "x", "objective": "eval_loss", "direction": "minimize", "updated_at": 1.0}}]
    for number, state, value in [(0, "complete", 0.9), (1, "complete", 0.3), (2, "complete", 0.5),
                                 (3, "pruned", 1.2), (4, "failed", None), (5, "running", None)]:
        folder = runs / f"trial-{number:04d}"
        (folder / "best").mkdir(parents=True)
        (folder / "best" / "model.safetensors").write_bytes(b"w" * 4096)
        (folder / "trial.log").write_text("log")
        if state in {"failed", "running"}:
            (folder / "checkpoints" / "checkpoint-5").mkdir(parents=True)
            (folder / "checkpoints" / "checkpoint-5" / "x.bin").write_bytes(b"c" * 1024)
        events.append({"table": "trials", "row": {
            "experiment": "x", "number": number, "state": state, "value": value,
            "artifact_dir": str(folder), "updated_at": 1.0}})
    with st.Spool(store) as spool:
        spool.write(events)

    shown = _cli("gc", "x", "--keep", "2", "--store", str(store))  # no --yes, no terminal
    assert shown.returncode == 0, shown.stderr
    assert "nothing deleted" in shown.stdout and "--yes" in shown.stdout
    assert "KiB" in shown.stdout  # the disk it would free
    assert all((runs / f"trial-{n:04d}" / "best").exists() for n in range(6))

    done = _cli("gc", "x", "--keep", "2", "--yes", "--store", str(store))
    assert done.returncode == 0, done.stderr
    left = {n for n in range(6) if (runs / f"trial-{n:04d}" / "best").exists()}
    assert left == {1, 2, 5}  # the two best, and the running trial
    assert not (runs / "trial-0004" / "checkpoints").exists()
    assert (runs / "trial-0005" / "checkpoints").exists()
    assert all((runs / f"trial-{n:04d}" / "trial.log").exists() for n in range(6))
    assert st.query(store, "select count(*) from trials").rows == [(6,)]  # the rows stay

    again = _cli("gc", "x", "--keep", "2", "--yes", "--store", str(store))
    assert "nothing to delete" in again.stdout


@pytest.mark.slow
def test_sql_shows_a_result_too_wide_for_the_terminal_one_row_per_block(documented_store: Path) -> None:
    narrow = _cli("sql", "select number, state from trials order by number", "--store",
                  str(documented_store))  # 80 columns when not a terminal
    assert narrow.returncode == 0 and "┃ number ┃ state" in narrow.stdout
    wide = _cli("sql", "select * from trials order by number", "--store", str(documented_store))
    assert wide.returncode == 0, wide.stderr
    assert "── row 1 ──" in wide.stdout and "── row 3 ──" in wide.stdout
    assert re.search(r"^ *artifact_dir +\S", wide.stdout, re.M)  # a column, then its value
    assert wide.stdout.rstrip().endswith("3 rows")
