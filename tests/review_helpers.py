"""A review written into a fresh store the way `review.create` writes it (through a spool), and
votes on it: for tests of the statistics that need no generated outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tunelab import store as st


def write_review(store: Path, review_id: str, items: int, kind: str = "review",
                 models: tuple[str, str] = ("x", "y")) -> None:
    """A review of experiment 'ab' as `review.create` writes it (sides alternate here)."""
    now = time.time()
    x, y = models
    events = [{"table": "reviews", "row": {
        "id": review_id, "experiment": "ab", "name": review_id, "models": json.dumps([x, y]),
        "prompt_set": "test", "status": "open", "kind": kind, "created_at": now,
        "updated_at": now}}]
    events += [{"table": "review_items", "row": {
        "review_id": review_id, "item": i, "prompt_id": str(i), "prompt": f"p{i}",
        "model_a": x if i % 2 else y, "model_b": y if i % 2 else x, "output_a": "one",
        "output_b": "two", "repeat_of": None, "created_at": now}} for i in range(items)]
    with st.Spool(store, tag="test") as spool:
        spool.write(events)


def vote_for(store: Path, review_id: str, winner: str, items: range, rater: str = "ana") -> None:
    """`winner` wins each item: A when it is on the left, B when it is on the right."""
    found = {i.item: i for i in st.review_items(store, review_id)}
    with st.Spool(store, tag="test-votes") as spool:
        spool.write([st.vote_event(review_id, i, rater, "a" if found[i].model_a == winner else "b",
                                   1.0) for i in items])


def leaderboard(store: Path) -> dict[str, dict]:
    result = st.query(store, "SELECT * FROM leaderboard WHERE experiment = 'ab'")
    return {row[1]: dict(zip(result.columns, row, strict=True)) for row in result.rows}
