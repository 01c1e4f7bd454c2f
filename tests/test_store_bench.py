"""The store benchmark keeps working (its numbers are for people; no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # a benchmark script in its own process: seconds


def test_the_store_benchmark_runs_at_a_small_size() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_store.py"), "--trials", "20",
                           "--ingest-rows", "3000", "--repeat", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for line in ("list_trials with best objective", "trial_curve", "tunelab Spool.ingest",
                 "plain duckdb: read_json + INSERT"):
        assert line in done.stdout
