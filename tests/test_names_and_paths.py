"""Names and paths (#17): an experiment name, a trial reference or an export target never
writes outside the tunelab folders; an export is written whole or not at all."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.errors import ExportError, SpecError, TrainError
from tunelab.engine.run.paths import paths
from tunelab.engine.serve.export import export_trial

from conftest import Ran, tunelab


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/b", "..", ".", "", "a/../../b",
                                  "a\\..\\b"])
def test_a_run_folder_is_never_outside_the_runs_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(SpecError, match="would write outside"):
        paths(tmp_path / "tunelab.duckdb", name)
    runs, _ = paths(tmp_path / "tunelab.duckdb", "tiny-2_b")
    assert runs == tmp_path / "tunelab-runs" / "tiny-2_b"


@pytest.mark.parametrize("how", ["--set", "file"])
@pytest.mark.parametrize("name", ["../evil", "/tmp/tunelab-evil"])
def test_an_experiment_name_that_leads_out_is_refused(tmp_path: Path, small_experiment,
                                                      how: str, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    experiment = small_experiment("[search]\ntrials = 1\n")
    extra: list[str] = []
    if how == "--set":
        extra = ["--set", f"name={name}"]
    else:
        experiment.write_text(experiment.read_text().replace('name = "tiny"', f'name = "{name}"'))
    before = _files(tmp_path)
    run = tunelab("run", str(experiment), "--store", str(work / "tunelab.duckdb"), *extra)
    assert run.returncode == 2, run.stderr
    assert "name" in run.stderr and "Traceback" not in run.stderr
    assert _files(tmp_path) == before  # nothing written anywhere
    assert not Path("/tmp/tunelab-evil").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize(("args", "said"), [
    (["export", "../evil", "best"], "evil"),
    (["export", "/tmp/evil", "best"], "evil"),
    (["export", "tiny", "trial:../../x"], "expected best, trial:N or N"),
    (["export", "tiny", "/etc"], "expected best, trial:N or N"),
    (["export", "tiny", "0/../../1"], "expected best, trial:N or N"),
    (["review", "new", "../evil", "--models", "base,best"], "evil"),
])
def test_a_name_or_trial_reference_that_leads_out_writes_nothing(
        tmp_path: Path, trained_store: Path, args: list[str], said: str) -> None:
    store = tmp_path / "tunelab.duckdb"
    shutil.copy(trained_store, store)  # the shared fixture is never written to
    out = tmp_path / "out"
    extra = ["--out", str(out)] if args[0] == "export" else []
    before = _files(tmp_path)
    run = tunelab(*args, *extra, "--store", str(store))
    assert run.returncode in (1, 2), run.stdout + run.stderr
    assert said in run.stderr and "Traceback" not in run.stderr
    after = {p for p in _files(tmp_path) if not p.name.startswith("tunelab.duckdb.spool")
             and p.parent.name != "tunelab.duckdb.spool"}
    assert after == before
    assert not out.exists()


def test_an_export_is_written_whole_or_not_at_all(tmp_path: Path, trained_store: Path) -> None:
    (trial,) = st.list_trials(trained_store, "tiny")
    folder = tmp_path / "trial"
    shutil.copytree(Path(trial.artifact_dir or ""), folder)  # the fixture's files stay as they are
    record = dataclasses.replace(trial, artifact_dir=str(folder))

    # a file that cannot be read half-way through the copy
    (folder / "best" / "zz-broken.json").symlink_to(tmp_path / "nowhere")
    out = tmp_path / "exports" / "tiny"
    with pytest.raises(ExportError, match="cannot export trial 0 .*nothing was written"):
        export_trial(record, {}, out, merge=False)
    assert not out.exists()
    assert list((tmp_path / "exports").iterdir()) == []  # no partial folder left beside it

    # an existing empty folder is fine; the export replaces it whole
    (folder / "best" / "zz-broken.json").unlink()
    out.mkdir()
    assert export_trial(record, {"test/loss": 1.5}, out, merge=False) == out
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()
    assert not (out / "training_args.bin").exists()
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["tiny"]
    with pytest.raises(ExportError, match="not an empty folder"):
        export_trial(record, {}, out, merge=False)


def test_an_export_folder_has_the_permissions_of_any_new_folder(tmp_path: Path,
                                                                trained_store: Path) -> None:
    """It was 0700, the mode of the private temporary folder it is written in."""
    (trial,) = st.list_trials(trained_store, "tiny")
    mask = os.umask(0o022)
    try:
        out = export_trial(trial, {}, tmp_path / "shipped", merge=False)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_an_export_of_a_trial_whose_folder_is_gone_says_so(tmp_path: Path,
                                                          trained_store: Path) -> None:
    """After `rm -rf tunelab-runs` it ended in a traceback."""
    (trial,) = st.list_trials(trained_store, "tiny")
    gone = dataclasses.replace(trial, artifact_dir=str(tmp_path / "deleted" / "trial-0000"))
    with pytest.raises(TrainError, match=r"its folder .*deleted.* is gone .*tunelab rerun tiny 0"):
        export_trial(gone, {}, tmp_path / "out", merge=False)
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_is_renamed_into_place_when_whole(trained_store: Path) -> None:
    (trial,) = st.list_trials(trained_store, "tiny")
    folder = Path(trial.artifact_dir or "")
    assert (folder / "best" / "model.safetensors").exists()
    assert (folder / "best" / "tokenizer.json").exists()
    assert not (folder / "best.partial").exists()
    assert os.listdir(folder / "best")  # whole: the weights and the tokenizer


@pytest.fixture
def own_store(tmp_path: Path, trained_store: Path) -> Path:
    """A copy of the trained store with its runs folder (they move together), to add to."""
    shutil.copytree(trained_store.parent, tmp_path / "copy")
    return tmp_path / "copy" / trained_store.name


def _review(store: Path, *args: str) -> Ran:
    return tunelab("review", "new", *args, "--store", str(store), cwd=store.parent)


def test_a_review_name_is_one_review_and_never_a_path(own_store: Path) -> None:
    """`--name dup` twice made two reviews of one name (look-ups took the newest), and
    `../../evil` was accepted."""
    before = {r.name for r in st.list_reviews(own_store)}  # the shared store's, if a test made one
    first = _review(own_store, "tiny", "--models", "base,best", "--n", "2", "--name", "dup")
    assert first.returncode == 0, first.stderr
    again = _review(own_store, "tiny", "--models", "base,best", "--n", "2", "--name", "dup")
    assert again.returncode != 0 and again.stderr.startswith("review exists\n"), again.stderr
    assert "a review named 'dup' exists" in again.stderr
    for bad in ("../../evil", "a/b", ".hidden", "x" * 65, " spaced", "back\\slash"):
        done = _review(own_store, "tiny", "--models", "base,best", "--n", "2", "--name", bad)
        assert done.returncode != 0 and done.stderr.startswith("bad review name\n"), done.stderr
    assert [r.name for r in st.list_reviews(own_store) if r.name not in before] == ["dup"]


def test_review_new_on_an_unknown_experiment_names_the_experiments(own_store: Path) -> None:
    """It said "no prepared test split", under the heading "training error"."""
    done = _review(own_store, "nosuchexp")
    assert done.returncode != 0
    assert done.stderr.startswith("unknown experiment\n"), done.stderr
    assert "no experiment 'nosuchexp'" in done.stderr and "(experiments: tiny)" in done.stderr
    assert "training error" not in done.stderr and "test split" not in done.stderr
