"""Where a sweep keeps its files, beside the store: light, so that any part of tunelab can find
an experiment's runs without importing the runner."""

from __future__ import annotations

from pathlib import Path

from tunelab.engine.errors import SpecError


def paths(store: Path, name: str) -> tuple[Path, Path]:
    """(the experiment's run folder, the default Optuna journal) beside the store. A name that
    would lead out of the runs folder (`..`, a slash, an absolute path) is refused here, the one
    place every run folder is made, whatever let it through before."""
    store = Path(store).absolute()  # what a trial folder records (its base model, its
    # manifest) must load from any working folder, as the store's rows do (store.read)
    root = store.parent / f"{store.stem}-runs"
    runs = root / name
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name \
            or runs.resolve().parent != root.resolve():
        raise SpecError(f"{name!r} is not an experiment name (a letter or digit, then letters, "
                        "digits, - and _): it would write outside "
                        f"{root}", "bad experiment name")
    journal = store.parent / f"{store.stem}.optuna.journal"
    return runs, journal


def trials_folder(runs: Path, study_key: str | None) -> Path:
    """Where one study's trial folders are: `runs/study-KEY/` (engine.run.study.study_key), so
    that two studies of one name (a journal lost and started again) never share a trial's
    folder; a study from an older tunelab, without a key, keeps them in `runs/`."""
    return runs / f"study-{study_key}" if study_key else runs


def trial_folder(trials: Path, number: int) -> Path:
    """A trial's folder: its checkpoints, its log, its manifest."""
    return trials / f"trial-{number:04d}"
