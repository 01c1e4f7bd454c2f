"""A sweep survives `kill -9`: running it again finishes the study, loses nothing recorded and
duplicates nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tunelab import store as st

from conftest import sweep_toml, tunelab_command

pytestmark = pytest.mark.slow  # sweeps killed and run again

SWEEP = """
[method]
kind = "full"
[train]
epochs = 3
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[search]
trials = 3
sampler = "random"
pruner = "none"
[search.space]
"train.learning_rate" = [3e-3, 1e-3]
"""
# the sweep killed mid-trial: as small as still leaves trial 1 training when it is killed
KILLED = sweep_toml(epochs=2, trials=3, train="logging_steps = 2",
                    space='"train.learning_rate" = [3e-3, 1e-3]')


def _metric_rows(store: Path, trial: int) -> int:
    try:
        return st.query(store, f"select count(*) from metrics where trial = {trial}").rows[0][0]
    except st.StoreError:
        return 0


def _alive(pid: int) -> bool:
    """Running, not exited: an orphan that exited stays a zombie until init reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_9_in_the_middle_of_a_trial_then_run_again(tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(KILLED, rows=200)
    store = tmp_path / "tunelab.duckdb"
    command = [*tunelab_command(), "run", str(experiment), "--store", str(store)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _metric_rows(store, 1) < 3:  # the second trial is training
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.3)
    children = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True)
    run.send_signal(signal.SIGKILL)
    run.wait()
    # the trial process notices its runner is gone and stops (it checks every second)
    for pid in [int(p) for p in children.stdout.split()]:
        gone = time.time() + 120  # a deadline for a busy machine; it is normally a second
        while _alive(pid):
            assert time.time() < gone, f"trial process {pid} outlived its runner"
            time.sleep(0.1)
    before = st.query(store, "select trial, step, split, name, value from metrics").rows

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "trial 1 was left running by a stopped run: marked failed" in again.stdout

    trials = st.list_trials(store, "tiny")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    states = {t.number: t.state for t in trials}
    assert states[1] == "failed"
    assert [t for t in trials if t.number == 1][0].fail_reason == "killed"
    assert sum(s == "complete" for s in states.values()) == 3
    after = set(st.query(store, "select trial, step, split, name, value from metrics").rows)
    assert set(before) <= after  # every metric row recorded before the kill is still there
    assert st.query(store, "select count(*) from (select trial, step, split, name, count(*) n "
                           "from metrics group by all having n > 1)").rows[0][0] == 0


# -- a resumed sweep continues the sampler's sequence (#31)

SPACE = """
[method]
kind = "full"
[search]
trials = 4
sampler = "{sampler}"
seed = 7
[search.space]
"train.learning_rate" = {{ low = 1e-4, high = 1e-2, log = true }}
"method.kind" = ["full", "lora"]
"""


def _asked(study, exp) -> dict:
    from tunelab.engine.run import study as search

    trial = study.ask()
    params = search.sample(trial, exp)
    study.tell(trial, sum(len(str(v)) for v in params.values()) / 10)  # a value TPE can use
    return params


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_each_run_of_a_study_continues_the_samplers_sequence(
        tmp_path: Path, small_experiment, sampler: str) -> None:
    """Four runs of one trial each draw what one run of four trials draws, and never trial 0's
    parameters again (each new run restarted the seeded sequence: its first trial was trial 0's)."""
    from tunelab.engine.run import study as search
    from tunelab.engine.spec import load_spec

    exp = load_spec(small_experiment(SPACE.format(sampler=sampler))).experiment
    whole = search.open_study(exp, str(tmp_path / "whole.journal"))
    in_one_run = [_asked(whole, exp) for _ in range(4)]
    in_four_runs = [_asked(search.open_study(exp, str(tmp_path / "runs.journal")), exp)
                    for _ in range(4)]
    assert in_four_runs == in_one_run
    rates = [p["train.learning_rate"] for p in in_four_runs]
    assert len(set(rates)) == 4, rates


