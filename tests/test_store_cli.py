"""The store's commands (`sql`, `export-store`, `gc`), run against a store produced by a small real
sweep (`documented_store`, tests/conftest.py, which tests/test_docs.py reads too)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunelab import store as st

from conftest import Ran, tunelab, tunelab_command


def _cli(*args: str, stdin: str | None = None) -> Ran:
    return tunelab(*args, input=stdin)


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
    for n in (0, 3, 4):  # in a pipe every folder to delete is written whole, on one line
        assert str(runs / f"trial-{n:04d}" / "best") in shown.stdout, shown.stdout
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
    terminal = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": "1"}

    def shown(query: str) -> str:  # as an 80-column terminal shows it, less the bold
        done = subprocess.run([*tunelab_command(), "sql", query, "--store", str(documented_store)],
                              capture_output=True, text=True, timeout=600, env=terminal)
        assert done.returncode == 0, done.stderr
        return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)

    assert "┃ number ┃ state" in shown("select number, state from trials order by number")
    wide = shown("select * from trials order by number")
    assert "── row 1 ──" in wide and "── row 3 ──" in wide
    assert re.search(r"^ *artifact_dir +\S", wide, re.M)  # a column, then its value
    assert wide.rstrip().endswith("3 rows")


@pytest.mark.slow
def test_sql_into_a_pipe_or_a_file_keeps_every_value_whole(documented_store: Path, tmp_path: Path) -> None:
    """Piped, the table was cut to 80 columns and --out to 200, values ending in `…`."""
    query = "select number, params, artifact_dir, spec from trials, experiments order by number"
    rows = st.query(documented_store, query).rows
    piped = _cli("sql", query, "--store", str(documented_store))
    assert piped.returncode == 0, piped.stderr
    written = _cli("sql", query, "--store", str(documented_store), "--out", str(tmp_path / "t.txt"))
    assert written.returncode == 0, written.stderr
    for text in (piped.stdout, (tmp_path / "t.txt").read_text()):
        assert "…" not in text and text.rstrip().endswith("3 rows")
        lines = text.splitlines()
        for number, params, folder, spec in rows:
            # each row on one line, every value in it whole
            line = next(x for x in lines if re.match(rf"│ +{number} │", x))
            assert f"│ {params} " in line and folder in line and spec in line
