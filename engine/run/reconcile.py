"""Before a command adds to a study, the Optuna study (the journal) and the store must tell the
same story, trial by trial.

- A journal that Optuna cannot read whole is repaired first (engine.run.journal): the readable
  lines stay, the rest is set aside, a copy of the file is kept.
- The store knows trials of the experiment but the study is missing (the journal moved away or
  deleted) or is another one (a journal from elsewhere, started again): refused. A new study
  would number its trials from 0 again and write over the finished ones.
- The same study with trials the journal lost (a journal cut short, its damaged tail set aside):
  the store's finished trials are told to the study again, so the sweep goes on counting them.

A study is the same when its trials and the store's agree where both know them: parameters,
start time, and the study's key in the trials' folders (engine.run.study.study_key).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.engine.errors import TunelabError
from tunelab.engine.run import study as search
from tunelab.engine.run.jobs import TrialResult, running
from tunelab.engine.run.journal import JournalDamaged, needs_repair, repair
from tunelab.engine.spec import Experiment
from tunelab.store import TrialRecord, TrialRow, flush_orphans, list_trials
from tunelab.store.connection import wait_until_readable

SAME_START_S = 120.0  # a trial's start in the journal and in the store: taken a moment apart
_KEY = re.compile(r"study-([0-9a-f]{8})")


class StudyMismatch(TunelabError):
    title = "study and store disagree"


@dataclass
class Opened:
    """The study a command goes on with, and what was done to make it agree with the store."""

    study: Any
    notes: list[str] = field(default_factory=list)  # repairs and restores, in words
    lost: list[int] = field(default_factory=list)  # trials neither the journal nor the store had
    # trials the study has finished whose end the store never got (a run killed between the
    # two): their rows are recorded from the study
    ended: list[Any] = field(default_factory=list)

    def rows(self, trial_row: Callable[..., TrialRow]) -> list[TrialRow]:
        """The store rows of the trials the study knows and the store does not, made by
        `trial_row(number, state, params, started, result, finished)`."""
        now = time.time()
        rows = [trial_row(number, "failed", {}, now, TrialResult(
            "failed", fail_reason="lost", error="the study's journal lost this trial, and the "
                                                "store had not recorded it")) for number in self.lost]
        for t in self.ended:
            result = ended_result(t)
            rows.append(trial_row(
                t.number, result.state, t.params,
                t.datetime_start.timestamp() if t.datetime_start else now, result,
                t.datetime_complete.timestamp() if t.datetime_complete else None))
        return rows


def open_checked(exp: Experiment, storage: str, store: Path, say: Callable[[str], None],
                 file: Path | None = None) -> Opened:
    """The study of `exp`, repaired and checked against the store; StudyMismatch if it is not the
    study the store's trials came from. `say` gets each repair and restore, in words; `file`,
    the experiment file, is named in the way to start afresh."""
    journal = None if "://" in storage else Path(storage)
    notes: list[str] = []
    if journal is not None and needs_repair(journal):
        _repaired(journal, notes)
    known = _known(store, exp.name)
    if journal is not None and not journal.exists():
        if known:
            raise StudyMismatch(_mismatch(exp, file, store, storage, known, "missing"))
        storage_obj = search.open_storage(storage)
    else:
        storage_obj = _readable_storage(storage, journal, notes)
    names = {s.study_name for s in storage_obj.get_all_studies()}
    if known and exp.name not in names:
        held = ", ".join(sorted(names)[:6]) or "no study"
        raise StudyMismatch(_mismatch(exp, file, store, storage, known, f"absent:{held}"))
    study = search.open_study(exp, storage_obj)
    different = _difference(study, known)
    if different:
        raise StudyMismatch(_mismatch(exp, file, store, storage, known, f"other:{different}"))
    opened = Opened(study, notes)
    _restore(study, exp, known, opened)
    if journal is not None:  # one machine, one store: it should have every trial of the study
        _unrecorded(study, known, opened)
    for note in opened.notes:
        say(note)
    return opened


def _repaired(journal: Path, notes: list[str]) -> None:
    done = repair(journal)
    if done is not None:
        notes.append(done.words())


def _readable_storage(storage: str, journal: Path | None, notes: list[str]) -> Any:
    """The storage, opened; a journal Optuna stops reading in the middle is repaired first."""
    try:
        return search.open_storage(storage)
    except JournalDamaged:
        if journal is None:
            raise
        _repaired(journal, notes)
        return search.open_storage(storage)


def _known(store: Path, name: str) -> dict[int, TrialRecord]:
    """The store's trials of the experiment, with what dead runs left in spools taken in."""
    if not store.exists():
        return {}
    wait_until_readable(store)
    flush_orphans(store, wait=5.0)
    return {t.number: t for t in list_trials(store, name)}


