"""The Optuna journal under faults (#31): moved away, replaced by another study's, cut short, a
garbage line, a torn last line; two runs at once. Each case starts from a copy of one finished
two-trial sweep, injects the fault, runs the command a person would, and checks that no complete
trial's row changed, that no configuration repeats unless asked, and that the message names the
cause and the fix. Then the sweep resumes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest

from tunelab import store as st

from conftest import tunelab_command, write_small_experiment

pytestmark = pytest.mark.slow  # real sweeps on a damaged journal

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
samples = 0
[search]
trials = {trials}
sampler = "tpe"
pruner = "none"
[search.space]
"train.learning_rate" = {{ low = 1e-3, high = 5e-3, log = true }}
"""

STATES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
          optuna.trial.TrialState.FAIL: "failed"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a finished sweep of two trials: file, data, store, journal, runs."""
    folder = tmp_path_factory.mktemp("finished")
    write_small_experiment(folder, SWEEP.format(trials=2), rows=160)
    # in a process of its own, as a person's run: one that has ended (trials of a live process
    # are that process's to record)
    done = _tunelab(folder, "run", "tiny.toml")
    assert done.returncode == 0, done.stderr
    return folder


def _copy(finished: Path, tmp_path: Path, trials: int = 3) -> Path:
    """A copy of the finished sweep whose file asks for `trials` (the budget may change)."""
    folder = tmp_path / "sweep"
    shutil.copytree(finished, folder)
    write_small_experiment(folder, SWEEP.format(trials=trials), rows=160)
    return folder


def _tunelab(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tunelab_command(), *args], cwd=folder, capture_output=True,
                          text=True, timeout=600)


def _complete_rows(folder: Path) -> dict[int, tuple[Any, ...]]:
    """Every column of every complete trial's row of tiny."""
    rows = st.query(folder / "tunelab.duckdb", "select * from trials where state = 'complete' "
                                               "and experiment = 'tiny' order by number").rows
    return {row[1]: tuple(row) for row in rows}


