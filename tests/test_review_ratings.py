"""Bradley–Terry ratings written to the store: per review and pooled over the experiment, shown
by the `leaderboard` view; and the clear errors of a review made from bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from review_helpers import leaderboard, vote_for, write_review

from tunelab import store as st
from tunelab.engine.review import reviews as review
from tunelab.engine.review import words
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
    assert str(board["x"]["rating"]) == words.rating_text(s.ratings[0])  # one number, one text
    assert board["x"]["rating_is"] == "fitted" and board["x"]["ties_setting"] == "half"

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
    assert [r.interval() for r in s.ratings] == ["no upper bound", "no lower bound"]
    board = leaderboard(store)  # a bound: 12 of 12 puts x at least 200 points above y
    assert board["x"]["rating"] == board["x"]["rating_low"] == 1099
    assert board["y"]["rating"] == board["y"]["rating_high"] == 901
    assert (board["x"]["rating_is"], board["y"]["rating_is"]) == ("at least", "at most")
    assert board["x"]["rating_high"] is None and board["y"]["rating_low"] is None
    assert board["x"]["rank"] == 1 and board["y"]["rank"] == 2  # 12 of 12 separates them


def _with_repeats(store: Path) -> None:
    """Issue 25's count: 21 items of x vs y (x won 15, lost 6) and 9 swapped repeats of items
    x won, judged alike 7 times and the other way twice: 30 votes, 22–8 when every vote counts,
    21 verdicts when a repeat folds into its original (a disagreement is a tie)."""
    write_review(store, "r1", 21)
    found = {i.item: i for i in st.review_items(store, "r1")}
    won = [i for i in range(21)][:15]
    repeats = []
    for k, original in enumerate(won[:9]):
        item = found[original]
        repeats.append({"table": "review_items", "row": {
            "review_id": "r1", "item": 21 + k, "prompt_id": item.prompt_id, "prompt": item.prompt,
            "model_a": item.model_b, "model_b": item.model_a, "output_a": item.output_b,
            "output_b": item.output_a, "repeat_of": original, "created_at": 1.0}})
    with st.Spool(store, tag="repeats") as spool:
        spool.write(repeats)
    vote_for(store, "r1", "x", range(15))
    vote_for(store, "r1", "y", range(15, 21))
    vote_for(store, "r1", "x", range(21, 28))  # the repeat agrees
    vote_for(store, "r1", "y", range(28, 30))  # the repeat disagrees: a tie


def test_the_leaderboard_counts_verdicts_as_review_stats_does(tmp_path: Path) -> None:
    """Issue 25: the view counted swapped repeats as extra votes, 22–8 and win rate 0.733,
    where `review stats` counts 21 verdicts."""
    store = tmp_path / "t.duckdb"
    _with_repeats(store)
    board = leaderboard(store)["x"]
    assert (board["votes"], board["wins"], board["losses"], board["ties"]) == (21, 13, 6, 2)
    assert board["win_rate"] == pytest.approx(14 / 21)
    s = review.stats(store, "r1", bootstrap=100)
    assert s.votes == 30 and s.verdicts == 21
    (pair,) = [p for p in s.pairs if p.model == "x"]
    assert (pair.wins, pair.ties, pair.losses) == (13, 2, 6)
    assert pair.win_rate == pytest.approx(leaderboard(store)["x"]["win_rate"])
    assert leaderboard(store)["x"]["votes_at_fit"] == 21


def test_the_leaderboard_counts_ties_as_the_fit_it_shows_did(tmp_path: Path) -> None:
    """Issue 25: after `--ties ignore` the view showed the ignore fit's rating next to a win
    rate that counted ties as half."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 20)
    vote_for(store, "r1", "x", range(9))
    vote_for(store, "r1", "y", range(9, 12))
    with st.Spool(store, tag="ties") as spool:
        spool.write([st.vote_event("r1", i, "ana", "tie", 1.0) for i in range(12, 20)])
    review.stats(store, "r1", bootstrap=100, ties="ignore")
    board = leaderboard(store)["x"]
    assert board["ties_setting"] == "ignore"
    assert (board["votes"], board["wins"], board["losses"], board["ties"]) == (12, 9, 3, 8)
    assert board["win_rate"] == pytest.approx(9 / 12)
    assert board["votes_at_fit"] == board["votes"]
    review.stats(store, "r1", bootstrap=100)  # ties count half again
    board = leaderboard(store)["x"]
    assert board["ties_setting"] == "half" and board["votes"] == 20
    assert board["win_rate"] == pytest.approx(13 / 20)


def test_the_leaderboard_never_sorts_a_bound_as_a_rating(tmp_path: Path) -> None:
    """Issue 25: after one vote A>B the view put B (1116.9) above A (883.1)."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 4, models=("A", "B"))
    vote_for(store, "r1", "A", range(1))
    review.stats(store, "r1", bootstrap=100)
    rows = st.query(store, "SELECT model_ref, rating, rating_is, rank, rank_worst FROM "
                           "leaderboard WHERE experiment = 'ab'").rows
    assert rows == [("A", None, "no bound", 1, 2), ("B", None, "no bound", 1, 2)]
