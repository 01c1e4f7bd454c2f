"""Retention: free the disk that checkpoints of unpromising trials take, keep every row.

A finished trial keeps its best checkpoint in `<artifact_dir>/best/` (and a trial killed while
it trained may leave `<artifact_dir>/checkpoints/`). `plan_gc` chooses what goes: the folders of
every trial that is not among the best N complete trials by the experiment's objective, and
never those of a running trial. `apply_gc` deletes exactly what the plan lists. The store's rows
(trials, metrics, evaluations) are not touched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunelab.store import read
from tunelab.store.errors import StoreError

CHECKPOINT_FOLDERS = ("best", "checkpoints")


@dataclass(frozen=True)
class GcTrial:
    number: int
    state: str
    value: float | None
    folders: tuple[Path, ...]   # checkpoint folders that exist
    bytes: int


@dataclass(frozen=True)
class GcPlan:
    experiment: str
    keep: int
    kept: tuple[GcTrial, ...]      # the best N, untouched
    remove: tuple[GcTrial, ...]    # trials whose checkpoint folders go

    @property
    def bytes_freed(self) -> int:
        return sum(t.bytes for t in self.remove)


def folder_size(path: Path) -> int:
    """Bytes under a folder, without following links."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _checkpoints(artifact_dir: str | None) -> tuple[Path, ...]:
    if not artifact_dir:
        return ()
    base = Path(artifact_dir)
    return tuple(base / name for name in CHECKPOINT_FOLDERS
                 if (base / name).exists() or (base / name).is_symlink())


def plan_gc(store: str | Path, experiment: str, keep: int) -> GcPlan:
    """What `apply_gc` would delete to keep the checkpoints of the best `keep` trials only."""
    if keep < 0:
        raise StoreError(f"--keep {keep}: expected 0 or more", "bad option")
    found = read.require_experiment(store, experiment)
    trials = read.list_trials(store, experiment)
    best = {t.number for t in read.ranked_trials(trials, found.direction)[:keep]}
    kept, remove = [], []
    for t in trials:
        folders = _checkpoints(t.artifact_dir)
        entry = GcTrial(t.number, t.state, t.value, folders, sum(folder_size(f) for f in folders))
        if t.number in best:
            kept.append(entry)
        elif folders and t.state != "running":
            remove.append(entry)
    return GcPlan(experiment, keep, tuple(kept), tuple(remove))


def apply_gc(plan: GcPlan) -> int:
    """Deletes the plan's checkpoint folders; returns the bytes freed."""
    freed = 0
    for trial in plan.remove:
        for folder in trial.folders:
            size = folder_size(folder)
            if folder.is_symlink() or folder.is_file():
                folder.unlink(missing_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                freed += size
    return freed
