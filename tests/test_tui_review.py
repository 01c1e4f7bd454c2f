"""The review's statistics screen and the new-review dialog, driven with Textual's Pilot at
80×24 on real stores (the dialog generates with the tiny trained model)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from review_helpers import leaderboard, vote_for, write_review
from rich.console import Console
from textual.widgets import Input, SelectionList, Static
from tui_pilot import screen_text, settle

from tunelab import store as st
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.review import ReviewScreen
from tunelab.tui.screens.review_new import NewReviewDialog
from tunelab.tui.screens.review_stats import ReviewStatsScreen
from tunelab.tui.screens.trials import TrialsScreen

from conftest import tunelab


async def test_the_stats_screen_shows_ratings_with_bars_pairs_and_raters(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    vote_for(store, "r1", "x", range(0, 18))
    vote_for(store, "r1", "y", range(18, 24))
    vote_for(store, "r1", "x", range(0, 10), rater="ben")
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, st.find_review(store, "r1")))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ReviewStatsScreen)
        text = screen_text(app.screen)
        assert "34 votes on 24 items · ana 24, ben 10" in text
        rating_rows = [line for line in text.splitlines() if line.split()[:2] in (["1", "x"],
                                                                                 ["2", "y"])]
        assert len(rating_rows) == 2 and all("●" in row and "├" in row for row in rating_rows)
        assert ["x", "y", "28", "0", "6", "82", "%", "66", "%–92", "%"] in [
            line.split() for line in text.splitlines()]  # the pair, once
        assert "ana × ben: Cohen's κ" in text and "on 10 shared items" in text
        assert "Side bias: the left output (A) won" in text and "⚠" not in text
        await pilot.press("q")
    board = leaderboard(store)  # opening the screen saved the ratings
    assert board["x"]["rating_low"] < board["x"]["rating"] < board["x"]["rating_high"]
    assert board["x"]["votes_at_fit"] == board["x"]["votes"] == 34


async def test_a_side_bias_is_said_in_plain_words(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 20)
    with st.Spool(store, tag="left") as spool:
        spool.write([st.vote_event("r1", i, "ana", "a", 1.0) for i in range(20)])
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, st.find_review(store, "r1")))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = " ".join(screen_text(app.screen).split())
        assert "won 20 of 20 decisive votes (100 %)" in text
        assert "⚠ More left (A) wins than chance allows" in text


async def test_votes_then_i_shows_them_and_leaving_saves_the_ratings(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 6)
    app = TunelabApp([store], lambda: ReviewScreen(store, st.find_review(store, "r1"), "pilot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a", "b", "t")
        await pilot.press("V")  # the votes just cast are counted
        await settle(pilot)
        assert isinstance(app.screen, ReviewStatsScreen)
        assert "3 votes on 6 items · pilot 3" in screen_text(app.screen)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("x")  # a fourth vote, after the last fit
        await pilot.press("q")
        await settle(pilot)
    board = leaderboard(store)
    assert board["x"]["votes"] == board["x"]["votes_at_fit"] == 4


async def _open_dialog(pilot) -> NewReviewDialog:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, TrialsScreen)
    await pilot.press("n")
    await settle(pilot)
    assert isinstance(pilot.app.screen, NewReviewDialog)
    return pilot.app.screen


async def test_a_review_made_in_the_tui_is_generated_then_opens_for_votes(
        trained_store: Path) -> None:
    name = f"tui-{uuid.uuid4().hex[:6]}"
    app = TunelabApp([trained_store])
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _open_dialog(pilot)
        assert sorted(dialog.query_one(SelectionList).selected) == ["base", "trial:0"]
        dialog.query_one("#new-n", Input).value = "2"
        dialog.query_one("#new-name", Input).value = name
        await pilot.click("#new-create")  # on screen at 80×24
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen), screen_text(app.screen)
        assert app.screen.review.name == name
        assert "item 1 of" in screen_text(app.screen)
    found = st.find_review(trained_store, name)
    assert found is not None and found.models == ["base", "trial:0"]
    items = st.review_items(trained_store, found.id)
    assert {i.prompt for i in items} and len({i.prompt for i in items}) == 2
    assert all(i.output_a is not None and i.output_b is not None for i in items)


async def test_bad_input_in_the_dialog_is_said_and_nothing_typed_is_lost(
        trained_store: Path, tmp_path: Path) -> None:
    empty = tmp_path / "questions.jsonl"
    empty.write_text('{"question": "2+2="}\n')
    app = TunelabApp([trained_store])
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _open_dialog(pilot)
        status = dialog.query_one("#new-status", Static)
        dialog.query_one(SelectionList).deselect("base")
        await pilot.click("#new-create")
        assert "at least two models" in str(status.content)
        dialog.query_one(SelectionList).select("base")
        prompts = dialog.query_one("#new-prompts", Input)
        prompts.value = str(empty)
        prompts.focus()
        await pilot.press("enter")  # Enter in a box creates too
        await settle(pilot)
        assert app.screen is dialog
        assert "no prompts" in str(status.content) and 'no "prompt"' in str(status.content)
        assert dialog.query_one("#new-prompts", Input).value == str(empty)
        assert not dialog.query_one("#new-create").disabled  # can be corrected and tried again
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TrialsScreen)


async def test_the_dialog_shows_ticks_in_the_glyph_not_the_colour_only(tmp_path: Path) -> None:
    from textual.app import App

    from tunelab.tui.screens.review_new import ModelList

    choices = [("base", "base        the model before fine-tuning"),
               ("trial:0", "trial:0     full"), ("trial:1", "trial:1     lora")]
    app = App()
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(NewReviewDialog(tmp_path / "t.duckdb", "ab", choices, {"base"}, set()))
        await pilot.pause()
        models = app.screen.query_one(ModelList)

        def rows() -> list[str]:
            return [models.render_line(y).text.rstrip() for y in range(3)]

        assert [r[:11] for r in rows()] == ["[x] base   ", "[ ] trial:0", "[ ] trial:1"]
        await pilot.press("down", "space")  # tick trial:0
        await pilot.pause()
        assert [r[:3] for r in rows()] == ["[x]", "[x]", "[ ]"]
        assert "▐" not in "".join(rows())


async def test_the_screen_and_review_stats_say_the_same_about_a_rating_that_is_a_bound(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunelab.engine.review import reviews as review
    from tunelab.engine.review import words
    from tunelab.tui.cli import app as cli

    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 12)
    vote_for(store, "r1", "x", range(12))  # x won every vote: no finite rating
    said = words.notes(review.stats(store, "r1", bootstrap=100).ratings)
    assert "x lost every vote" not in " ".join(said)
    assert any(line.startswith("x won every vote that links it to y: only a lower bound, from "
                               "the 12 votes") for line in said)
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, found))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = " ".join(screen_text(app.screen).split())
    printed = CliRunner().invoke(cli, ["review", "stats", "r1", "--store", str(store)])
    assert printed.exit_code == 0, printed.output
    cli_text = " ".join(printed.output.split())
    for line in said:  # word for word, wherever the lines wrap
        assert " ".join(line.split()) in text and " ".join(line.split()) in cli_text
    for shown in (text, cli_text):
        assert "no upper bound" in shown and "no lower bound" in shown and "≥ 1099" in shown
        assert "ties and both-bad count half a win each" in shown
    ignored = CliRunner().invoke(cli, ["review", "stats", "r1", "--ties", "ignore", "--store",
                                       str(store)])
    assert ignored.exit_code == 0 and "ties and both-bad left out" in ignored.output
    bad = tunelab("review", "stats", "r1", "--ties", "some", "--store", str(store))
    assert bad.returncode != 0 and "ties = 'some'" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


async def test_the_voting_screen_says_what_is_left_to_separate(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    vote_for(store, "r1", "x", range(3))  # three votes: not ranked apart yet
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "pilot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "x–y closest: ~1 more vote to rank apart" in screen_text(app.screen)
    vote_for(store, "r1", "x", range(3, 18))  # 18 of 18: x is above y at 95 %
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "pilot", "random"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app.screen)
        assert "ranks settled: every neighbouring pair is ranked apart; you may stop (q)" in text
        status = str(app.screen.query_one("#status", Static).content)
        assert len(status) <= 78  # the whole sentence on one line at 80 columns
        assert app.screen.current.item == 0  # random: the review's own order


async def test_undo_names_the_item_as_the_progress_line_numbered_it(tmp_path: Path) -> None:
    """Issue 25: on item 3, `u` printed `undone: … on item 2`; on item 17, `… on item 21` (the
    item's place in the review, not the number the rater saw)."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "pilot", "random"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        for _ in range(16):
            await pilot.press("a")
        await settle(pilot)
        assert "item 17 of 24" in screen_text(screen)
        await pilot.press("u")
        await settle(pilot)
        said = [n.message for n in app._notifications]
        assert said[-1] == "undone: A is better on item 16 of 24; it is shown again"
        assert "item 16 of 24" in screen_text(screen)


async def test_the_voting_screen_never_says_stop_while_the_sweep_waits(tmp_path: Path) -> None:
    """Issue 25: `ranks settled … you may stop (q)` at item 5 of 24, while the run printed
    `trial 1 waits for votes: 8 items against trial:0`."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24, models=("trial:0", "base"))
    with st.Spool(store, tag="sweep") as spool:  # trial 1 trained and waits for votes
        spool.write([st.TrialRow(experiment="ab", number=1, state="voting", method_kind="full",
                                 started_at=1.0, updated_at=1.0)])
        spool.write([{"table": "review_items", "row": {
            "review_id": "r1", "item": 24 + k, "prompt_id": f"q{k}", "prompt": f"q{k}",
            "model_a": "trial:1", "model_b": "trial:0", "output_a": "one", "output_b": "two",
            "created_at": 1.0}} for k in range(8)])
    vote_for(store, "r1", "trial:0", range(12))  # trial:0 above base: ranked apart
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "pilot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        text = screen_text(screen)
        assert "you may stop" not in text and "ranks settled" not in text
        assert "the sweep waits on your votes for trial:1 (8 items): keep voting" in text
        assert "trial:1" in {screen.current.model_a, screen.current.model_b}


def rendered(widget: Static) -> list[str]:  # noqa: ANN001
    """A Static's lines as Textual draws them at the widget's width."""
    console = Console(width=widget.size.width, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text().splitlines()


def _sweep_review(store: Path) -> st.ReviewRecord:
    """The votes of issue 25's preference sweep, seen in tmux: trial:1 beat trial:0 8–0 and
    trial:3 6–0, tied trial:2 eight times; trial:0 beat the base 5–3."""
    spec = ([("trial:1", "trial:0", "a")] * 8 + [("trial:1", "trial:2", "tie")] * 8
            + [("trial:3", "trial:1", "b")] * 6 + [("trial:0", "base", "a")] * 5
            + [("base", "trial:0", "a")] * 3)
    now = 1.0
    events: list[dict] = [{"table": "reviews", "row": {
        "id": "taste", "experiment": "ab", "name": "taste", "models": "[]", "prompt_set": "test",
        "status": "open", "kind": "review", "created_at": now, "updated_at": now}}]
    for k, (left, right, choice) in enumerate(spec):
        events.append({"table": "review_items", "row": {
            "review_id": "taste", "item": k, "prompt_id": str(k), "prompt": f"p{k}",
            "model_a": left, "model_b": right, "output_a": "one", "output_b": "two",
            "created_at": now}})
        events.append(st.vote_event("taste", k, "ana", choice, 1.0))
    with st.Spool(store, tag="sweep") as spool:
        spool.write(events)
    found = st.find_review(store, "taste")
    assert found is not None
    return found


async def test_the_statistics_screen_fits_80_columns_and_names_what_it_says(
        tmp_path: Path) -> None:
    """Issue 25: at 80 columns the interval column became `…`, about 14 rows of `…` sat between
    the models, a model the run placed showed `— —`, and the sentence `each won (or lost) every
    vote against the models named` named none."""
    store = tmp_path / "t.duckdb"
    found = _sweep_review(store)
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, found))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        lines = rendered(app.screen.query_one("#ratings", Static))
    assert not any("…" in line for line in lines), "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    models = ("trial:1", "trial:2", "trial:0", "base", "trial:3")
    rows = [line for line in lines if line.split()[1:2] and line.split()[1] in models]
    assert sorted(line.split()[1] for line in rows) == sorted(models)  # one line each
    first, last = lines.index(rows[0]), lines.index(rows[-1])
    assert last - first == len(models) - 1  # nothing between them
    for row in rows:
        rating, interval = row[15:23].strip(), row[23:40].strip()
        assert (rating, interval) != ("—", "—") and rating and interval, row
    notes = " ".join(" ".join(lines[last + 1:]).split())
    assert "against the models named" not in notes
    assert ("trial:1 and trial:2 won every vote that links them to base, trial:0 and trial:3: "
            "only a lower bound, from the 8 votes across that line pooled") in notes
    assert ("trial:3 lost every vote that links it to trial:1 and trial:2: no fitted rating on "
            "the other side of that line") in notes


async def test_an_empty_answer_is_said_and_brackets_are_text(tmp_path: Path) -> None:
    """Tried at 80×24 in the taste sweep: an empty answer was an empty box, as if it were
    missing; and an answer is text, so a model that writes `[/]` must not break the screen."""
    store = tmp_path / "t.duckdb"
    now = 0.0
    with st.Spool(store, tag="outputs") as spool:
        spool.write([{"table": "reviews", "row": {
            "id": "r1", "experiment": "ab", "name": "r1", "models": '["x", "y"]',
            "prompt_set": "test", "status": "open", "kind": "review", "created_at": now,
            "updated_at": now}}])
        spool.write([{"table": "review_items", "row": {
            "review_id": "r1", "item": i, "prompt_id": str(i), "prompt": "say [b]it[/b]",
            "model_a": "x", "model_b": "y", "output_a": "", "output_b": "[/] and [bold]x",
            "repeat_of": None, "created_at": now}} for i in range(2)])
    app = TunelabApp([store], lambda: ReviewScreen(store, st.find_review(store, "r1"), "pilot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app.screen)
        assert "(empty)" in text and "[/] and [bold]x" in text and "say [b]it[/b]" in text
