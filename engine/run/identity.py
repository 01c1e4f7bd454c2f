"""Which study a run adds to, settled before the runner is built: a smoke run has its own
(`NAME-smoke`), and a file changed since its study began either is refused or, with
--new-study, starts a sibling (`NAME-v2`, `NAME-v3`…), since trials of two versions of a file
are not comparable."""

from __future__ import annotations

from pathlib import Path

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import LoadedSpec
from tunelab.store import get_experiment, list_experiments


def settle_study(spec: LoadedSpec, store: Path, new_study: bool = False,
                 smoke: bool = False) -> LoadedSpec:
    """The spec whose name is the study this run adds to."""
    if smoke:
        spec = spec.smoke()
    store = Path(store)
    if not store.exists():
        return spec
    name = spec.experiment.name
    known = get_experiment(store, name)
    if known is None or not known.spec_hash or known.spec_hash == spec.spec_hash():
        return spec
    if not new_study:
        raise SpecError(
            f"the study {name!r} in {store} was run from a different version of "
            f"{spec.path.name} (its trials would not be comparable with new ones).\n"
            "Either revert your changes to the file, or run with --new-study to start a "
            "new study beside the old one (trials, budget and timeout may change freely).",
            "experiment changed")
    taken = {e.name for e in list_experiments(store)}
    version = 2
    while f"{name}-v{version}" in taken:
        version += 1
    return spec.renamed(f"{name}-v{version}")