def test_two_runs_at_once_draw_different_trials(tmp_path: Path, small_experiment) -> None:
    """Two processes open the study before either asks: each trial number draws its own."""
    from tunelab.engine.run import study as search
    from tunelab.engine.spec import load_spec

    exp = load_spec(small_experiment(SPACE.format(sampler="tpe"))).experiment
    first, second = (search.open_study(exp, str(tmp_path / "s.journal")) for _ in range(2))
    drawn = [_asked(first, exp), _asked(second, exp), _asked(second, exp), _asked(first, exp)]
    assert len({p["train.learning_rate"] for p in drawn}) == 4, drawn


def test_the_first_trial_draws_what_the_files_seed_always_drew(
        tmp_path: Path, small_experiment) -> None:
    """Trial 0 is the sampler's first draw with the file's seed, as before the seeding by trial
    (the quickstart's file is ordered so that its trial 0 is full fine-tuning)."""
    import optuna

    from tunelab.engine.run import study as search
    from tunelab.engine.spec import load_spec

    exp = load_spec(small_experiment(SPACE.format(sampler="tpe"))).experiment
    plain = optuna.create_study(sampler=optuna.samplers.TPESampler(
        seed=7, multivariate=True, group=True))
    assert _asked(search.open_study(exp, str(tmp_path / "s.journal")), exp) == _asked(plain, exp)


# -- which study a run goes on with (#31: --new-study interrupted; "experiment changed")

def _recorded(store: Path, spec) -> None:
    from tunelab.engine.run import records

    with st.Spool(store, tag="test") as spool:
        spool.write([records.experiment_row(spec)])


def test_after_new_study_the_file_alone_goes_on_with_the_new_study(
        tmp_path: Path, small_experiment) -> None:
    """`--new-study` started tiny-v2 and was stopped: the hint's command, `tunelab run FILE`,
    goes on with tiny-v2 (it was refused as "experiment changed"); --new-study again makes v3."""
    from tunelab.engine.run.identity import settle_study
    from tunelab.engine.spec import load_spec
    from tunelab.tui.cli.run import SweepRequest

    store = tmp_path / "tunelab.duckdb"
    file = small_experiment(SWEEP)
    _recorded(store, load_spec(file, ["train.epochs=1"]))  # tiny, run with another value
    changed = load_spec(file)
    first = settle_study(changed, store, new_study=True)
    assert (first.spec.experiment.name, first.how) == ("tiny-v2", "new")
    _recorded(store, first.spec)  # what the stopped run had recorded
    hint = SweepRequest("run", file, Path("tunelab.duckdb"), new_study=True).again()
    assert hint == f"tunelab run {file}"
    again = settle_study(changed, store)
    assert (again.spec.experiment.name, again.how) == ("tiny-v2", "version")
    assert settle_study(changed, store, new_study=True).spec.experiment.name == "tiny-v3"


def test_the_resume_hint_repeats_the_set_store_and_smoke_it_ran_with() -> None:
    from tunelab.tui.cli.run import SweepRequest

    asked = SweepRequest("run", Path("exp.toml"), Path("runs/other.duckdb"),
                         ("train.epochs=2", "search.space.train.learning_rate={low=1e-4, high=1e-3}"),
                         smoke=True, new_study=True)
    assert asked.again() == ("tunelab run exp.toml --set train.epochs=2 --set "
                             "'search.space.train.learning_rate={low=1e-4, high=1e-3}' "
                             "--store runs/other.duckdb --smoke")


def test_a_refused_change_names_the_key_its_values_and_where_it_came_from(
        tmp_path: Path, small_experiment) -> None:
    from tunelab.engine.errors import SpecError
    from tunelab.engine.run.identity import settle_study
    from tunelab.engine.spec import load_spec

    store = tmp_path / "tunelab.duckdb"
    file = small_experiment(SWEEP)
    _recorded(store, load_spec(file))
    with pytest.raises(SpecError) as by_set:
        settle_study(load_spec(file, ["train.epochs=2"]), store, sets=["train.epochs=2"])
    said = by_set.value.message
    assert "train.epochs: 3 → 2 (--set train.epochs=2)" in said
    assert "drop that --set" in said and "your changes to the file" not in said

    file.write_text(file.read_text().replace("batch_size = 16", "batch_size = 8"))
    line = file.read_text().splitlines().index("batch_size = 8") + 1
    with pytest.raises(SpecError) as by_file:
        settle_study(load_spec(file), store)
    assert f"train.batch_size: 16 → 8 ({file.name}:{line})" in by_file.value.message
    assert "revert the file" in by_file.value.message
