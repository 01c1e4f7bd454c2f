"""The stores a session looks at (`--store`, repeatable) and the reads the screens make.

Each function runs in a worker thread and returns frozen values. With several stores an
experiment is the union of its rows in every file that has it (machines sharing one Optuna
study each write their own store); a trial remembers the file it came from. Nothing here
touches a widget.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from tunelab import store as st
from tunelab.engine import objectives


@dataclass(frozen=True)
class Stores:
    paths: tuple[Path, ...]

    @property
    def many(self) -> bool:
        return len(self.paths) > 1

    def existing(self) -> list[Path]:
        return [p for p in self.paths if p.exists()]

    def stamp(self) -> tuple[float, ...]:
        """Cheap change detection without opening DuckDB: the files' and spools' mtimes."""
        found = []
        for p in self.paths:
            for q in (p, st.spool_dir(p)):
                try:
                    found.append(os.stat(q).st_mtime)
                except OSError:
                    found.append(0.0)
        return tuple(found)

    def flush(self) -> None:
        """Moves spools left by finished processes in (best effort, as `tunelab trials` does)."""
        for p in self.existing():
            st.flush_orphans(p, wait=0.2)


@dataclass(frozen=True)
class Experiment:
    summary: st.ExperimentSummary
    stores: tuple[Path, ...]


def experiments(stores: Stores) -> list[Experiment]:
    merged: dict[str, Experiment] = {}
    paths = stores.existing()
    if not paths:
        raise st.StoreError(
            "no store at " + ", ".join(str(p) for p in stores.paths)
            + ". Run an experiment first (tunelab run FILE) or point at one with --store PATH.",
            "no store")
    for path in paths:
        for s in st.experiment_summaries(path):
            old = merged.get(s.name)
            if old is None:
                merged[s.name] = Experiment(s, (path,))
                continue
            a = old.summary
            better = a.best_value is None or (s.best_value is not None and (
                objectives.better(s.best_value, a.best_value, a.direction)))
            best = s if better else a
            merged[s.name] = Experiment(replace(
                a, complete=a.complete + s.complete, running=a.running + s.running,
                pruned=a.pruned + s.pruned, failed=a.failed + s.failed,
                best_trial=best.best_trial, best_value=best.best_value,
                best_success=best.best_success,
                baseline_value=a.baseline_value if a.baseline_value is not None else s.baseline_value,
                last_activity=max((t for t in (a.last_activity, s.last_activity) if t), default=None),
            ), (*old.stores, path))
    return sorted(merged.values(), key=lambda e: (e.summary.last_activity is None,
                                                  -(e.summary.last_activity.timestamp()
                                                    if e.summary.last_activity else 0)))


@dataclass(frozen=True)
class Trial:
    overview: st.TrialOverview
    store: Path

    @property
    def number(self) -> int:
        return self.overview.number


def trials(paths: tuple[Path, ...], experiment: str) -> list[Trial]:
    found = [Trial(t, p) for p in paths for t in st.trial_overviews(p, experiment)]
    return sorted(found, key=lambda t: t.number)


@dataclass(frozen=True)
class FoundReview:
    """A review and the store that holds it; `twins`: the other stores with a review of the
    same name (a name is one review within a store, not across files)."""

    review: st.ReviewRecord
    store: Path
    twins: tuple[Path, ...] = ()

    def twin_words(self) -> str | None:
        """What to tell the reviewer when the name is in several stores, else None."""
        if not self.twins:
            return None
        others = ", ".join(p.name for p in self.twins)
        return (f"a review named {self.review.name!r} is also in {others}: this is the one in "
                f"{self.store.name} (the newest)")


def newest_review(paths: Iterable[Path], experiment: str) -> FoundReview | None:
    """The experiment's newest blind review (kind review) in whichever store holds it."""
    found = [(r, p) for p in paths for r in st.list_reviews(p)
             if r.experiment == experiment and r.kind == "review"]
    if not found:
        return None
    review, store = max(found, key=lambda f: f[0].created_at or 0.0)
    twins = tuple(dict.fromkeys(p for r, p in found if r.name == review.name and p != store))
    return FoundReview(review, store, twins)


