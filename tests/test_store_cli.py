"""The store's commands (`sql`, `export-store`, `gc`), run against a store produced by a small real
sweep. The docs' example queries are run by tests/test_docs.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunelab import store as st

from conftest import EXPERIMENTS, tunelab_command

SWEEP = """
name = "quickstart"
[model]
scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 256 }
[data]
train = "data.jsonl"
[method]
kind = "full"
[train]
epochs = 2
batch_size = 16
logging_steps = 5
[search]
trials = 3
sampler = "random"
seed = 1
pruner = "none"
[search.space]
"train.learning_rate" = [5e-3, 3e-3]
"method.kind" = ["full", "lora"]
[eval]
watch = 1
example_losses = true
"""


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tunelab_command(), *args], input=stdin, capture_output=True,
                          text=True, timeout=600)


def _add_votes(store: Path, experiment: str) -> None:
    """A blind review of the base model against the best trial, with votes, as the TUI records it."""
    best = st.query(store, f"select number from best_trials where experiment = '{experiment}'")
    ref = f"trial:{best.rows[0][0]}"
    review = str(uuid.uuid4())
    choices = ["b", "a", "b", "tie", "both_bad", "b"]
    events: list[dict] = [{"table": "reviews", "row": {
        "id": review, "experiment": experiment, "name": "first look",
        "models": json.dumps(["base", ref]), "prompt_set": "test", "status": "open",
        "created_at": 1.0, "updated_at": 1.0}}]
    for item, choice in enumerate(choices):
        a, b = ("base", ref) if item % 2 == 0 else (ref, "base")
        events.append({"table": "review_items", "row": {
            "review_id": review, "item": item, "prompt_id": str(item), "prompt": f"{item}+1=",
            "model_a": a, "model_b": b, "output_a": "?", "output_b": "?", "created_at": 1.0}})
        events.append({"table": "votes", "row": {
            "id": str(uuid.uuid4()), "review_id": review, "item": item, "rater": "ana",
            "choice": choice, "seconds": 2.5, "undone": False, "created_at": 2.0,
            "updated_at": 2.0}})
    with st.Spool(store) as spool:
        spool.write(events)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store from a real three-trial sweep named like the docs' examples, plus votes."""
    folder = tmp_path_factory.mktemp("swept")
    rows = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:400]
    (folder / "data.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "quickstart.toml").write_text(SWEEP)
    store = folder / "tunelab.duckdb"
    run = _cli("run", str(folder / "quickstart.toml"), "--store", str(store))
    assert run.returncode == 0, run.stderr + run.stdout
    _add_votes(store, "quickstart")
    return store


@pytest.mark.slow
def test_sql_reads_stdin_and_writes_csv_json_and_parquet_files(swept: Path,
                                                               tmp_path: Path) -> None:
    query = "select number, state, value from trials order by number"
    piped = _cli("sql", "--store", str(swept), "--format", "csv", stdin=query)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[0] == "number,state,value"
    assert len(piped.stdout.splitlines()) == 4

    out = tmp_path / "trials.parquet"
    done = _cli("sql", query, "--store", str(swept), "--format", "parquet", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.column_names == ["number", "state", "value"] and table.num_rows == 3

    as_json = tmp_path / "trials.json"
    assert _cli("sql", query, "--store", str(swept), "--format", "json",
                "--out", str(as_json)).returncode == 0
    assert [r["number"] for r in json.loads(as_json.read_text())] == [0, 1, 2]

    commented = _cli("sql", "-- the trials\n" + query, "--store", str(swept), "--format", "csv")
    assert commented.returncode == 0 and commented.stdout == piped.stdout  # a comment first is fine

    missing = _cli("sql", query, "--store", str(swept), "--format", "parquet")
    assert missing.returncode == 1 and "--out" in missing.stderr


@pytest.mark.slow
def test_sql_queries_several_stores_as_one(swept: Path, tmp_path: Path) -> None:
    other = tmp_path / "box2.duckdb"
    shutil.copy(swept, other)
    done = _cli("sql", "select count(*) as n from trials", "--store", str(swept),
                "--store", str(other), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 6}]
    one = _cli("sql", "select count(*) as n from box2.trials", "--store", str(swept),
               "--store", str(other), "--format", "json")
    assert json.loads(one.stdout) == [{"n": 3}]


@pytest.mark.slow
def test_sql_refuses_statements_that_write(swept: Path) -> None:
    for statement in ("delete from trials", "copy trials to 'x.csv'",
                      "attach 'other.duckdb' as o", "drop view best_trials"):
        done = _cli("sql", statement, "--store", str(swept))
        assert done.returncode == 1 and "read-only" in done.stderr, statement
        assert "Traceback" not in done.stderr
    assert st.query(swept, "select count(*) from trials").rows == [(3,)]


@pytest.mark.slow
def test_export_store_writes_every_table_to_parquet(swept: Path, tmp_path: Path) -> None:
    done = _cli("export-store", str(tmp_path / "out"), "--store", str(swept))
    assert done.returncode == 0, done.stderr
    tables = [r[0] for r in st.query(swept, "select table_name from duckdb_tables() "
                                            "where database_name = current_database()").rows]
    for table in tables:
        exported = pq.read_table(tmp_path / "out" / f"{table}.parquet")
        count = st.query(swept, f"select count(*) from {table}").rows[0][0]
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
def test_sql_shows_a_result_too_wide_for_the_terminal_one_row_per_block(swept: Path) -> None:
    narrow = _cli("sql", "select number, state from trials order by number", "--store",
                  str(swept))  # 80 columns when not a terminal
    assert narrow.returncode == 0 and "┃ number ┃ state" in narrow.stdout
    wide = _cli("sql", "select * from trials order by number", "--store", str(swept))
    assert wide.returncode == 0, wide.stderr
    assert "── row 1 ──" in wide.stdout and "── row 3 ──" in wide.stdout
    assert re.search(r"^ *artifact_dir +\S", wide.stdout, re.M)  # a column, then its value
    assert wide.stdout.rstrip().endswith("3 rows")