# ------------------------------------------------------------------ the same study?


def _difference(study: Any, known: dict[int, TrialRecord]) -> str:
    """How the study's trials contradict the store's ('' when they agree where both know)."""
    trials = study.get_trials(deepcopy=False)
    key = study.user_attrs.get(search.STUDY_KEY)
    for row in known.values():
        found = _KEY.search(row.artifact_dir or "")
        if key and found and found.group(1) != key:
            return (f"its trials' folders are under study-{key}, the store's trial {row.number} "
                    f"is in {found.group(0)}")
    for t in trials:
        same = known.get(t.number)
        if same is None:
            continue
        for name, value in t.params.items():
            if name in same.params and not search.same_value(same.params[name], value):
                return (f"its trial {t.number} has {name} = {value}, the store's trial "
                        f"{t.number} has {same.params[name]}")
        if t.datetime_start and same.started_at and abs(
                t.datetime_start.timestamp() - same.started_at.timestamp()) > SAME_START_S:
            return (f"its trial {t.number} started at {t.datetime_start:%Y-%m-%d %H:%M}, the "
                    f"store's trial {t.number} at {same.started_at.astimezone():%Y-%m-%d %H:%M}")
    if known and not trials and not key:
        return "it has no trial, so nothing shows it is the study the store's trials came from"
    return ""


def _mismatch(exp: Experiment, file: Path | None, store: Path, storage: str,
              known: dict[int, TrialRecord], why: str) -> str:
    """Refused: what the store has, what happened to the study, what to do."""
    states: dict[str, int] = {}
    for row in known.values():
        states[row.state] = states.get(row.state, 0) + 1
    counted = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    numbers = sorted(known)
    span = f"{numbers[0]}–{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    head = f"{store.name} has {len(known)} trials of {exp.name} ({span}: {counted}), but "
    kind, _, detail = why.partition(":")
    named = storage if "://" in storage else Path(storage).name   # a journal lies beside the store
    if kind == "missing":
        # named as the store is (it lies beside it); the way back gives the whole path
        head += (f"its Optuna journal {named} is missing: was it moved or deleted? A new "
                 f"study would number its trials from 0 again, over the finished ones.")
        back = f"put the journal back at {Path(storage).resolve()}"
    elif kind == "absent":
        head += (f"the Optuna storage {named} has no study {exp.name!r} (it holds: {detail}): "
                 "a different journal, or one started again since?")
        back = "put back the journal these trials were run with"
    else:
        head += (f"the study {exp.name!r} in {named} is a different one: {detail}. Its "
                 "trials are not the store's.")
        back = "put back the journal these trials were run with"
    return (f"{head}\nNothing was changed. To go on with the finished trials, {back} and run "
            f"the same command again. To leave them as they are and start afresh, run "
            f"`tunelab run {_shown(file)} --new-study` (a new study beside {exp.name}).")


