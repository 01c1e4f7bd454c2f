"""Several machines: two `tunelab worker` processes join one study through a real PostgreSQL
server; every trial runs once, and each worker's results are in its own store."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelab import store as st

from conftest import tunelab, tunelab_command

pytestmark = pytest.mark.slow  # two workers train on one study

SWEEP = """
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[eval]
baseline = false
samples = 0  # no generated samples: nothing here reads them
[search]
trials = 4
sampler = "tpe"
pruner = "none"
[search.space]
"train.learning_rate" = { low = 1e-3, high = 5e-3, log = true }
"""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 and a free port; its URL. Run as the
    `postgres` user when we are root (postgres refuses to run as root)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = _free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=50"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                    "-l", str(folder / "server.log"), "-w", "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             autocommit=True) as con:
            con.execute("CREATE DATABASE tunelab")
        yield f"postgresql://postgres@127.0.0.1:{port}/tunelab"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_on_postgres_run_each_trial_once(tmp_path: Path, small_experiment,
                                                     postgres: str) -> None:
    experiment = small_experiment(SWEEP, rows=200)
    stores = [tmp_path / "machine-a.duckdb", tmp_path / "machine-b.duckdb"]
    workers = [subprocess.Popen([*tunelab_command(), "worker", str(experiment), "--storage",
                                 postgres, "--store", str(store)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for store in stores]
    for w in workers:
        out, err = w.communicate(timeout=900)
        assert w.returncode == 0, err + out

    ran: list[int] = []
    for store in stores:
        if store.exists():
            trials = st.list_trials(store, "tiny")
            assert all(t.state == "complete" and t.value is not None for t in trials)
            ran += [t.number for t in trials]
            # each trial's metrics are in the store of the machine that ran it
            logged = {r[0] for r in st.query(store, "select distinct trial from metrics").rows}
            assert logged == {t.number for t in trials}
    assert sorted(ran) == [0, 1, 2, 3]  # every trial ran once, on one machine or the other

    import optuna

    from tunelab.engine.run.study import open_storage

    study = optuna.load_study(study_name="tiny", storage=open_storage(postgres))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    # the two stores queried as one
    both = tunelab("sql", "select count(*) from trials", "--format", "csv",
                   *[a for s in stores if s.exists() for a in ("--store", str(s))])
    assert both.returncode == 0, both.stderr
