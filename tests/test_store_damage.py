"""A damaged store (truncated by a full disk, overwritten) is found, never written to, reported
with what to do, and exported as far as it can still be read."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tunelab import store as st
from tunelab.store.connection import backup_path
from tunelab.store.damage import block_size, truncation
from tunelab.store.ingest import read_events

from conftest import Ran, tunelab

METRICS = 20_000  # enough rows for the file to span several blocks


def _write_store(path: Path) -> None:
    """A real store, written by the store's own writer."""
    now = time.time()
    with st.Spool(path) as spool:
        spool.write([st.ExperimentRow(name="e", objective="eval_loss", direction="minimize",
                                      created_at=now, updated_at=now),
                     st.TrialRow(experiment="e", number=0, state="complete", value=1.5,
                                 updated_at=now)])
        spool.write([st.MetricRow(experiment="e", trial=0, step=i, split="train", name="loss",
                                  value=1.0 / (i + 1), time=now) for i in range(METRICS)])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("healthy") / "s.duckdb"
    _write_store(path)
    return path


def _copy(healthy: Path, folder: Path) -> Path:
    path = folder / "s.duckdb"
    shutil.copy(healthy, path)
    return path


def _truncated(healthy: Path, folder: Path) -> Path:
    path = _copy(healthy, folder)
    os.truncate(path, path.stat().st_size // 2)
    return path


def _overwrite(path: Path, offset: int, size: int = 64) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metric(step: int) -> st.MetricRow:
    return st.MetricRow(experiment="e", trial=1, step=step, split="train", name="loss", value=0.5,
                        time=time.time())


def test_the_size_check_reads_the_header_of_a_real_store(healthy: Path) -> None:
    assert block_size(healthy) == 262144 and truncation(healthy) is None


def test_a_truncated_store_is_refused_on_open_and_never_written(healthy: Path,
                                                                tmp_path: Path) -> None:
    path = _truncated(healthy, tmp_path)
    before = _digest(path)
    for read in (lambda: st.list_trials(path, "e"), lambda: st.query(path, "select 1"),
                 lambda: st.list_experiments(path)):
        with pytest.raises(st.StoreDamaged) as found:
            read()
        assert str(path) in found.value.message and "truncated" in found.value.message
        assert f"tunelab export-store --store {path}" in found.value.message
    with pytest.raises(st.StoreDamaged):
        with st.writing(path):
            pass
    spool = st.Spool(path)
    with pytest.raises(st.StoreDamaged):
        spool.write([_metric(i) for i in range(10)])
    assert len(read_events(spool.path)) == 10  # kept, for a store that can take them
    assert spool.close() is False
    assert _digest(path) == before


def test_a_store_whose_header_is_overwritten_is_refused(healthy: Path, tmp_path: Path) -> None:
    path = _copy(healthy, tmp_path)
    _overwrite(path, 4096)  # the first database header: DuckDB's checksum catches it on attach
    before = _digest(path)
    with pytest.raises(st.StoreDamaged, match="Corrupt database file"):
        st.list_trials(path, "e")
    with pytest.raises(st.StoreDamaged):
        with st.Spool(path) as spool:
            spool.write([_metric(0)])
    assert _digest(path) == before
    assert st.query(healthy, "select count(*) from metrics").rows == [(METRICS,)]  # others fine


def _damage_found_only_at_read(healthy: Path, folder: Path) -> Path:
    """A copy with one data block overwritten: it attaches, and only reading metrics fails."""
    path = _copy(healthy, folder)
    _overwrite(path, _read_damage_offset(healthy))
    return path


@functools.cache
def _read_damage_offset(healthy: Path) -> int:
    """Where to overwrite the healthy store for damage found only at read. Searched once per
    store (a few dozen copies opened, seconds): the same bytes at the same place of the same
    file make the same damaged copy for every test that asks."""
    blocks = (healthy.stat().st_size - 3 * 4096) // 262144
    folder = healthy.parent / "searching"
    folder.mkdir(exist_ok=True)
    # Where in a block the bytes land decides whether DuckDB's checksum of what it reads sees
    # them, and that depends on how the rows were compressed: try a few places in each block.
    for place in (3 * 4096 + b * 262144 + o for b in range(blocks) for o in (4096, 8, 20000)):
        path = _copy(healthy, folder)
        _overwrite(path, place)
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            continue  # a block DuckDB reads on attach
        try:
            con.execute("select * from trials").fetchall()
            try:
                con.execute("select * from metrics").fetchall()
            except duckdb.Error:
                return place
        except duckdb.Error:
            continue
        finally:
            con.close()
    pytest.fail("no block of the store holds only metrics")


def test_damage_found_at_read_becomes_a_store_error(healthy: Path, tmp_path: Path) -> None:
    path = _damage_found_only_at_read(healthy, tmp_path)
    with pytest.raises(st.StoreDamaged, match="checksum") as found:
        st.query(path, "select sum(value) from metrics")
    assert str(path) in found.value.message
    assert st.list_trials(path, "e")[0].value == 1.5  # what is not damaged still reads


def test_the_message_names_the_copies_made_before_migrations(healthy: Path,
                                                             tmp_path: Path) -> None:
    path = _truncated(healthy, tmp_path)
    backup = backup_path(path, 3)  # where a migration from schema 3 keeps the old file
    shutil.copy(healthy, backup)
    with pytest.raises(st.StoreDamaged, match=backup.name):
        st.list_trials(path, "e")


def test_export_store_saves_what_can_be_read_and_names_the_rest(healthy: Path,
                                                                tmp_path: Path) -> None:
    path = _damage_found_only_at_read(healthy, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(st.StoreDamaged, match=r"Could not read: metrics \(") as found:
        st.export_store(path, out)
    assert "trials (1 rows)" in found.value.message
    tables = [t for (t,) in st.query(healthy, "select table_name from duckdb_tables()").rows]
    # every other table whole; no partial metrics file, no temporary file left
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{t}.parquet" for t in tables if t != "metrics")
    assert pq.read_table(out / "trials.parquet").num_rows == 1


def test_export_store_of_a_truncated_store_leaves_only_whole_files(healthy: Path,
                                                                  tmp_path: Path) -> None:
    path = _truncated(healthy, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(st.StoreDamaged, match="is damaged") as found:
        st.export_store(path, out)
    for file in out.iterdir():
        assert file.suffix == ".parquet", file  # no temporary names left behind
        pq.read_table(file)  # every file written is whole
        assert file.stem in found.value.message
    assert not list(out.glob(".*"))


def test_export_store_of_a_store_that_cannot_be_opened_writes_nothing(healthy: Path,
                                                                     tmp_path: Path) -> None:
    path = _copy(healthy, tmp_path)
    _overwrite(path, 0, 4096)
    out = tmp_path / "out"
    with pytest.raises(st.StoreDamaged, match="nothing could be exported"):
        st.export_store(path, out)
    assert list(out.iterdir()) == []


def _cli(*args: str, cwd: Path) -> Ran:
    return tunelab(*args, cwd=cwd)


def test_the_commands_end_in_the_damage_message(healthy: Path, tmp_path: Path,
                                                small_experiment) -> None:
    path = _truncated(healthy, tmp_path)
    experiment = small_experiment("", rows=120)
    before = _digest(path)
    for args in (["trials", "e"], ["export", "e", "best", "--out", str(tmp_path / "model")],
                 ["export-store", str(tmp_path / "parquet")],
                 ["data", str(experiment), "--force"]):
        done = _cli(*args, "--store", str(path), cwd=tmp_path)
        said = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0, (args, said)
        assert "store damaged" in said and f"{path} is damaged" in said, (args, said)
        assert "Traceback" not in said, (args, said)
    assert _digest(path) == before
