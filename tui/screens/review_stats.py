"""The statistics of one blind review, as a screen: who beats whom, by how much, and how far
the votes themselves can be trusted (side bias, agreement between raters, self-consistency).

The numbers are `engine.review.stats`, computed in a thread worker; computing them also fits
the Bradley–Terry ratings and writes them to the store, so the `leaderboard` view is current.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine.review import judge_words, words
from tunelab.engine.review import reviews as review
from tunelab.engine.review import stats as rs
from tunelab.engine.review.agreement import JudgeStats
from tunelab.engine.review.reviews import review_judges
from tunelab.engine.review.style import StyleFit
from tunelab.store.errors import TunelabError
from tunelab.tui import keys
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.scroll import VimScroll
from tunelab.tui.widgets.title import ScreenTitle

BAR = 24  # characters of the interval plot (fewer beside the length-controlled column)


def back_or_exit(app: App) -> None:
    """Back to the screen underneath, or out of `tunelab review` when this is its only screen."""
    if len(app.screen_stack) > 2:
        app.pop_screen()
    else:
        app.exit()


def heading(title: str, note: str) -> Text:
    return Text.assemble((title, "bold"), (f" · {note}", "dim"))


def forest(ratings: list[rs.Rating], width: int = BAR) -> tuple[str, list[Text]]:
    """Each rating's 95 % interval as a bar on one shared scale (├──●──┤). An open end runs
    off the scale (← →); a model without a fitted rating has no dot. Returns the scale line and
    one bar per rating."""
    ends = [x for r in ratings for x in (r.low, r.high, r.rating)
            if x is not None and math.isfinite(x)]
    low, high = (min(ends), max(ends)) if ends else (1000.0, 1000.0)
    span = (high - low) or 1.0

    def at(x: float) -> int:
        return round((min(max(x, low), high) - low) / span * (width - 1))

    bars = []
    for r in ratings:
        cells = [" "] * width
        a = at(r.low) if math.isfinite(r.low) else 0
        b = at(r.high) if math.isfinite(r.high) else width - 1
        if math.isfinite(r.low) or math.isfinite(r.high):
            for k in range(a, b + 1):
                cells[k] = "─"
            cells[a] = "├" if math.isfinite(r.low) else "←"
            cells[b] = "┤" if math.isfinite(r.high) else "→"
        if r.finite and r.rating is not None:
            cells[at(r.rating)] = "●"
        bars.append(Text("".join(cells), style="bold" if r.ranks == (1, 1) else ""))
    left, right = fmt.points(low), fmt.points(high)
    return left + right.rjust(width - len(left)), bars


def ratings_view(ratings: list[rs.Rating], ties: str = "half",
                 style: StyleFit | None = None) -> Group:
    if not ratings:
        return Group(Text("Ratings: " + words.notes(ratings, ties)[0], style="bold"))
    scale, bars = forest(ratings, BAR - 8 if style else BAR)
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    several = len({r.group for r in ratings}) > 1
    columns = [("rank", "right"), ("model", "left"), ("rating", "right")]
    columns += [(words.LENGTH_COLUMN, "right")] if style else []
    columns += [("interval", "left"), (scale, "left"), ("votes", "right")]
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for k, (r, bar) in enumerate(zip(ratings, bars, strict=True)):
        if several and (k == 0 or ratings[k - 1].group != r.group):
            table.add_row("", Text(f"group {r.group}", style="italic"), *[""] * (len(columns) - 2))
        styled = [words.styled_text(style, r.model)] if style else []
        table.add_row(words.rank_text(r), r.model, words.rating_text(r), *styled, r.interval(),
                      bar, fmt.number(r.votes))
    notes = Text("\n".join(words.notes(ratings, ties, style)), style="dim")
    return Group(heading("Ratings", "Bradley–Terry; bars: 95 % intervals"), table, notes)


def pairs_view(pairs: list[rs.PairRecord], ties: str = "half") -> Group | Text:
    """One row per pair of models, from the side of the one that won more."""
    if not pairs:
        return Text("Pairs: no counted votes yet.")
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for column in words.PAIR_COLUMNS:
        table.add_column(column, justify="left" if column in {"model", "vs"} else "right",
                         no_wrap=True)
    for row in words.pair_rows(pairs):
        table.add_row(*row)
    title, _, note = words.pairs_title(ties).partition(" · ")
    return Group(heading(title, note), table)


def bias_view(b: rs.PositionBias) -> Text:
    said, warn = words.bias_text(b)
    text = Text(said)
    if warn:
        side = "left (A)" if b.share_left > 0.5 else "right (B)"
        text.append(f"\n⚠ More {side} wins than chance allows. Sides are random per item, so this "
                    "comes from how the votes were cast, not from the models: judge the content, "
                    "not the order you read it in.", style="bold yellow")
    return text


def raters_view(s: review.ReviewStats) -> Group:
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for column in ("rater", "votes", "repeats judged alike"):
        table.add_column(column, justify="left" if column == "rater" else "right", no_wrap=True)
    for rater, n in sorted(s.per_rater.items()):
        judged = s.consistency.get(rater)
        table.add_row(rater, fmt.number(n),
                      f"{fmt.percent(judged[1])} of {judged[0]}" if judged else "none repeated yet")
    lines = [f"{r1} × {r2}: Cohen's {words.kappa_text(kappa)} on {k} shared items"
             for (r1, r2), (k, kappa) in s.agreement.items()]
    if not lines:
        lines = ["Agreement needs a second rater on the same items (`tunelab review "
                 f"{s.review.name} --rater NAME`)."]
    return Group(heading("Raters", "a repeat shows an item again with the sides swapped"),
                 table, Text("\n".join(lines)))


def judges_view(found: JudgeStats) -> Group | Text:
    """Each LLM judge against each person, and everyone's position and length leanings."""
    if not found.judged:
        return Text("Judges: none yet (`tunelab review judge NAME --model REF`).", style="dim")
    parts: list[Table | Text] = [heading("Judges", "LLM raters, left out of the ratings above")]
    for columns, rows in ((judge_words.AGREEMENT_COLUMNS, judge_words.agreement_rows(
            found.agreements)), (judge_words.LEANING_COLUMNS,
                                 judge_words.leaning_rows(found.leanings))):
        table = Table(box=None, padding=(0, 1), pad_edge=False)
        for column in columns:
            table.add_column(column, justify="left" if column in {"judge", "human", "rater"}
                             else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        parts.append(table)
    parts.append(Text("\n".join(judge_words.notes(found.agreements, found.leanings)),
                      style="dim"))
    return Group(*parts)


class ReviewStatsScreen(Screen):
    KEYS_OF = "statistics"
    BINDINGS = keys.bindings(KEYS_OF, reload="refit", back="leave")  # tui/keys.py: R, esc q

    @dataclass
    class Loaded(Message):
        stats: review.ReviewStats
        judges: JudgeStats

    @dataclass
    class Failed(Message):
        title: str
        message: str

    def __init__(self, store_path: Path, found: st.ReviewRecord,
                 before: Callable[[], object] | None = None) -> None:
        super().__init__()
        self.store_path = store_path
        self.review = found
        self.before = before  # e.g. the voting screen moving its last votes into the store
        self.stats: review.ReviewStats | None = None

    def compose(self) -> ComposeResult:
        yield ScreenTitle(id="title")
        yield Static("counting the votes and fitting the ratings…", id="stats-status")
        with VimScroll(id="stats-body"):
            for part in ("ratings", "pairs", "bias", "raters", "judges"):
                yield Static(id=part)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"review {self.review.name} · statistics"
        self._compute()

    def action_refit(self) -> None:
        self.query_one("#stats-status", Static).update("counting the votes again…")
        self._compute()

    def action_leave(self) -> None:
        back_or_exit(self.app)

    @work(thread=True, exclusive=True, exit_on_error=False, group="stats")
    def _compute(self) -> None:
        try:
            if self.before is not None:
                self.before()
            self.post_message(self.Loaded(review.stats(self.store_path, self.review.id),
                                          review_judges(self.store_path, self.review.id)))
        except TunelabError as error:
            self.post_message(self.Failed(error.title, error.message))
        except Exception as error:  # noqa: BLE001 - shown, not a traceback
            self.post_message(self.Failed(type(error).__name__, str(error)))

    def on_review_stats_screen_loaded(self, message: Loaded) -> None:
        s = self.stats = message.stats
        self.query_one("#stats-status", Static).update(
            words.header(s.votes, s.verdicts, s.items, s.per_rater)
            + " · saved to the leaderboard")
        self.query_one("#ratings", Static).update(ratings_view(s.ratings, s.ties, s.style))
        self.query_one("#pairs", Static).update(pairs_view(s.pairs, s.ties))
        self.query_one("#bias", Static).update(bias_view(s.bias))
        self.query_one("#raters", Static).update(raters_view(s))
        self.query_one("#judges", Static).update(judges_view(message.judges))

    def on_review_stats_screen_failed(self, message: Failed) -> None:
        self.query_one("#stats-status", Static).update(f"{message.title}: {message.message}")
        self.notify(message.message, title=message.title, severity="error", timeout=8)
