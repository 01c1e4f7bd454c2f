"""The store under concurrent use, by real processes: writers, readers, a killed writer, a person's
duckdb session holding the file. Nothing acknowledged is ever lost or doubled."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tunelab import store as st
from tunelab.store.spool import spool_dir

from conftest import tunelab

# Writes metric steps [start, end) of one trial in batches of 10, through a Spool that ingests
# after every batch, and prints the count acknowledged (fsynced in its spool) after each one.
# With end = 0 it writes until killed or until the file PATH.stop appears.
WRITER = """
import os, sys, time
from tunelab.store import Spool
path, trial, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spool = Spool(path, tag=f"w{trial}", say_locked_after=float(sys.argv[5]) if len(sys.argv) > 5 else 5)
step = start
while (end == 0 and not os.path.exists(path + ".stop")) or step < end:
    stop = step + 10 if end == 0 else min(step + 10, end)
    spool.write([{"table": "metrics", "row": {"experiment": "e", "trial": trial, "step": i,
                  "split": "train", "name": "loss", "value": float(i), "time": time.time()}}
                 for i in range(step, stop)])
    step = stop
    print(step, flush=True)
spool.close()
print("closed", flush=True)
"""

# Reads until told to stop (a line on stdin), counting answers; any error ends it non-zero.
READER = """
import sys, threading
from tunelab import store
path = sys.argv[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
reads = 0
while not stop.is_set():
    store.query(path, "select trial, count(*) from metrics group by 1")
    reads += 1
print(reads, flush=True)
"""

# Opens the store for writing, as a person's `duckdb FILE` shell does, until told to let go.
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
con.close()
"""


def _python(script: str, *args: object, stdin: int | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _acknowledged_until(writer: subprocess.Popen, at_least: int) -> int:
    """Reads the writer's acknowledgements until one reaches `at_least`; returns the last."""
    assert writer.stdout is not None
    for line in writer.stdout:
        if int(line) >= at_least:
            return int(line)
    raise AssertionError(f"writer stopped early: {writer.stderr.read() if writer.stderr else ''}")


def _steps(path: Path, trial: int) -> tuple[int, int, int]:
    """(rows, distinct steps, max step + 1) of a trial."""
    row = st.query(path, "select count(*), count(distinct step), coalesce(max(step) + 1, 0) "
                         f"from metrics where trial = {trial}").rows[0]
    return row[0], row[1], row[2]


def test_two_writers_and_a_reader_with_a_writer_killed_and_restarted(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    steady = _python(WRITER, path, 1, 0, 600)
    doomed = _python(WRITER, path, 2, 0, 0)
    reader = _python(READER, path, stdin=subprocess.PIPE)

    acknowledged = _acknowledged_until(doomed, 300)
    doomed.send_signal(signal.SIGKILL)  # mid-stream: maybe mid-write, maybe mid-ingest
    doomed.wait()
    # The restarted writer goes on from the last acknowledged step. Steps written after it but
    # before the kill may be in the store already: rewriting them must not double them.
    restarted = _python(WRITER, path, 2, acknowledged, acknowledged + 300)
    for writer in (steady, restarted):
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert out.rstrip().endswith("closed")
    out, err = reader.communicate("stop\n", timeout=120)
    assert reader.returncode == 0, err
    assert int(out) > 0  # it was answered while both wrote

    st.flush_orphans(path)  # the killed writer's spool, if no writer took it in already
    assert _steps(path, 1) == (600, 600, 600)
    end = acknowledged + 300
    assert _steps(path, 2) == (end, end, end)  # every acknowledged step, exactly once
    assert not list(spool_dir(path).glob("*.jsonl"))


def test_while_another_program_holds_the_file_writers_spool_and_readers_say_who(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    with st.Spool(path) as spool:
        spool.write([{"table": "metrics", "row": {"experiment": "e", "trial": 0, "step": 0,
                                                  "split": "train", "name": "loss", "value": 1}}])
    holder = _python(HOLDER, path, stdin=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    writer = _python(WRITER, path, 7, 0, 0, 0.5)
    try:
        _acknowledged_until(writer, 50)
        # the writer says, once, which process holds the file, and goes on writing
        assert writer.stderr is not None
        said = writer.stderr.readline()
        assert f"held by process {holder.pid}" in said and "kept in" in said
        spools = list(spool_dir(path).glob("*w7*.jsonl"))
        assert len(spools) == 1
        size = spools[0].stat().st_size
        lines = spools[0].read_text().count("\n")
        acknowledged = _acknowledged_until(writer, lines + 100)
        assert spools[0].stat().st_size > size  # the spool grows: nothing waits, nothing lost
        assert spools[0].read_text().count("\n") >= acknowledged

        # readers report the lock and who holds it, instead of crashing
        with pytest.raises(st.StoreLocked) as caught:
            st.query(path, "select count(*) from metrics", wait=0.3)
        assert str(holder.pid) in caught.value.holder
        # `tunelab sql` in this process (the holder is another process all the same); it waits
        # 10 s for the lock before it says who holds it: the same words after 0.3 s here
        with monkeypatch.context() as patched:
            patched.setattr(st, "query", functools.partial(st.query, wait=0.3))
            cli = tunelab("sql", "select 1", "--store", str(path))
        assert cli.returncode == 1 and "store locked" in cli.stderr
        assert f"process {holder.pid}" in cli.stderr and "Traceback" not in cli.stderr
    finally:
        holder.communicate("let go\n", timeout=60)  # the person closes their shell
    acknowledged = _acknowledged_until(writer, acknowledged + 100)
    Path(str(path) + ".stop").touch()
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert out.rstrip().endswith("closed") and "free again" in err
    last = int(out.split()[-2])
    assert _steps(path, 7) == (last, last, last)  # everything is in, once, by the writer itself
    assert not list(spool_dir(path).glob("*.jsonl"))


def test_a_reader_can_read_while_a_duckdb_shell_reads(tmp_path: Path) -> None:
    """Read-only sessions share the file: a person's read-only shell blocks no reader."""
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    other = duckdb.connect(str(path), read_only=True)
    try:
        assert st.query(path, "select count(*) from trials").rows == [(0,)]
    finally:
        other.close()


def test_threads_of_one_process_read_and_write_the_same_store(tmp_path: Path) -> None:
    """The TUI's case: workers reading while another records a vote, all in one process."""
    import threading

    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    failures: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                st.query(path, "select count(*) from metrics")
                st.list_trials(path, "e")
        except BaseException as error:  # reported below, in the test thread
            failures.append(error)

    def write() -> None:
        try:
            with st.Spool(path, tag="thread") as spool:
                for step in range(0, 200, 10):
                    spool.write([{"table": "metrics", "row": {
                        "experiment": "e", "trial": 0, "step": s, "split": "train",
                        "name": "loss", "value": 1.0}} for s in range(step, step + 10)])
        except BaseException as error:  # reported below, in the test thread
            failures.append(error)

    threads = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert st.query(path, "select count(*) from metrics").rows == [(200,)]
