"""Which study a run adds to, settled before the runner is built: a smoke run has its own
(`NAME-smoke`), and trials of two versions of a file are not comparable, so a file changed since
its study began either goes on with the study of its own version (`NAME-v2`, made by an earlier
`--new-study`), or is refused with the keys that changed, or, with --new-study, starts a sibling
(`NAME-v2`, `NAME-v3`…)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import LoadedSpec
from tunelab.engine.spec.lines import key_lines, line_of, split_key
from tunelab.engine.spec.load import read_text
from tunelab.engine.spec.overrides import parse_override
from tunelab.store import experiment_spec, get_experiment, list_experiments
from tunelab.store.connection import wait_until_readable

# what may change between runs of one study (spec_hash leaves these out): the budget, the text,
# the hardware
_FREE = (("description",), ("resources",), ("search", "trials"), ("search", "timeout"),
         ("search", "workers"), ("name",))


@dataclass(frozen=True)
class Settled:
    """The spec whose name is the study this run adds to, and how it was chosen."""

    spec: LoadedSpec
    how: str  # "same" | "new" (--new-study) | "version" (the study of this version of the file)


def settle_study(spec: LoadedSpec, store: Path, new_study: bool = False, smoke: bool = False,
                 sets: Sequence[str] = ()) -> Settled:
    """The study this run adds to. `sets`: the `--set` arguments, to name them when a change
    they made is refused."""
    if smoke:
        spec = spec.smoke()
    store = Path(store)
    if not store.exists():
        return Settled(spec, "same")
    wait_until_readable(store)
    name = spec.experiment.name
    known = get_experiment(store, name)
    if known is None:
        return Settled(spec, "same")
    siblings = _versions(store, name)
    if new_study:
        return Settled(spec.renamed(f"{name}-v{max(siblings, default=1) + 1}"), "new")
    if not known.spec_hash or known.spec_hash == spec.spec_hash():
        return Settled(spec, "same")
    for version in sorted(siblings, reverse=True):  # the newest study of this version goes on
        candidate = spec.renamed(f"{name}-v{version}")
        record = get_experiment(store, candidate.experiment.name)
        if record is not None and record.spec_hash == candidate.spec_hash():
            return Settled(candidate, "version")
    raise SpecError(changed_words(spec, store, sets), "experiment changed")


def _versions(store: Path, name: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(name)}-v(\d+)$")
    return [int(m.group(1)) for e in list_experiments(store) if (m := pattern.match(e.name))]


def changed_words(spec: LoadedSpec, store: Path, sets: Sequence[str]) -> str:
    """Why a run is refused: each key whose value differs from the study's, old → new, and where
    the new value comes from (the file's line, or the `--set` that gave it)."""
    name = spec.experiment.name
    before = _flat(experiment_spec(store, name))
    after = _flat(spec.experiment.model_dump(mode="json"))
    lines = key_lines(_text(spec.path))
    given = {tuple(split_key(parse_override(item)[0])): item for item in sets}
    changes = []
    for parts in sorted(set(before) | set(after), key=lambda p: [str(x) for x in p]):
        if any(parts[:len(free)] == free for free in _FREE):
            continue
        old, new = before.get(parts), after.get(parts)
        if old == new:
            continue
        source = next((f"--set {item}" for key, item in given.items()
                       if parts[:len(key)] == key), None)
        if source is None:
            line = line_of(lines, ".".join(parts))
            source = f"{spec.path.name}:{line}" if line else f"not in {spec.path.name}: a default"
        changes.append(f"  {_dotted(parts)}: {_shown(old)} → {_shown(new)} ({source})")
    if not changes:  # the hash says changed, the values do not: a tunelab that hashes otherwise
        changes = ["  (no key differs: it was run by another version of tunelab)"]
    undo = ("drop that --set or revert the file" if any("--set" in c for c in changes)
            else "revert the file")
    return (f"the study {name!r} in {store} was run with other values; its trials would not be "
            "comparable with new ones:\n" + "\n".join(changes[:8])
            + (f"\n  … and {len(changes) - 8} more" if len(changes) > 8 else "")
            + f"\nEither {undo}, or run with --new-study to start a new study beside it "
              "(trials, budget and timeout may change freely).")


def _text(path: Path) -> str:
    try:
        return read_text(path)
    except SpecError:
        return ""


def _flat(value: Any, parts: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict) and value:
        out: dict[tuple[str, ...], Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, (*parts, str(key))))
        return out
    return {parts: value}


def _dotted(parts: tuple[str, ...]) -> str:
    return ".".join(f'"{p}"' if "." in p else p for p in parts)


def _shown(value: Any) -> str:
    """Exactly (two learning rates that round alike still differ): a string quoted as TOML
    writes it, a number as Python prints it."""
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)
