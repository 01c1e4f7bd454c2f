"""A dpo stage's parent: the trial of a supervised experiment it starts from (`method.from`),
looked up in the store. Its [model] and [data] become the stage's, and `best` is pinned to a
trial number, so a later, better parent makes a new study instead of a silent mix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.spec.overrides import set_path
from tunelab.engine.spec.sections import METHOD_KEYS_OF_KIND, PARENT
from tunelab.store import TrialRecord, best_trial, get_experiment, list_trials


def parent_trial(store: Path, name: str, which: str) -> tuple[TrialRecord, Path]:
    """The parent's trial record and its folder (which holds best/ and experiment.json)."""
    record = get_experiment(store, name) if store.exists() else None
    if record is None:
        raise SpecError(f"no experiment {name!r} in {store}; run it first (or pass --store)")
    trials = list_trials(store, name)
    if which == "best":
        trial = best_trial(trials, record.direction)
        if trial is None:
            raise SpecError(f"{name} has no complete trial yet")
    else:
        trial = next((t for t in trials if t.number == int(which)), None)
        if trial is None or trial.state != "complete":
            raise SpecError(f"{name} has no complete trial {which}")
    folder = Path(trial.artifact_dir or "")
    if not (folder / "best").is_dir() or not (folder / "experiment.json").exists():
        raise SpecError(f"trial {trial.number} of {name} kept no checkpoint (removed by "
                        "`tunelab gc`?); start from another trial")
    return trial, folder


def resolve_parent(raw: dict[str, Any], store: Path) -> dict[str, Any]:
    """The dpo file's values with its parent's [model] and [data], its trial number pinned, and
    for an adapter parent the adapter's own settings (the stage goes on training that adapter)."""
    method = raw.get("method", {})
    found = PARENT.match(str(method.get("from", "")))
    if found is None:
        return raw  # the validator names the mistake
    name, which = found.groups()
    trial, folder = parent_trial(store, name, which)
    parent = json.loads((folder / "experiment.json").read_text())
    raw = set_path(raw, "model", parent["model"])
    raw = set_path(raw, "data", parent["data"])
    # measured as the parent was (its metrics, limits), except what the dpo file sets itself
    raw = set_path(raw, "eval", {**parent.get("eval", {}), **raw.get("eval", {})})
    raw = set_path(raw, "method.from", f"{name}:{trial.number}")
    kind = parent["method"]["kind"]
    if not (folder / "best" / "adapter_config.json").exists():
        return raw  # full weights: the stage trains them, or a new adapter on them
    if method.get("kind", kind) != kind:
        raise SpecError(f"trial {trial.number} of {name} is a {kind} adapter and a dpo stage goes "
                        f"on training it: set method.kind = {kind!r} or leave it out")
    fixed = sorted(k for k, kinds in METHOD_KEYS_OF_KIND.items() if kind in kinds)
    searched = {k.removeprefix("method.") for k in raw.get("search", {}).get("space", {})}
    clash = sorted((set(method) | searched) & set(fixed))
    if clash:
        raise SpecError(f"method.{clash[0]} is the parent adapter's ({kind}, trial {trial.number} "
                        f"of {name}); a dpo stage goes on training that adapter, so remove it")
    raw = set_path(raw, "method.kind", kind)
    for key in fixed:
        raw = set_path(raw, f"method.{key}", parent["method"][key])
    return raw
