"""The options several commands share, defined once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from tunelab import store as st
from tunelab.store.errors import TunelabError

T = TypeVar("T")

StoreOption = Annotated[Path, typer.Option(
    "--store", envvar="TUNELAB_STORE", metavar="FILE", help="The DuckDB store file.")]

StoresOption = Annotated[list[Path] | None, typer.Option(
    "--store", envvar="TUNELAB_STORE", metavar="FILE",
    help="A store file; repeat it to query several files as one.")]

# a command that acts in one store (votes, a chat) and finds it among several
LookupStoresOption = Annotated[list[Path] | None, typer.Option(
    "--store", envvar="TUNELAB_STORE", metavar="FILE",
    help="A store file; repeat it to look in several (the one that holds the name is used).")]

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


def holding(stores: list[Path] | None, what: str, find: Callable[[Path], T | None],
            missing: str) -> tuple[Path, T]:
    """The one of `stores` (`--store`, repeatable) where `find` finds `what`, and what it
    found. `missing` says what to do when none holds it; `what` in two stores is refused, as
    the command acts in one."""
    paths = stores or [default_store()]
    held = []
    for store in paths:
        st.flush_orphans(store)
        found = find(store)
        if found is not None:
            held.append((store, found))
    if not held:
        raise TunelabError(f"no {what} in {', '.join(str(p) for p in paths)}{missing}",
                           f"unknown {what.split()[0]}")
    if len(held) > 1:
        article = "an" if what[0] in "aeiou" else "a"
        raise TunelabError(f"{article} {what} is in {' and '.join(str(p) for p, _ in held)}: give "
                           "the --store of the one you mean", f"{what.split()[0]} in several stores")
    return held[0]
