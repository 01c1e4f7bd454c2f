"""Every screen at 80×24, checked by screen_fit as a person would look: no number cut to an
ellipsis, no cut sentence, no column or footer cut, no legend over a plot's points; and every
screen under the same title line. The checker itself is shown to catch each of those."""

from __future__ import annotations

from pathlib import Path

import pytest
import tui_store
from review_helpers import vote_for, write_review
from screen_fit import problems, screen_lines
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Header, Static
from tui_pilot import paste, settle

from tunelab import store as st
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.arena import ArenaScreen
from tunelab.tui.screens.chat import ChatScreen
from tunelab.tui.screens.review import ReviewScreen
from tunelab.tui.screens.review_stats import ReviewStatsScreen
from tunelab.tui.widgets.plot import LinePlot, Series
from tunelab.tui.widgets.title import ScreenTitle

SIZE = (80, 24)

pytest_plugins = ("tui_fixtures",)  # demo_store, sql_history


def fits(app: App, what: str) -> None:
    found = problems(app)
    assert not found, f"{what} at 80×24:\n" + "\n".join(found) + "\n\n" + "\n".join(
        screen_lines(app))
    assert not app.screen.query(Header), f"{what}: Textual's header, not the title line"


PASTE = "paste:"  # a key that is text pasted into the focused box (tui_pilot.paste)

# (what, keys from the experiments screen)
BROWSING = [
    ("experiments", []),
    ("trials", ["enter"]),
    ("trial curves", ["enter", "j", "j", "enter"]),
    ("trial evaluation", ["enter", "j", "j", "enter", "2"]),
    ("trial config", ["enter", "j", "j", "enter", "3"]),
    ("trial samples", ["enter", "j", "j", "enter", "4"]),
    ("trial log", ["enter", "j", "j", "enter", "5"]),
    ("a running trial", ["enter", "G", "enter"]),
    ("compare curves", ["enter", "c"]),
    ("compare importance", ["enter", "c", "2"]),
    ("compare scatter", ["enter", "c", "3"]),
    ("compare scatter, next parameter", ["enter", "c", "p"]),
    ("compare front of one objective", ["enter", "c", "4"]),
    ("SQL", ["colon", PASTE + "select number, state, value from trials", "enter"]),
    ("help", ["enter", "question_mark"]),
    ("help of a trial", ["enter", "enter", "question_mark"]),
    ("new review", ["enter", "n"]),
]


@pytest.mark.parametrize(("what", "keys"), BROWSING, ids=[b[0] for b in BROWSING])
async def test_every_browsing_screen_fits_80_by_24(demo_store: Path, what: str,
                                                   keys: list[str]) -> None:
    app = TunelabApp([demo_store])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in keys:
            if key.startswith(PASTE):
                await paste(pilot, key.removeprefix(PASTE))
            else:
                await pilot.press(key)
            await settle(pilot)
        fits(app, what)
        assert app.screen.query(ScreenTitle) or what.startswith(("help", "new review"))


def test_a_preference_sweeps_scatter_shows_all_four_trials(tmp_path: Path) -> None:
    """The taste sweep's scatter: the best trial (lowest learning rate, highest rating) lies in
    the top left corner, where plotext drew its legend over it: 3 of 4 trials were visible."""
    import asyncio

    store = tui_store.build_taste(tmp_path)

    async def run() -> None:
        app = TunelabApp([store])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            for key in ("enter", "c", "3"):
                await pilot.press(key)
                await settle(pilot)
            plot = app.screen.query_one("#scatter-plot", LinePlot)
            assert sum(len(s.xs) for s in plot.series) == 4
            fits(app, "the taste sweep's scatter")
            region = plot.canvas_region
            drawn = "\n".join(line[region.x:region.right]
                              for line in screen_lines(app)[region.y:region.bottom])
            assert drawn.count("o") == 4  # each trial's own marker, none under a legend

    asyncio.run(run())


async def test_the_review_screens_fit_80_by_24(tmp_path: Path) -> None:
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    vote_for(store, "r1", "x", range(0, 18))
    vote_for(store, "r1", "y", range(18, 22))
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewScreen(store, found, "ana"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fits(app, "review")
        await pilot.press("a")
        await settle(pilot)
        fits(app, "review after a vote")
        await pilot.press("V")
        await settle(pilot)
        assert isinstance(app.screen, ReviewStatsScreen)
        fits(app, "statistics")


async def test_the_statistics_header_with_several_raters_fits_80_by_24(tmp_path: Path) -> None:
    """The header names each rater and their votes: with two raters of longer names it ran past
    80 columns on a line one row high (`… bartholomew 22, christopher 9 · saved to the`)."""
    store = tmp_path / "t.duckdb"
    write_review(store, "r1", 24)
    vote_for(store, "r1", "x", range(0, 18), rater="ana-maria")
    vote_for(store, "r1", "y", range(0, 22), rater="bartholomew")
    vote_for(store, "r1", "x", range(0, 9), rater="christopher")
    found = st.find_review(store, "r1")
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, found))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ReviewStatsScreen)
        fits(app, "statistics of two raters")
        assert "saved to the leaderboard" in " ".join(" ".join(screen_lines(app)).split())


async def test_a_standalone_chat_and_arena_fit_80_by_24(tmp_path: Path) -> None:
    """Their frame (title, state, message box, footer), with a model that cannot load: the
    screens with a model are checked in test_tui_models.py."""
    store = tmp_path / "none.duckdb"
    for screen in (lambda: ChatScreen(store, "x", "best", tmp_path / "probes.json"),
                   lambda: ArenaScreen(store, "x", ("base", "best"), "ana")):
        app = TunelabApp([store], screen)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            fits(app, type(app.screen).__name__)


# ---------------------------------------------------------------- the checker itself

class _Shows(App):
    """One widget on a screen of its own, for the checker's tests."""

    def __init__(self, widget: Static | DataTable | LinePlot) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def test_the_checker_finds_a_number_cut_to_an_ellipsis() -> None:
    app = _Shows(Static("rating  1,031 ± 4…   0.6…"))
    async with app.run_test(size=SIZE):
        assert any("ellipsis" in p for p in problems(app))


async def test_the_checker_finds_a_cut_sentence() -> None:
    box = Static("each won (or lost) every vote against the models named below, so no rating "
                 "can be fitted for them")
    box.styles.height = 1
    app = _Shows(box)
    async with app.run_test(size=SIZE):
        assert any("a text cut" in p for p in problems(app))


async def test_the_checker_finds_a_legend_over_a_point() -> None:
    """The plot as plotext draws it with labels (the legend in the top left corner, over the
    point that lies there)."""

    class LegendInside(LinePlot):
        def draw(self, canvas) -> None:  # noqa: ANN001
            plt = canvas.plt
            plt.clear_figure()
            for s in self.series:
                plt.scatter(list(s.xs), list(s.ys), label=s.label, marker=self.marker_of(s))

    plot = LegendInside()
    app = _Shows(plot)
    async with app.run_test(size=SIZE) as pilot:
        plot.show([Series("complete", [1.0, 2.0, 3.0, 4.0], [9.0, 5.0, 3.0, 1.0], marker="o",
                          lines=False)])
        await pilot.pause()
        plot.limits = None  # plotext's own range, as it drew it
        found = problems(app)
        assert any("legend 'complete'" in p for p in found)
        assert any("(1, 9)" in p for p in found)  # the top left point is not seen