def _shown(file: Path | None) -> str:
    """The experiment file as the person would type it: from here when it is below here."""
    if file is None:
        return "FILE"
    try:
        return str(file.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


# ------------------------------------------------------------------ restoring what the store knows


_FINISHED = {"complete", "pruned", "failed"}


def _restore(study: Any, exp: Experiment, known: dict[int, TrialRecord], opened: Opened) -> None:
    """Tells the study what the store knows of trials the journal lost: a trial still RUNNING in
    the journal that the store has finished, and trials the journal lost whole."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    told: list[int] = []
    added: list[int] = []
    for t in trials:
        row = known.get(t.number)
        if t.state == optuna.trial.TrialState.RUNNING and row is not None and row.state in _FINISHED:
            _tell(study, exp, t, row)
            told.append(t.number)
        elif t.state.is_finished() and row is not None and row.state == "running" and not (
                _owner_alive(t)):
            opened.ended.append(t)
    for number in range(len(trials), max(known, default=-1) + 1):
        row = known.get(number)
        study.add_trial(_frozen(exp, row))
        (added if row is not None else opened.lost).append(number)
    if told:
        opened.notes.append(f"the study had lost how {_trials(told)} ended: told again from the "
                            "store, which has the end.")
    if added:
        opened.notes.append(f"the study had lost {_trials(added)}: restored from the store, "
                            "which has the results.")
    if opened.lost:
        opened.notes.append(f"{_trials(opened.lost)} had been started, but neither the journal "
                            "nor the store kept more: recorded as failed (lost).")


def _unrecorded(study: Any, known: dict[int, TrialRecord], opened: Opened) -> None:
    """Trials the study finished that the store has no row of (the store was deleted and started
    again): recorded from the study. (Not for a shared RDB study: each machine's store has its
    own trials only.)"""
    missing = [t for t in study.get_trials(deepcopy=False)
               if t.state.is_finished() and t.number not in known and not _owner_alive(t)]
    opened.ended += missing
    if missing:
        opened.notes.append(
            f"the store had no row of {_trials([t.number for t in missing])}, which the study "
            "has finished: recorded from the study (their curves and samples were in the store "
            "that was lost).")


def _owner_alive(trial: Any) -> bool:
    """Whether the run that ran the trial still lives (another run at once): it records the
    trial's row itself, with more than the study knows."""
    attrs = trial.user_attrs
    return attrs.get("host") == socket.gethostname() and running(attrs.get("pid", -1))


def _trials(numbers: list[int]) -> str:
    return f"trial{'s' if len(numbers) > 1 else ''} {', '.join(str(n) for n in numbers)}"


def _tell(study: Any, exp: Experiment, trial: Any, row: TrialRecord) -> None:
    """Tells the study how a trial it lost the end of ended, with any of its parameters it lost
    too (they were set one line each)."""
    import optuna

    space = exp.search.space
    for name, value in row.params.items():
        if name in space and name not in trial.params:
            found = search.distribution(name, space[name])
            study._storage.set_trial_param(trial._trial_id, name, found.to_internal_repr(value),
                                           found)
    number = trial.number
    state = _state(exp, row)
    if state == optuna.trial.TrialState.COMPLETE:
        study.tell(number, row.value, skip_if_finished=True)
    else:
        study.tell(number, state=state, skip_if_finished=True)


def _state(exp: Experiment, row: TrialRecord | None) -> Any:
    """The Optuna state a store row is restored as. A complete trial of several objectives is
    restored as failed: the store keeps its first value only."""
    import optuna

    if row is None or row.state not in _FINISHED:
        return optuna.trial.TrialState.FAIL
    if row.state == "complete":
        if row.value is None or search.is_multi(exp):
            return optuna.trial.TrialState.FAIL
        return optuna.trial.TrialState.COMPLETE
    return optuna.trial.TrialState.PRUNED if row.state == "pruned" else optuna.trial.TrialState.FAIL


def _frozen(exp: Experiment, row: TrialRecord | None) -> Any:
    """A trial of the store as Optuna's FrozenTrial (a placeholder for one neither kept)."""
    import optuna

    state = _state(exp, row)
    space = exp.search.space
    params = {k: v for k, v in (row.params if row else {}).items() if k in space}
    trial = optuna.trial.create_trial(
        state=state, value=row.value if row and state == optuna.trial.TrialState.COMPLETE else None,
        params=params, distributions={k: search.distribution(k, space[k]) for k in params},
        user_attrs={"restored_from_store": True} | (
            {k: v for k, v in row.params.items() if k not in space} if row else {"lost": True}))
    if row is not None and row.started_at is not None:  # as the store has it (see _difference)
        trial.datetime_start = row.started_at.astimezone().replace(tzinfo=None)
    return trial



def ended_result(trial: Any) -> TrialResult:
    """What the study knows of a trial it finished whose end the store never got."""
    import optuna

    if trial.state == optuna.trial.TrialState.COMPLETE:
        return TrialResult("complete", value=trial.value)
    if trial.state == optuna.trial.TrialState.PRUNED:
        return TrialResult("pruned")
    return TrialResult("failed", fail_reason="killed", error="its end was not recorded: the run "
                       "stopped (killed, or the store could not be written: a full disk?) after "
                       "the study recorded it and before the store did")
