"""The words of the statistics, each from a case that misread (issue 25): the CLI and the TUI
say the same thing in the same words, and no sentence claims what the numbers do not show."""

from __future__ import annotations

import io
from pathlib import Path

from review_helpers import vote_for, write_review
from rich.console import Console
from textual.widgets import Static
from tui_pilot import settle
from typer.testing import CliRunner

from tunelab import store as st
from tunelab.engine.review import reviews as review
from tunelab.engine.review import words
from tunelab.engine.review.stats import Vote, ratings
from tunelab.tui.app import TunelabApp
from tunelab.tui.cli import app as cli
from tunelab.tui.screens.review_stats import ReviewStatsScreen


def _printed(store: Path, name: str) -> str:
    result = CliRunner().invoke(cli, ["review", "stats", name, "--store", str(store)])
    assert result.exit_code == 0, result.output
    return result.output


async def _screen(store: Path, name: str) -> str:
    found = st.find_review(store, name)
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, found))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        console = Console(width=78, file=io.StringIO(), record=True)
        for widget in app.screen.query(Static):
            console.print(widget.content)
        return console.export_text()


def _flat(text: str) -> str:
    return " ".join(text.split())


async def test_ties_only_say_no_decisive_votes_not_won_0_of_0(tmp_path: Path) -> None:
    """`left position: won 0 of 0 decisive votes (50%), p = 1.00` with ties only."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 6)
    with st.Spool(store, tag="ties") as spool:
        spool.write([st.vote_event("r1", i, "ana", "tie", 1.0) for i in range(6)])
    for shown in (_printed(store, "r1"), await _screen(store, "r1")):
        said = _flat(shown)
        assert "won 0 of 0" not in said and "p = 1" not in said
        assert "Side bias: no decisive votes yet (ties and skips say nothing about sides)." in said
        assert "intervals overlap" not in said  # there is no interval to overlap


def test_no_sentence_speaks_of_intervals_that_do_not_exist() -> None:
    """`The intervals overlap…` was printed when no interval existed (ties only, one vote)."""
    for spec in ([("A", "B", "tie")] * 4, [("A", "B", "a")]):
        found = ratings([Vote(k, "ana", c, a, b) for k, (a, b, c) in enumerate(spec)],
                        bootstrap=50)
        said = " ".join(words.notes(found))
        assert "intervals overlap" not in said and "Intervals: 95 %" not in said


def _with_repeats(store: Path) -> None:
    """20 items and 10 swapped repeats of the first ten, all voted: 30 votes, 20 verdicts."""
    write_review(store, "r1", 20)
    found = {i.item: i for i in st.review_items(store, "r1")}
    with st.Spool(store, tag="repeats") as spool:
        spool.write([{"table": "review_items", "row": {
            "review_id": "r1", "item": 20 + k, "prompt_id": found[k].prompt_id,
            "prompt": found[k].prompt, "model_a": found[k].model_b, "model_b": found[k].model_a,
            "output_a": found[k].output_b, "output_b": found[k].output_a, "repeat_of": k,
            "created_at": 1.0}} for k in range(10)])
    vote_for(store, "r1", "x", range(15))
    vote_for(store, "r1", "y", range(15, 20))
    vote_for(store, "r1", "x", range(20, 30))


async def test_the_header_counts_the_verdicts_the_statistics_count(tmp_path: Path) -> None:
    """A header `30 votes on 30 items` when 20 verdicts were counted."""
    store = tmp_path / "t.duckdb"
    _with_repeats(store)
    for shown in (_printed(store, "r1"), await _screen(store, "r1")):
        assert "30 votes (20 verdicts counted) on 30 items · ana 30" in _flat(shown)


async def test_the_cli_and_the_screen_word_the_same_tables_alike(tmp_path: Path) -> None:
    """`0.94`/`94%`, `win/loss`/`won/lost`, `left position`/`Side bias`, and the CLI listed each
    pair twice."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    vote_for(store, "r1", "x", range(20))
    vote_for(store, "r1", "y", range(20, 24))
    printed, screen = _printed(store, "r1"), await _screen(store, "r1")
    for shown in (printed, screen):
        said = _flat(shown)
        assert all(column in said for column in ("won", "tie", "lost", "win rate"))
        assert "83 %" in said and "0.83" not in said and "83%" not in said
        assert "Side bias: the left output (A) won" in said and "left position" not in said
    table_rows = [line.split() for line in printed.splitlines() if line.count("│") > 3]
    pairs = [row for row in table_rows if row[1:4] in (["x", "│", "y"], ["y", "│", "x"])]
    assert len(pairs) == 1, printed  # each pair once, from the side that won more
    for line in words.notes(review.stats(store, "r1").ratings):  # word for word in both
        assert _flat(line) in _flat(printed) and _flat(line) in _flat(screen)
