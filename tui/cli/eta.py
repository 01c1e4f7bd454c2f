"""How long a sweep has left, from what its trials took so far.

A pruned trial stops at its first evaluations, so where a pruner acts the durations split in
two: the trials it lets finish and the many it stops early. The trial a new one resembles is
one that ran once pruning had begun, so once a trial was pruned only the trials since (the
pruned and the finished alike) make the estimate; before any was pruned, a sweep that may
prune says its estimate is a bound (`≤ 3m30s`: every trial left running to its end). Before
any trial ended, the first trial's own progress (epochs done in the time since its training
began) estimates a whole trial. Trials waiting for votes take no more training: when nothing
else is left, the time is the rater's, and no estimate is given.

`Eta` follows the events (under the reporter's lock); `snapshot()` freezes what an estimate
needs, so a live display can count down from it on its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Running:
    started: float
    epochs: int
    training_since: float | None = None  # when its training began (after loading, tokenizing)
    epochs_done: float = 0.0


@dataclass(frozen=True)
class Estimate:
    seconds: float
    bound: bool  # at most this long (a pruner may stop trials early); else about this long


@dataclass(frozen=True)
class Snapshot:
    """What an estimate needs, frozen at the last event."""

    running: tuple[_Running, ...]
    not_started: int
    voting: int
    per_trial: float | None  # the expected duration of a trial, when anything ended yet
    bound: bool
    workers: int

    def remaining(self, now: float) -> Estimate | None:
        """The time left; None before there is anything to go on, or when only votes remain."""
        per_trial = self.per_trial
        if per_trial is None:  # no trial ended: the first one's progress says how long one takes
            whole = [_whole(r, now) for r in self.running]
            known = [w for w in whole if w is not None]
            if not known:
                return None
            per_trial = sum(known) / len(known)
        if not self.running and not self.not_started:
            return None
        left = sum(_left(r, per_trial, now) for r in self.running) + self.not_started * per_trial
        return Estimate(left / max(1, self.workers), self.bound)


def _whole(r: _Running, now: float) -> float | None:
    """A trial's whole duration, from its own progress (None before its first logged step)."""
    if r.training_since is None or r.epochs_done <= 0:
        return None
    training = (now - r.training_since) * r.epochs / r.epochs_done
    return (r.training_since - r.started) + training


def _left(r: _Running, per_trial: float, now: float) -> float:
    """A running trial's time left: what a trial takes, less what it ran; a trial that ran
    longer than that was not stopped early, so its own progress says."""
    elapsed = now - r.started
    if elapsed < per_trial:
        return per_trial - elapsed
    whole = _whole(r, now)
    return max(0.0, whole - elapsed) if whole is not None else 0.0


@dataclass
class Eta:
    target: int  # finished trials the study asks for
    finished: int  # complete or pruned (a placed trial of a preference sweep is complete)
    workers: int = 1
    pruning: bool = False
    now: Callable[[], float] = time.monotonic
    voting: int = 0  # trained, waiting for votes
    running: dict[int, _Running] = field(default_factory=dict)
    ended: list[tuple[str, float]] = field(default_factory=list)  # (state, seconds), in order

    def start(self, number: int, epochs: int) -> None:
        self.running[number] = _Running(self.now(), max(1, epochs))

    def progress(self, number: int, kind: str, epoch: float | None) -> None:
        r = self.running.get(number)
        if r is None:
            return
        if kind == "start" or (r.training_since is None and kind in ("log", "eval")):
            r.training_since = self.now()
        if epoch is not None and kind in ("log", "eval"):
            r.epochs_done = max(r.epochs_done, float(epoch))

    def end(self, number: int, state: str, seconds: float) -> None:
        self.running.pop(number, None)
        if state in ("complete", "pruned", "voting"):
            self.ended.append((state, seconds))  # a failed trial says nothing of the next ones
        if state in ("complete", "pruned"):
            self.finished += 1
        elif state == "voting":
            self.voting += 1

    def placed(self) -> None:
        """A trial that waited for votes was placed by them: it is finished."""
        self.voting = max(0, self.voting - 1)
        self.finished += 1

    def snapshot(self) -> Snapshot:
        pruned_at = next((i for i, (state, _) in enumerate(self.ended) if state == "pruned"), None)
        sample = [s for _, s in self.ended[pruned_at or 0:]]
        running = tuple(_Running(r.started, r.epochs, r.training_since, r.epochs_done)
                        for r in self.running.values())
        left = self.target - self.finished - self.voting - len(running)
        return Snapshot(running, max(0, left), self.voting, sum(sample) / len(sample) if sample else None,
                        self.pruning and pruned_at is None, self.workers)
