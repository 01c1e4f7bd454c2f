"""Reviews in the store: typed reads of reviews, their items and votes, and the events that
write them (votes are spooled first, like everything else: a vote survives a killed app)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tunelab.store import connection
from tunelab.store.rows import VoteRow


@dataclass(frozen=True)
class ReviewRecord:
    id: str
    experiment: str
    name: str
    models: list[str]
    prompt_set: str | None
    status: str | None
    kind: str = "review"  # review | arena (votes given turn by turn in an arena chat)
    created_at: float | None = None  # which of several stores' reviews is the newest


@dataclass(frozen=True)
class ReviewItem:
    review_id: str
    item: int
    prompt_id: str | None
    prompt: str
    model_a: str  # left, hidden from the rater until the vote is in
    model_b: str
    output_a: str
    output_b: str
    repeat_of: int | None
    messages: list[dict] | None = None  # the turns before the answers, for a conversation


@dataclass(frozen=True)
class VoteRecord:
    id: str
    review_id: str
    item: int
    rater: str
    choice: str
    seconds: float | None
    undone: bool


@dataclass(frozen=True)
class Judgement:
    """One order of an LLM judge's verdict on an item (the `judgements` table)."""

    item: int
    rater: str  # judge:NAME
    shown: str  # as shown | swapped
    verdict: str | None  # a | b | tie in the item's own sides; None: the answer said none
    answer: str | None


_REVIEW_COLUMNS = ("id, experiment, name, models, prompt_set, status, coalesce(kind, 'review'), "
                   "created_at")


def _review(row: tuple) -> ReviewRecord:
    return ReviewRecord(row[0], row[1], row[2], json.loads(row[3] or "[]"), row[4], row[5], row[6],
                        row[7])


def find_review(store: str | Path, name: str) -> ReviewRecord | None:
    """A review by its name or id (the newest of that name)."""
    with connection.reading(store) as con:
        row = con.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM reviews "
            "WHERE name = ? OR id = ? ORDER BY created_at DESC LIMIT 1", [name, name]).fetchone()
    return None if row is None else _review(row)


def list_reviews(store: str | Path) -> list[ReviewRecord]:
    with connection.reading(store) as con:
        rows = con.execute(f"SELECT {_REVIEW_COLUMNS} FROM reviews "
                           "ORDER BY created_at DESC").fetchall()
    return [_review(r) for r in rows]


def review_items(store: str | Path, review_id: str) -> list[ReviewItem]:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT review_id, item, prompt_id, prompt, model_a, model_b, output_a, output_b, "
            "repeat_of, messages FROM review_items WHERE review_id = ? ORDER BY item",
            [review_id]).fetchall()
    return [ReviewItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                       json.loads(r[9]) if r[9] else None) for r in rows]


def review_votes(store: str | Path, review_id: str, include_undone: bool = False) -> list[VoteRecord]:
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT id, review_id, item, rater, choice, seconds, coalesce(undone, false) FROM votes "
            "WHERE review_id = ? ORDER BY created_at", [review_id]).fetchall()
    votes = [VoteRecord(*r) for r in rows]
    return votes if include_undone else [v for v in votes if not v.undone]


def judgements(store: str | Path, review_id: str) -> list[Judgement]:
    """Every LLM judge's verdicts on the review's items, in both orders."""
    with connection.reading(store) as con:
        rows = con.execute(
            "SELECT item, rater, shown, verdict, answer FROM judgements WHERE review_id = ? "
            "ORDER BY rater, item, shown", [review_id]).fetchall()
    return [Judgement(*r) for r in rows]


def vote_row(review_id: str, item: int, rater: str, choice: str, seconds: float | None,
             vote_id: str | None = None, undone: bool = False, comment: str | None = None
             ) -> VoteRow:
    """A vote (a new one, or with the id of an earlier vote its undo or comment)."""
    now = time.time()
    return VoteRow(id=vote_id or uuid.uuid4().hex, review_id=review_id, item=item, rater=rater,
                   choice=choice, seconds=seconds, undone=undone, comment=comment,
                   created_at=now, updated_at=now)


def vote_event(review_id: str, item: int, rater: str, choice: str, seconds: float | None,
               vote_id: str | None = None, undone: bool = False) -> dict:
    """`vote_row(…).event()`, for callers that spool plain events."""
    return vote_row(review_id, item, rater, choice, seconds, vote_id, undone).event()


def waiting_models(store: str | Path, experiment: str) -> set[str]:
    """The models a preference sweep waits on: its trials in the `voting` state, as refs
    (`trial:N`). Their review items come first in every rater's order."""
    with connection.reading(store) as con:
        rows = con.execute("SELECT number FROM trials WHERE experiment = ? AND state = 'voting'",
                           [experiment]).fetchall()
    return {f"trial:{r[0]}" for r in rows}
