"""Processes that train on the CPU share the cores instead of spinning against each other."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tunelab.engine.run import threads
from tunelab.engine.run.jobs import TrialJob

# a process that counts itself among those training, until its stdin closes
_SIBLING = ("import sys; from tunelab.engine.run import threads; threads.enter(); "
            "print('in', flush=True); sys.stdin.read(); threads.leave()")


@pytest.fixture(autouse=True)
def _own_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A count of this test's own processes: tunelab runs of this user elsewhere on the machine
    (a sweep in another terminal) come and go while the test counts, and must not move it."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _sibling() -> subprocess.Popen:
    sibling = subprocess.Popen([sys.executable, "-c", _SIBLING], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert sibling.stdout is not None and sibling.stdout.readline() == "in\n"
    return sibling


def test_a_process_takes_its_share_of_the_cores_while_another_trains() -> None:
    before = threads.running()  # other trainings of this user, if any
    alone = threads.share(before + 1)
    sibling = _sibling()
    try:
        assert threads.running() == before + 1
        # what take_share takes with no other work on the cores (other work, which a test on a
        # busy machine cannot rule out, takes more: the next test)
        assert threads.wanted() == threads.share(before + 2)
        assert threads.take_share() <= threads.share(before + 2)
        assert threads.take_share(at_most=1) == 1
    finally:
        sibling.communicate("")
    assert threads.running() == before
    assert threads.wanted() == alone


def test_a_process_killed_without_leaving_is_not_counted() -> None:
    before = threads.running()
    sibling = _sibling()
    assert threads.running() == before + 1
    sibling.kill()
    sibling.wait()
    assert threads.running() == before


@pytest.mark.slow  # a fresh interpreter that loads torch
def test_a_trial_process_starts_with_brief_openmp_spinning_and_its_share(tmp_path: Path) -> None:
    from tunelab.engine.run.runner import run_child

    job = TrialJob(store=str(tmp_path / "s.duckdb"), experiment={}, number=None, trial_id=None,
                   study_name="t", storage="", base="", data={}, out_dir=str(tmp_path))
    sibling = _sibling()
    try:
        # a fresh interpreter, which reads this test's TMPDIR: the preloaded fork server may have
        # started in an earlier test and counts in the machine's own folder
        result = run_child("ready", job, context=multiprocessing.get_context("spawn"))
        expected = threads.share(threads.running() + 1)  # the sibling and others, this trial
    finally:
        sibling.communicate("")
    assert result.state == "complete", result.error
    assert result.info["threads"] == expected
    assert result.info["openmp_spin"] == threads.SPIN
    log = (tmp_path / "ready.log").read_text()
    assert f"tunelab: {expected} CPU thread(s)" in log


def test_a_core_that_other_processes_keep_busy_is_left_to_them() -> None:
    cores = threads.cores()
    assert threads.free_cores(0.0) == cores
    assert threads.free_cores(0.4) == cores  # a shell, a watching TUI: not a core's work
    assert threads.free_cores(0.6) == max(1, cores - 1)
    assert threads.free_cores(1.7) == max(1, cores - 2)
    assert threads.free_cores(cores + 5.0) == 1  # never none

    # a real process keeping one core busy: the next looks at /proc/stat see it
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 120
        taken = threads.take_share()
        while taken > max(1, cores - 1) and time.monotonic() < deadline:
            time.sleep(0.6)  # a look needs half a second of window
            taken = threads.take_share()
    finally:
        busy.kill()
        busy.wait()
    if sys.platform == "linux":
        assert taken <= max(1, cores - 1)