def _study(folder: Path, name: str = "tiny") -> optuna.Study:
    """The study as plain Optuna reads the journal (it raises on any unreadable line)."""
    journal = optuna.storages.journal.JournalFileBackend(str(folder / "tunelab.optuna.journal"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(journal))


def _agree(folder: Path, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    """The store matches the study trial by trial: numbers, states, parameters, values; and no
    configuration repeats (none of these tests asks for a repeat)."""
    study = _study(folder, name)
    rows = {t.number: t for t in st.list_trials(folder / "tunelab.duckdb", name)}
    assert sorted(rows) == [t.number for t in study.trials]
    for t in study.trials:
        assert rows[t.number].state == STATES[t.state], (t.number, rows[t.number].state, t.state)
        assert rows[t.number].params == t.params
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert rows[t.number].value == pytest.approx(t.value)
    tried = [json.dumps(t.params, sort_keys=True) for t in study.trials if t.params]
    assert len(tried) == len(set(tried)), tried
    return study.trials


def _resumed(folder: Path, before: dict[int, tuple[Any, ...]], total: int = 3) -> None:
    """`tunelab run` goes on: the earlier complete rows as they were, `total` trials in all."""
    again = _tunelab(folder, "run", "tiny.toml")
    assert again.returncode == 0, again.stderr
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    trials = _agree(folder)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == total


def test_a_journal_moved_away_is_refused_then_put_back_the_sweep_goes_on(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    journal.rename(tmp_path / "moved.journal")

    run = _tunelab(folder, "run", "tiny.toml")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    said = " ".join(run.stderr.split())
    assert "tunelab.duckdb has 2 trials of tiny" in said
    assert "Optuna journal tunelab.optuna.journal is missing: was it moved or deleted?" in said
    assert f"put the journal back at {journal}" in said
    assert "`tunelab run tiny.toml --new-study`" in said
    assert not journal.exists()  # no empty journal left behind, to pass for another study later
    assert _complete_rows(folder) == before

    (tmp_path / "moved.journal").rename(journal)
    _resumed(folder, before)


def test_a_journal_moved_away_then_new_study_leaves_the_old_trials_as_they_were(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path, trials=1)
    before = _complete_rows(folder)
    (folder / "tunelab.optuna.journal").unlink()
    run = _tunelab(folder, "run", "tiny.toml", "--new-study")
    assert run.returncode == 0, run.stderr
    assert "tiny-v2: a new study beside 'tiny'" in run.stdout
    assert _complete_rows(folder) == before
    (new,) = st.list_trials(folder / "tunelab.duckdb", "tiny-v2")
    assert new.state == "complete"
    # its folder is its study's own: trial 0 of tiny-v2 is not trial 0 of tiny
    assert new.artifact_dir != st.list_trials(folder / "tunelab.duckdb", "tiny")[0].artifact_dir


def test_another_studys_journal_is_refused_with_what_differs(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    journal.unlink()  # a journal of a study of the same name, run elsewhere, copied here
    other = optuna.create_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    for rate in (1.5e-3, 2.5e-3):
        other.enqueue_trial({"train.learning_rate": rate})
        trial = other.ask()
        trial.suggest_float("train.learning_rate", 1e-3, 5e-3, log=True)
        other.tell(trial, 3.0)
    size = journal.stat().st_size

    for command in (["run", "tiny.toml"], ["enqueue", "tiny.toml", "--set",
                                           "train.learning_rate=0.002"]):
        run = _tunelab(folder, *command)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        said = " ".join(run.stderr.split())
        assert "the study 'tiny' in tunelab.optuna.journal is a different one" in said
        assert "put back the journal these trials were run with" in said
    assert _complete_rows(folder) == before
    assert journal.stat().st_size == size  # nothing added to the other study either


def _lines(journal: Path) -> list[bytes]:
    return journal.read_bytes().splitlines(keepends=True)


def _line_of(journal: Path, op_code: int, trial_id: int | None = None, nth: int = 0) -> int:
    """The index of the nth line of an operation (of a trial, by its id)."""
    found = [i for i, line in enumerate(_lines(journal))
             if (op := json.loads(line))["op_code"] == op_code
             and (trial_id is None or op.get("trial_id") == trial_id)]
    return found[nth]


def test_a_journal_cut_short_is_repaired_and_the_store_restores_what_it_lost(
        finished: Path, tmp_path: Path) -> None:
    """Cut in the middle of trial 1's creation: Optuna reads trial 0 only, the store has both."""
    folder = _copy(finished, tmp_path)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    create = _line_of(journal, 4, nth=1)  # CREATE_TRIAL of trial 1
    lines = _lines(journal)
    cut = b"".join(lines[:create]) + lines[create][: len(lines[create]) // 2]
    journal.write_bytes(cut)

    run = _tunelab(folder, "run", "tiny.toml")
    assert run.returncode == 0, run.stderr
    said = " ".join(run.stderr.split())
    assert "tunelab.optuna.journal was damaged: its last line was cut short" in said
    assert "the file as it was is kept in tunelab.optuna.journal.before-repair-" in said
    assert "the study had lost trial 1: restored from the store" in said
    kept = list(folder.glob("tunelab.optuna.journal.before-repair-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == cut
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    trials = _agree(folder)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3


def test_a_garbage_line_in_the_middle_is_set_aside_and_every_other_line_kept(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    lines = _lines(journal)
    where = _line_of(journal, 6, trial_id=0)  # after trial 0 was told complete
    journal.write_bytes(b"".join(lines[:where + 1]) + b"oops, an editor was here\n"
                        + b"".join(lines[where + 1:]))
    with pytest.raises(ValueError):
        _study(folder)  # as plain Optuna sees it: the study cannot be opened

    run = _tunelab(folder, "run", "tiny.toml")
    assert run.returncode == 0, run.stderr
    said = " ".join(run.stderr.split())
    assert f"tunelab.optuna.journal was damaged: line {where + 2} could not be read" in said
    assert f"goes on with the {len(lines)} lines Optuna can read" in said
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    assert [t.state for t in _agree(folder)] == [optuna.trial.TrialState.COMPLETE] * 3


def test_a_torn_last_line_is_set_aside_and_nothing_is_written_after_it(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    torn = b'{"op_code":8,"worker_id":"w-1","trial_id":1,"user_attr":{"ho'
    journal.write_bytes(journal.read_bytes() + torn)  # killed in the middle of a write

    run = _tunelab(folder, "run", "tiny.toml")
    assert run.returncode == 0, run.stderr
    assert "its last line was cut short" in " ".join(run.stderr.split())
    assert torn in next(folder.glob("tunelab.optuna.journal.before-repair-*")).read_bytes()
    assert all(json.loads(line) for line in _lines(journal))  # every line whole and readable
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    assert [t.state for t in _agree(folder)] == [optuna.trial.TrialState.COMPLETE] * 3


@pytest.mark.parametrize("command", [
    ["enqueue", "tiny.toml", "--set", "train.learning_rate=0.002"],
    ["rerun", "tiny", "1"],
    ["confirm", "tiny", "--top", "1", "--seeds", "1"],
])
def test_every_command_that_opens_the_study_repairs_a_garbage_line(
        finished: Path, tmp_path: Path, command: list[str]) -> None:
    folder = _copy(finished, tmp_path, trials=2)
    before = _complete_rows(folder)
    journal = folder / "tunelab.optuna.journal"
    journal.write_bytes(journal.read_bytes() + b"\x00\x01 not json\n")
    run = _tunelab(folder, *command)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "tunelab.optuna.journal was damaged" in " ".join(run.stderr.split())
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    assert all(json.loads(line) for line in _lines(journal))
    study = _study(folder)
    if command[0] == "enqueue":
        assert study.trials[-1].state == optuna.trial.TrialState.WAITING
    else:  # the repeat was asked for: trial 2 runs trial 1's or the best's parameters again
        assert study.trials[2].user_attrs.get("rerun_of") in (0, 1)


def test_a_finished_configuration_is_not_queued_again_unless_asked(
        finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path, trials=2)
    rate = _study(folder).trials[1].params["train.learning_rate"]
    run = _tunelab(folder, "enqueue", "tiny.toml", "--set", f"train.learning_rate={rate!r}")
    assert run.returncode == 1, run.stdout
    said = " ".join(run.stderr.split())
    assert "trial 1 of tiny already ran this configuration (complete" in said
    assert "`tunelab rerun tiny 1`" in said and "queued for" not in run.stdout
    assert len(_study(folder).trials) == 2


def test_two_runs_at_once_draw_different_trials(finished: Path, tmp_path: Path) -> None:
    folder = _copy(finished, tmp_path, trials=4)
    before = _complete_rows(folder)
    # both build the scratch model at once (the second run's build failed: "Directory not empty")
    shutil.rmtree(folder / "tunelab-runs" / "tiny" / "base")
    command = [*tunelab_command(), "run", "tiny.toml"]
    runs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    after = _complete_rows(folder)
    assert {n: after[n] for n in before} == before
    trials = _agree(folder)  # no configuration twice: each trial number seeds its own draw
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) >= 4


def test_a_store_deleted_between_runs_gets_the_studys_trials_back(
        finished: Path, tmp_path: Path) -> None:
    """The store is lost, the journal kept: the next run records each finished trial's row from
    the study (their curves were in the lost file) and goes on."""
    folder = _copy(finished, tmp_path)
    before = {n: row[:6] for n, row in _complete_rows(folder).items()}  # experiment … value
    (folder / "tunelab.duckdb").unlink()
    run = _tunelab(folder, "run", "tiny.toml")
    assert run.returncode == 0, run.stderr
    said = " ".join(run.stderr.split())
    assert "the store had no row of trials 0, 1, which the study has finished: recorded from " \
           "the study" in said
    after = {n: row[:6] for n, row in _complete_rows(folder).items()}
    assert {n: after[n] for n in before} == before
    assert [t.state for t in _agree(folder)] == [optuna.trial.TrialState.COMPLETE] * 3
    rows = {t.number: t for t in st.list_trials(folder / "tunelab.duckdb", "tiny")}
    assert rows[0].duration_s is not None and rows[0].duration_s < 120  # its own, not "until now"
