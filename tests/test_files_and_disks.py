"""Files, folders and disks: the runs folder deleted mid-sweep, a disk that fills while the
scratch model is built or while a trial runs, a read of the store when it cannot be written,
a store found from another folder, files that are no store, and `--out` that cannot be written.
The full disks are real: a small tmpfs (skipped where mounting is not allowed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_store_faults import small_disk  # noqa: F401 - the small real disk, a fixture

from tunelab import store as st
from tunelab.engine.errors import TrainError
from tunelab.engine.run import events
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import EXPERIMENTS, Ran, mounted_tmpfs, tunelab

SWEEP = '''name = "tiny"
[model]
scratch = {{ hidden_size = {hidden}, layers = {layers}, heads = 2, vocab_size = 128 }}
[data]
train = "data.jsonl"
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
learning_rate = 3e-3
[search]
trials = {trials}
sampler = "random"
pruner = "none"
[search.space]
"train.learning_rate" = [3e-3, 1e-3]
[eval]
baseline = false
samples = 0
'''


def _sweep(folder: Path, trials: int = 3, hidden: int = 32, layers: int = 1, rows: int = 160
           ) -> Path:
    rows_text = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:rows]
    (folder / "data.jsonl").write_text("\n".join(rows_text) + "\n")
    path = folder / "tiny.toml"
    path.write_text(SWEEP.format(trials=trials, hidden=hidden, layers=layers))
    return path


class Hook:
    """A reporter that does one thing when an event of a kind first comes (as a person would at
    that moment), and keeps the events."""

    def __init__(self, kind: type | None, act: Any) -> None:
        self.kind, self.act, self.events, self.done = kind, act, [], False

    def event(self, event: Any) -> None:
        self.events.append(event)
        if self.kind is not None and isinstance(event, self.kind) and not self.done:
            self.done = True
            self.act()


@pytest.mark.slow
def test_the_runs_folder_deleted_mid_sweep_is_made_again_and_the_loss_said(tmp_path: Path
                                                                           ) -> None:
    """`rm -rf tunelab-runs` after the first trial: three trials failed with a raw
    FileNotFoundError (…/train.jsonl) and the sweep stopped."""
    spec = load_spec(_sweep(tmp_path))
    store = tmp_path / "tunelab.duckdb"
    hook = Hook(events.TrialEnd, lambda: shutil.rmtree(tmp_path / "tunelab-runs"))
    Runner(spec, store, hook).run()
    trials = st.list_trials(store, "tiny")
    assert [t.state for t in trials] == ["complete"] * 3, [(t.state, t.error) for t in trials]
    remade = [e for e in hook.events if isinstance(e, events.Remade)]
    assert remade == [events.Remade(runs=str(tmp_path / "tunelab-runs" / "tiny"), lost=(0,))]
    with pytest.raises(TrainError, match="its folder .* is gone"):
        from tunelab.engine.serve.export import export_trial
        export_trial(trials[0], {}, tmp_path / "out", merge=False)


@pytest.mark.slow
def test_a_disk_full_while_the_scratch_model_is_built_says_so_without_a_trace(
        small_disk: Path) -> None:  # noqa: F811
    path = _sweep(small_disk, trials=1, hidden=256, layers=2, rows=400)
    done = tunelab("run", str(path), cwd=small_disk)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no base model\ncould not build the scratch model: the disk is full (No space left on " \
           "device); free space and run again" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "safetensors" not in done.stderr


def _fill(folder: Path) -> None:
    """Fills the small disk to its last byte (a file that grows until the kernel says no)."""
    with (folder / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


@pytest.fixture
def roomy_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs with room for a sweep, to be filled by the test."""
    with mounted_tmpfs(tmp_path, "48m") as folder:
        yield folder


