"""Blind review end to end: outputs generated from real trained models, blind items, votes
that survive a kill, statistics and the DPO export."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.review import reviews as review

from conftest import tunelab


@pytest.fixture(scope="module")
def reviewed(trained_store: Path) -> tuple[Path, st.ReviewRecord]:
    rows = review.test_prompts(trained_store, "tiny", 12)
    found = review.create(trained_store, "tiny", "tiny", ["base", "best"], rows, "test",
                          max_new_tokens=8)
    return trained_store, found


def test_sides_are_balanced_and_unpredictable() -> None:
    plan = review.schedule(["x", "y"], 2000, seed=1)
    left_x = [left == "x" for _, left, _ in plan]
    assert 0.46 < sum(left_x) / len(left_x) < 0.54
    switches = sum(a != b for a, b in zip(left_x, left_x[1:], strict=False)) / (len(left_x) - 1)
    assert 0.46 < switches < 0.54  # no alternating or blocky pattern to guess from
    assert review.schedule(["x", "y"], 50, seed=2) != review.schedule(["x", "y"], 50, seed=3)


def test_every_pair_of_three_models_gets_a_fair_share() -> None:
    plan = review.schedule(["a", "b", "c"], 300, seed=0)
    pairs = {}
    for _, left, right in plan:
        key = frozenset((left, right))
        pairs[key] = pairs.get(key, 0) + 1
    assert sorted(pairs.values()) == [100, 100, 100]


def test_a_review_has_items_with_recorded_sides_and_swapped_repeats(reviewed) -> None:
    store, found = reviewed
    items = st.review_items(store, found.id)
    assert found.models[0] == "base" and found.models[1].startswith("trial:")
    assert len(items) > 12  # the prompts, and some again with sides swapped
    repeats = [i for i in items if i.repeat_of is not None]
    assert repeats
    for r in repeats:
        original = items[r.repeat_of]
        assert (r.model_a, r.model_b) == (original.model_b, original.model_a)
        assert r.prompt == original.prompt and r.output_a == original.output_b


def _screen_text(app) -> str:
    from textual.widgets import Static

    return "\n".join(str(w.render()) for w in app.screen.query(Static))


async def test_the_screen_shows_no_model_identity_and_undo_leaves_one_vote(reviewed) -> None:
    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.review import ReviewScreen

    store, found = reviewed
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "pilot"))
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = _screen_text(app)
        assert "item 1 of" in text
        for model in found.models:
            assert model not in text
        assert "trial" not in text.lower()
        first = app.screen.current.item
        await pilot.press("a")
        await pilot.press("u")  # undo: the same item is shown again
        assert app.screen.current.item == first
        await pilot.press("b")
        await app.workers.wait_for_complete()
    votes = [v for v in st.review_votes(store, found.id) if v.rater == "pilot"]
    assert [(v.item, v.choice) for v in votes] == [(first, "b")]
    assert len([v for v in st.review_votes(store, found.id, include_undone=True)
                if v.rater == "pilot"]) == 2


def test_a_vote_survives_killing_the_app_right_after_the_key_press(reviewed) -> None:
    store, found = reviewed
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from pathlib import Path
        from tunelab import store as st
        from tunelab.tui.app import TunelabApp
        from tunelab.tui.screens.review import ReviewScreen

        async def main():
            found = st.find_review(Path({str(store)!r}), {found.name!r})
            app = TunelabApp([Path({str(store)!r})],
                             lambda: ReviewScreen(Path({str(store)!r}), found, "killed"))
            async with app.run_test() as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                await pilot.press("x")
                os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    st.flush_orphans(store)
    votes = [v for v in st.review_votes(store, found.id) if v.rater == "killed"]
    assert [v.choice for v in votes] == ["both_bad"]


def test_stats_and_dpo_export_from_the_command_line(reviewed) -> None:
    store, found = reviewed
    items = st.review_items(store, found.id)
    with st.Spool(store, tag="test-votes") as spool:
        spool.write([st.vote_event(found.id, i.item, rater, "a" if i.model_a.startswith("trial")
                                   else "b", 2.0)
                     for i in items for rater in ("ana", "ben")])
    stats = tunelab("review", "stats", found.name, "--store", str(store))
    assert stats.returncode == 0, stats.stderr
    assert "Bradley–Terry" in stats.stdout and "Cohen's κ" in stats.stdout
    assert "Side bias: the left output (A) won" in " ".join(stats.stdout.split())
    header = next(line for line in stats.stdout.splitlines() if "rank" in line and "model" in line)
    assert "group" not in header  # one comparison group: no column that says 1 on every row
    board = st.query(store, "SELECT model_ref, rating, votes, votes_at_fit FROM leaderboard "
                            "WHERE experiment = 'tiny'").rows
    assert board and all(rating is not None and votes == at_fit  # stats saved a current fit
                         for _, rating, votes, at_fit in board)
    out = store.parent / "prefs.jsonl"
    export = tunelab("review", "export", found.name, "--format", "dpo", "--out", str(out),
                     "--store", str(store))
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {"prompt", "chosen", "rejected"} <= rows[0].keys()
    assert "left out" in export.stderr
