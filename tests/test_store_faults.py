"""Faults while a sweep writes: a full disk, the store deleted or damaged under the writer.
The writer stops with the reason; nothing already recorded is lost; the spool keeps the rest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.store.ingest import ingest_events, ingest_file, read_events
from tunelab.store.spool import spool_dir

from conftest import mounted_tmpfs

BATCH = 500


def _batch(n: int, trial: int = 0) -> list[st.MetricRow]:
    now = time.time()
    return [st.MetricRow(experiment="e", trial=trial, step=n * BATCH + i, split="train",
                         name="loss", value=1.0 / (i + 1), time=now) for i in range(BATCH)]


def _steps(path: Path) -> list[int]:
    return [r[0] for r in st.query(path, "select step from metrics order by step").rows]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small filesystem (tmpfs) that fills up; skipped where mounting is not allowed."""
    with mounted_tmpfs(tmp_path, "3m") as folder:
        yield folder


def _grow(folder: Path) -> None:
    """Frees the full disk: a real remount with more room, as deleting other files would."""
    subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)


def test_a_full_disk_stops_the_writer_with_the_reason_and_loses_nothing(small_disk: Path) -> None:
    path = small_disk / "s.duckdb"
    spool = st.Spool(path)
    recorded: list[int] = []
    with pytest.raises(st.StoreError) as stopped:
        for n in range(1000):
            spool.write(_batch(n))
            recorded += range(n * BATCH, (n + 1) * BATCH)
    message = stopped.value.message
    assert "No space left on device" in message and "run again" in message
    assert recorded  # a few batches went in before the disk filled up
    for line in spool.path.read_bytes().splitlines(keepends=True):
        json.loads(line)  # the spool holds only whole events, whatever failed
    _grow(small_disk)
    assert spool.close() is True  # the events that waited go in once there is room
    stored = _steps(path)
    assert set(recorded) <= set(stored)  # nothing acknowledged is lost
    assert len(stored) == len(set(stored))
    assert not list(spool_dir(path).glob("*.jsonl"))


def test_a_full_disk_under_the_spool_cuts_back_to_the_last_whole_batch(
        small_disk: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    os.symlink(small_disk, spool_dir(path))  # the spool on the small disk, the store elsewhere
    spool = st.Spool(path)
    acknowledged = 0
    with pytest.raises(st.StoreError, match="cannot write to the spool .*No space left") as found:
        for n in range(10_000):
            spool.write(_batch(n), ingest=False)
            acknowledged += 1
    assert f"The {BATCH} events of this batch are not recorded" in found.value.message
    assert len(read_events(spool.path)) == acknowledged * BATCH  # cut back: no torn line
    assert spool.ingest(wait=5) is True
    assert len(_steps(path)) == acknowledged * BATCH
    spool.write(_batch(acknowledged))  # the spool was emptied into the store: room again
    assert len(_steps(path)) == (acknowledged + 1) * BATCH
    assert spool.close() is True


def test_a_file_size_limit_on_the_spool_is_reported_and_cut_back(tmp_path: Path) -> None:
    # Runs everywhere: RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG), a real
    # write error for a process that may not mount a small disk.
    script = textwrap.dedent(f"""
        import json, resource, signal, sys, time
        from tunelab import store as st
        from tunelab.store.ingest import read_events
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        spool = st.Spool({str(tmp_path / "s.duckdb")!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
        acknowledged, message = 0, None
        try:
            for n in range(1000):
                spool.write([st.MetricRow(experiment="e", trial=0, step=n * 100 + i,
                                          split="train", name="loss", value=1.0,
                                          time=time.time()) for i in range(100)], ingest=False)
                acknowledged += 1
        except st.StoreError as error:
            message = error.message
        kept = len(read_events(spool.path))
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        spool.close()
        stored = st.query(spool.store, "select count(*) from metrics").rows[0][0]
        print(json.dumps({{"acknowledged": acknowledged, "message": message, "kept": kept,
                          "stored": stored}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["message"] and "File too large" in result["message"]
    assert result["acknowledged"] > 0
    assert result["kept"] == result["stored"] == result["acknowledged"] * 100


def test_a_store_deleted_under_the_writer_stops_it_and_the_spool_keeps_the_events(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    spool = st.Spool(path)
    spool.write(_batch(0))
    path.unlink()  # e.g. a clean-up script, or a person, while the sweep runs
    with pytest.raises(st.StoreGone, match="was deleted") as found:
        spool.write(_batch(1))
    assert str(spool.path) in found.value.message
    assert not path.exists()  # no new, nearly empty store is started behind the user's back
    assert len(read_events(spool.path)) == BATCH
    assert spool.close() is False
    # later, a new store at that path takes in what waited
    assert st.flush_orphans(path) is True
    assert _steps(path) == list(range(BATCH, 2 * BATCH))


def test_a_store_damaged_under_the_writer_stops_it_and_the_spool_keeps_the_events(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    spool = st.Spool(path)
    spool.write(_batch(0))
    os.truncate(path, path.stat().st_size - 1000)  # cut by a full disk
    before = _digest(path)
    with pytest.raises(st.StoreDamaged, match="truncated"):
        spool.write(_batch(1))
    assert _digest(path) == before  # not written to
    assert len(read_events(spool.path)) == BATCH
    assert spool.close() is False
    assert st.flush_orphans(path) is False  # still damaged: the events keep waiting
    path.rename(tmp_path / "s.duckdb.damaged")  # what the message says to do
    assert st.flush_orphans(path) is True
    assert _steps(path) == list(range(BATCH, 2 * BATCH))


def test_a_complete_trial_row_is_changed_only_by_its_own_run(tmp_path: Path) -> None:
    """A trial of another study that reuses the number (a journal lost and started again) does
    not overwrite a complete row, by either ingest path; the trial's own later rows still do."""
    path = tmp_path / "s.duckdb"

    def row(state: str, started: float, updated: float, value: float | None = None) -> st.TrialRow:
        return st.TrialRow(experiment="e", number=0, state=state, params="{}", value=value,
                           started_at=started, updated_at=updated)

    with st.Spool(path, tag="first") as spool:
        spool.write([row("running", 100.0, 100.0)])
        spool.write([row("complete", 100.0, 110.0, value=1.5)])
    for by_row in (False, True):  # the SQL path, and the per-row path (a hand-edited spool)
        other = [row("failed", 500.0, 600.0).event()]
        with st.writing(path) as con:
            if by_row:
                ingest_events(con, other)
            else:
                file = tmp_path / "other.jsonl"
                file.write_text(json.dumps(other[0]) + "\n")
                ingest_file(con, file)
        (kept,) = st.list_trials(path, "e")
        assert (kept.state, kept.value) == ("complete", 1.5)
    with st.Spool(path, tag="again") as spool:  # its own run may still change it
        spool.write([row("complete", 100.0, 700.0, value=1.25)])
    assert st.list_trials(path, "e")[0].value == 1.25