@pytest.mark.slow
def test_a_trial_running_when_the_disk_filled_is_settled_by_the_resumed_sweep(
        roomy_disk: Path) -> None:
    """It stayed `running` in the store after a resumed sweep completed: the run told Optuna
    the trial's end, then could not write the row."""
    _sweep(roomy_disk, trials=2)
    store = roomy_disk / "tunelab.duckdb"
    # the first run in its own process (a resumed run settles only trials of a run that is gone),
    # the disk filled as its first trial reports progress
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_files_and_disks import Hook, _fill
        from tunelab import store as st
        from tunelab.engine.run import events
        from tunelab.engine.run.runner import Runner
        from tunelab.engine.spec import load_spec
        folder = Path({str(roomy_disk)!r})
        try:
            Runner(load_spec(folder / "tiny.toml"), folder / "tunelab.duckdb",
                   Hook(events.TrialProgress, lambda: _fill(folder))).run()
        except st.StoreError as error:
            print("stopped:", error.message.splitlines()[0])
    """)
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=600)
    assert "stopped: " in first.stdout and "No space left on device" in first.stdout, \
        first.stdout + first.stderr
    (roomy_disk / "filler").unlink()
    assert [t.state for t in st.list_trials(store, "tiny")] == ["running"]  # as it was seen
    again = Hook(None, lambda: None)
    Runner(load_spec(roomy_disk / "tiny.toml"), store, again).run()
    trials = {t.number: t for t in st.list_trials(store, "tiny")}
    assert "running" not in {t.state for t in trials.values()}, trials
    assert trials[0].state == "failed" and "its end was not recorded" in (trials[0].error or "")
    assert events.Settled(number=0, state="failed") in again.events


def test_sql_reads_the_store_as_it_is_when_the_spool_cannot_be_merged(small_disk: Path  # noqa: F811
                                                                     ) -> None:
    """It failed "disk full": merging the spool first needs a write."""
    store = small_disk / "tunelab.duckdb"
    with st.Spool(store) as spool:
        spool.write([{"table": "experiments", "row": {"name": "a", "spec_hash": "h"}}])
    # events a process spooled and never merged (it died): the next reader merges them first
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from tunelab import store as st
        spool = st.Spool({str(store)!r})
        spool.write([{{"table": "experiments", "row": {{"name": f"b{{i}}", "spec_hash": "h",
                                                       "description": "x" * 2000}}}}
                     for i in range(200)], ingest=False)
        os._exit(0)
    """)], check=True, timeout=120)
    _fill(small_disk)
    done = tunelab("sql", "select name from experiments order by 1", "--format", "csv",
                   "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "name\na\n"
    assert done.stderr.startswith(f"note: {store}: the events waiting in its spool are not in this "
                                  "result (disk full"), done.stderr
    (small_disk / "filler").unlink()
    assert st.flush_orphans(store) is True  # nothing was lost: in once there is room
    assert len(st.query(store, "select * from experiments").rows) == 201


@pytest.mark.slow
def test_trial_folders_are_found_from_any_folder(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with the default (relative) store recorded folders relative to where it started:
    `export … --store ../other/tunelab.duckdb` said "no kept checkpoint" and gc found nothing."""
    folder = tmp_path / "project"
    folder.mkdir()
    spec = load_spec(_sweep(folder, trials=1))
    monkeypatch.chdir(folder)
    Runner(spec, Path("tunelab.duckdb"), Hook(None, lambda: None)).run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def cli(*args: str) -> Ran:
        return tunelab(*args, "--store", "../project/tunelab.duckdb", cwd=elsewhere)

    exported = cli("export", "tiny", "0", "--out", "shipped")
    assert exported.returncode == 0, exported.stderr
    assert (elsewhere / "shipped" / "model.safetensors").exists()
    gc = cli("gc", "tiny", "--keep", "0")
    assert gc.returncode == 0, gc.stderr
    assert "│ 0 │ complete │" in gc.stdout and "KiB" in gc.stdout, gc.stdout  # found, with its size


@pytest.mark.parametrize("what", ["passwd", "journal"])
def test_a_file_that_is_no_store_is_called_so(tmp_path: Path, what: str) -> None:
    """`--store /etc/passwd` and a journal were called "damaged … move it aside"."""
    path = tmp_path / ("passwd" if what == "passwd" else "tunelab.optuna.journal")
    path.write_text("root:x:0:0:root:/root:/bin/bash\n" if what == "passwd"
                    else '{"op_code": 0, "worker_id": "w"}\n' * 400)
    before = path.read_bytes()
    done = tunelab("sql", "select 1", "--store", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("not a tunelab store\n"), done.stderr
    assert "damaged" not in done.stderr and "move" not in done.stderr
    said = ("begins 'root:x:0:0:root:/root:/bin/bash'" if what == "passwd"
            else "Optuna journal of a sweep; its store is tunelab.duckdb beside it")
    assert said in done.stderr
    assert path.read_bytes() == before


@pytest.fixture
def full_device(tmp_path: Path) -> Path:
    """A device like /dev/full (every write: No space left on device)."""
    path = tmp_path / "full"
    made = subprocess.run(["mknod", "-m", "666", str(path), "c", "1", "7"], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot make a device node here (needs root)")
    return path


def test_schema_out_that_cannot_be_written_is_said_in_words(tmp_path: Path,
                                                            full_device: Path) -> None:
    """`tunelab schema --out missing/dir/s.json` and `--out /dev/full` ended in tracebacks."""
    for out, said in ((tmp_path / "missing" / "dir" / "s.json", "does not exist; create it first"),
                      (full_device, "cannot be written: No space left on device")):
        done = tunelab("schema", "--out", str(out))
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("format_", ["parquet", "csv", "table"])
def test_sql_out_on_a_full_device_says_so_and_leaves_the_device(tmp_path: Path, full_device: Path,
                                                                format_: str) -> None:
    """pyarrow deletes the file it failed to write: it deleted the device node."""
    store = tmp_path / "tunelab.duckdb"
    with st.Spool(store) as spool:
        spool.write([{"table": "experiments", "row": {"name": "a", "spec_hash": "h"}}])
    done = tunelab("sql", "select * from experiments", "--format", format_, "--out",
                   str(full_device), "--store", str(store))
    assert done.returncode == 1 and "No space left on device" in done.stderr, done.stderr
    assert full_device.is_char_device()
