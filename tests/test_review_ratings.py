"""Bradley–Terry ratings written to the store: per review and pooled over the experiment, shown
by the `leaderboard` view; and the clear errors of a review made from bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from review_helpers import leaderboard, vote_for, write_review

from tunelab import store as st
from tunelab.engine.review import reviews as review
from tunelab.store.errors import TunelabError


def test_stats_write_ratings_that_the_leaderboard_shows_until_new_votes(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 30)
    vote_for(store, "r1", "x", range(0, 15))
    vote_for(store, "r1", "y", range(15, 20))
    assert leaderboard(store)["x"]["rating"] is None  # nothing fitted yet

    s = review.stats(store, "r1", bootstrap=200)
    board = leaderboard(store)
    for model in ("x", "y"):
        row = board[model]
        assert row["rating_low"] < row["rating"] < row["rating_high"]
        assert row["votes_at_fit"] == row["votes"] == 20
    assert board["x"]["rating"] > 1000 > board["y"]["rating"]
    assert board["x"]["rank"] == 1
    assert [r.model for r in s.ratings] == ["x", "y"]
    assert board["x"]["rating"] == pytest.approx(s.ratings[0].rating)

    vote_for(store, "r1", "y", range(20, 25))  # newer votes: the fit is behind
    board = leaderboard(store)
    assert board["x"]["votes"] == 25 and board["x"]["votes_at_fit"] == 20

    review.fit_ratings(store, "ab", bootstrap=200)
    assert leaderboard(store)["x"]["votes_at_fit"] == 25


def test_each_review_is_fitted_alone_and_all_reviews_and_arenas_pooled(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 10)
    write_review(store, "arena1", 6, kind="arena", models=("y", "z"))
    vote_for(store, "r1", "x", range(10))
    vote_for(store, "arena1", "z", range(6))
    fitted = review.fit_ratings(store, "ab", bootstrap=100)
    assert {r.model: r.votes for r in fitted["r1"]} == {"x": 10, "y": 10}
    assert {r.model: r.votes for r in fitted["arena1"]} == {"y": 6, "z": 6}
    assert {r.model: r.votes for r in fitted["all"]} == {"x": 10, "y": 16, "z": 6}
    rows = st.query(store, "SELECT scope, model_ref, votes FROM review_ratings "
                           "ORDER BY scope, model_ref").rows
    assert rows == [("all", "x", 10), ("all", "y", 16), ("all", "z", 6),
                    ("arena1", "y", 6), ("arena1", "z", 6), ("r1", "x", 10), ("r1", "y", 10)]
    assert [m for m, *_ in st.query(store, "SELECT model_ref FROM leaderboard").rows][0] == "x"


def test_a_prompt_file_without_prompts_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "2+2="}\n{"question": "3+3="}\n')
    with pytest.raises(TunelabError, match=r"prompts.jsonl:2: no \"prompt\""):
        review.file_prompts(bad, 10)
    bad.write_text("2+2=\n")
    with pytest.raises(TunelabError, match="not JSON"):
        review.file_prompts(bad, 10)
    with pytest.raises(TunelabError, match="cannot read"):
        review.file_prompts(tmp_path / "missing.jsonl", 10)
    bad.write_text("\n")
    with pytest.raises(TunelabError, match="no prompts found"):
        review.prompts_for(tmp_path / "t.duckdb", "ab", str(bad), 10)


def test_best_and_its_own_trial_are_one_model_not_two(trained_store: Path) -> None:
    rows = [{"prompt": "1+1="}]
    with pytest.raises(TunelabError, match="at least two different models; got 1"):
        review.create(trained_store, "tiny", "one-model", ["best", "trial:0"], rows, "test")
    with pytest.raises(TunelabError, match="no complete trial 7"):
        review.create(trained_store, "tiny", "no-trial", ["base", "trial:7"], rows, "test")


def test_the_leaderboard_shows_no_point_where_the_votes_give_only_a_bound(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 12)
    vote_for(store, "r1", "x", range(12))  # x won every vote: no finite rating either side
    s = review.stats(store, "r1", bootstrap=100)
    assert [r.interval() for r in s.ratings] == ["won every vote", "lost every vote"]
    board = leaderboard(store)  # a bound: 12 of 12 puts x at least 200 points above y
    assert board["x"]["rating"] == board["x"]["rating_low"] == pytest.approx(1100, abs=5)
    assert board["y"]["rating"] == board["y"]["rating_high"] == pytest.approx(900, abs=5)
    assert board["x"]["rating_high"] is None and board["y"]["rating_low"] is None
    assert board["x"]["rank"] == 1 and board["y"]["rank"] == 2  # 12 of 12 separates them
