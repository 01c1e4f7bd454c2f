"""The options several commands share, defined once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tunelab import store as st

StoreOption = Annotated[Path, typer.Option(
    "--store", envvar="TUNELAB_STORE", metavar="FILE", help="The DuckDB store file.")]

StoresOption = Annotated[list[Path] | None, typer.Option(
    "--store", envvar="TUNELAB_STORE", metavar="FILE",
    help="A store file; repeat it to query several files as one.")]

SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a key for this run, e.g. --set train.epochs=2 (repeatable).")]

StorageOption = Annotated[str | None, typer.Option(help="Optuna storage, as for run.")]

WorkersOption = Annotated[int | None, typer.Option(
    "--workers", min=1, help="Trials at once on this machine (default: one per GPU, pinned to "
                             "it; 1 on a CPU machine).")]

RetryOption = Annotated[bool, typer.Option(
    "--retry-failed", help="Queue the failed trials again with the same parameters.")]

DEFAULT_STORE = Path(st.DEFAULT_STORE)


def default_store() -> Path:
    """The store when `--store` is absent (for options that take several)."""
    return Path(os.environ.get("TUNELAB_STORE", st.DEFAULT_STORE))
