"""Where a sweep keeps its files, beside the store: light, so that any part of tunelab can find
an experiment's runs without importing the runner."""

from __future__ import annotations

from pathlib import Path


def paths(store: Path, name: str) -> tuple[Path, Path]:
    """(the experiment's run folder, the default Optuna journal) beside the store."""
    runs = store.parent / f"{store.stem}-runs" / name
    journal = store.parent / f"{store.stem}.optuna.journal"
    return runs, journal
