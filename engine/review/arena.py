"""Arena chat: two hidden models answer the same messages side by side, and the person votes
after each turn. An arena is a review of kind `arena`: each turn is a `review_items` row (the
message as shown, both replies, which model was on which side) and each verdict a `votes` row,
so arena votes count in `tunelab review stats` and in the `leaderboard` view with the rest.

Which model is A (left) is drawn once per arena and kept for all its turns: each side is one
continuing conversation, so it cannot change hands mid-way. Every item records the sides.
Events are fsynced to the caller's spool before these functions return (a killed app loses
nothing); moving the spool into the store (`Spool.ingest`) is left to the caller, off the UI
thread.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tunelab.engine.errors import TrainError
from tunelab.engine.refs import ModelRef
from tunelab.engine.review.votes import CHOICE_WORDS
from tunelab.store import ReviewItemRow, ReviewRow, Row, Spool, vote_row

CHOICES = tuple(CHOICE_WORDS)  # those of the review


@dataclass(frozen=True)
class Arena:
    id: str
    name: str  # for `tunelab review stats NAME`
    experiment: str
    models: tuple[str, str]  # as asked for (best resolved to trial:N)
    left: str  # shown as A
    right: str  # shown as B
    created_at: float


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]  # as review items' prompt_id


def refs_of(text: str) -> tuple[str, str]:
    """`best,base` → ("best", "base"); a bare number N means trial:N."""
    refs = [r.strip() for r in text.split(",") if r.strip()]
    if len(refs) != 2:
        raise TrainError(f"--arena {text!r}: give two models, e.g. --arena best,base",
                         "arena")
    a, b = (str(ModelRef.parse(r)) for r in refs)
    return a, b


def resolve_pair(store: Path, experiment: str, refs: tuple[str, str]) -> tuple[str, str]:
    """The two refs with `best` resolved; refused when both name the same model."""
    from tunelab.engine.serve.refs import resolve

    found = tuple(resolve(store, experiment, r).ref for r in refs)
    if found[0] == found[1]:
        raise TrainError(f"{refs[0]} and {refs[1]} are the same model ({found[0]}); "
                         "an arena compares two different models", "arena")
    return found[0], found[1]


def new(experiment: str, models: tuple[str, str], rng: random.Random | None = None) -> Arena:
    """A new arena (nothing written yet: the review is stored with its first turn). Which
    model is A is a coin flip."""
    rng = rng or random.SystemRandom()
    left, right = models if rng.random() < 0.5 else (models[1], models[0])
    arena_id = uuid.uuid4().hex
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(now))
    return Arena(arena_id, f"arena-{experiment}-{stamp}-{arena_id[:4]}", experiment, models,
                 left, right, now)


def record_turn(spool: Spool, arena: Arena, turn: int, prompt: str, output_a: str,
                output_b: str) -> None:
    """Stores one turn as a review item (with the review itself on the first turn)."""
    now = time.time()
    events: list[Row] = []
    if turn == 0:
        events.append(ReviewRow(
            id=arena.id, experiment=arena.experiment, name=arena.name,
            models=json.dumps(list(arena.models)), prompt_set="arena", status="open",
            kind="arena", created_at=arena.created_at, updated_at=now))
    events.append(ReviewItemRow(
        review_id=arena.id, item=turn, prompt_id=_id(prompt), prompt=prompt,
        model_a=arena.left, model_b=arena.right, output_a=output_a,
        output_b=output_b, repeat_of=None, created_at=now))
    spool.write(events, ingest=False)


def record_vote(spool: Spool, arena: Arena, turn: int, rater: str, choice: str,
                seconds: float | None, vote_id: str | None = None, undone: bool = False) -> str:
    """Stores the verdict on a turn; returns the vote's id. With the id of an earlier vote and
    `undone`, takes that vote back (the row stays, marked undone, as in the review)."""
    if choice not in CHOICES:
        raise TrainError(f"{choice!r}: a vote is one of {', '.join(CHOICES)}", "arena")
    vote = vote_row(arena.id, turn, rater, choice, seconds, vote_id=vote_id, undone=undone)
    spool.write([vote], ingest=False)
    return vote.id