def evaluations(paths: tuple[Path, ...], experiment: str) -> dict[str, dict[str, float]]:
    return _merged(st.evaluations(p, experiment) for p in paths)


def _merged(per_store: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The evaluations of several stores as one: {model_ref: {"split/name": value}}."""
    merged: dict[str, dict[str, float]] = {}
    for found in per_store:
        for ref, values in found.items():
            merged.setdefault(ref, {}).update(values)
    return merged


def spec(paths: tuple[Path, ...], experiment: str) -> dict:
    for p in paths:
        found = st.experiment_spec(p, experiment)
        if found:
            return found
    return {}


Stamps = dict[Path, dict[int, int]]  # per store: {trial number: a hash of its row}


@dataclass(frozen=True)
class TrialsRead:
    """One live read of an experiment's trials (see `trials_read`)."""

    trials: list[Trial]
    stamps: Stamps
    evaluations: dict[str, dict[str, float]]


def trials_read(paths: tuple[Path, ...], experiment: str, previous: list[Trial],
                stamps: Stamps) -> TrialsRead:
    """`trials` and `evaluations` in one open of each store, re-reading only the trials that
    may have changed since `previous` was read with `stamps`: those whose row changed, the new
    ones and the running ones (their position moves with the metrics). A live screen refreshes
    1,000 trials every 2 s; a few of them change."""
    kept = {(t.store, t.number): t for t in previous}
    found: list[Trial] = []
    now: Stamps = {}
    per_store = []
    for p in paths:
        # a trial this screen does not hold is read whatever its stamp says
        known = {n: d for n, d in stamps.get(p, {}).items() if (p, n) in kept}
        change = st.trials_changed(p, experiment, known)
        fresh = {t.number: t for t in change.changed}
        for number in change.digests:
            trial = Trial(fresh[number], p) if number in fresh else kept.get((p, number))
            if trial is not None:
                found.append(trial)
        now[p] = change.digests
        per_store.append(change.evaluations)
    return TrialsRead(sorted(found, key=lambda t: t.number), now, _merged(per_store))


def file_states(paths: tuple[Path, ...]) -> tuple[tuple[int, ...], ...] | None:
    """The stores' files as the file system describes them (`store.file_state`): while they
    are what they were at the last read, a read would find what it found then. None when one
    was written too recently to tell."""
    states = [st.file_state(p) for p in paths]
    known = tuple(state for state in states if state is not None)
    return known if len(known) == len(states) else None


@dataclass(frozen=True)
class ExampleText:
    """What a trial trained on for one example: the prompt and the answer it was taught."""

    prompt: str
    answer: str


def example_texts(store: Path, artifact_dir: str | None, examples: Iterable[st.ExampleLoss]
                  ) -> dict[tuple[str, int], ExampleText]:
    """The text of each example (by split and position) from the prepared split the trial
    trained on, as its manifest names it; an example whose row no longer has the same origin
    (the split was prepared again since) is left out, as is everything when the files are
    gone."""
    wanted: dict[str, dict[int, str | None]] = {}
    for e in examples:
        wanted.setdefault(e.split, {})[e.position] = e.origin
    manifest = _beside(store, Path(artifact_dir or "") / "manifest.json") if artifact_dir else None
    if not wanted or manifest is None:
        return {}
    try:
        files = json.loads(manifest.read_text()).get("data") or {}
    except (OSError, ValueError):
        return {}
    found: dict[tuple[str, int], ExampleText] = {}
    for split, positions in wanted.items():
        path = _beside(store, Path(files.get(split) or ""))
        if path is None:
            continue
        with path.open("rb") as f:
            for position, line in enumerate(f):
                if position in positions:
                    row = json.loads(line)
                    if row.get("origin") == positions[position]:
                        found[(split, position)] = ExampleText(str(row.get("prompt") or ""),
                                                               str(row.get("completion") or ""))
                if position >= max(positions):
                    break
    return found


def _beside(store: Path, path: Path) -> Path | None:
    """`path` as a run wrote it: from the folder it ran in (usually the store's), else None."""
    for candidate in (path, store.parent / path):
        if str(path) not in ("", ".") and candidate.is_file():
            return candidate
    return None
