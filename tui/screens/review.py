"""The blind A/B voting screen: one prompt, two outputs labelled A and B, a key per verdict.

Nothing on screen tells which model wrote which output: the labels are A and B, the items come
in the review's own shuffled order, and identities are shown only after a vote, on request.
A vote is fsynced to this process's spool before the next item appears, so a vote survives
the app being killed right after the key press.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, Static

from tunelab import store as st
from tunelab.engine.review.reviews import fit_ratings, flagged, next_item
from tunelab.store.errors import TunelabError
from tunelab.tui.screens.review_stats import ReviewStatsScreen, back_or_exit

CHOICES = {"a": "A is better", "b": "B is better", "tie": "tie", "both_bad": "both bad",
           "skip": "skipped"}


class CommentDialog(ModalScreen[str]):
    BINDINGS = [Binding("escape", "dismiss('')", "cancel")]

    def compose(self) -> ComposeResult:
        yield Input(placeholder="a comment on this item (Enter to save, Esc to cancel)",
                    id="comment")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


# The verdict keys, the same wherever a person votes (the review and the arena)
VOTE_BINDINGS = [
    Binding("a", "vote('a')", "A better"),
    Binding("b", "vote('b')", "B better"),
    Binding("t", "vote('tie')", "tie"),
    Binding("x", "vote('both_bad')", "both bad"),
    Binding("s", "vote('skip')", "skip"),
]


class ReviewScreen(Screen):

    BINDINGS = [
        *VOTE_BINDINGS,
        Binding("u", "undo", "undo"),
        Binding("q", "leave", "done"),
        # named on the progress line, so that every key shows in 80 columns
        Binding("r", "reveal", "reveal", show=False),
        Binding("c", "comment", "comment", show=False),
        Binding("i", "stats", "stats", show=False),
    ]

    @dataclass
    class Loaded(Message):
        items: list[st.ReviewItem]
        votes: list[st.VoteRecord]

    @dataclass
    class Fitted(Message):
        error: str | None  # why the ratings could not be saved, if they could not

    def __init__(self, store_path: Path, review: st.ReviewRecord, rater: str) -> None:
        super().__init__()
        self.store_path = store_path
        self.review = review
        self.rater = rater
        self.items: list[st.ReviewItem] = []
        self.done: set[int] = set()
        self.current: st.ReviewItem | None = None
        self.shown_at = time.monotonic()
        self.history: list[tuple[str, st.ReviewItem, str, float]] = []  # id, item, choice, s
        self.spool = st.Spool(store_path, tag=f"review-{rater}")
        self.leaving = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="progress")
        with VerticalScroll(id="prompt-box"):
            yield Static(id="prompt")
        with Horizontal(id="outputs"):
            with VerticalScroll(id="side-a", classes="side"):
                yield Static("A", classes="label")
                yield Static(id="output-a")
            with VerticalScroll(id="side-b", classes="side"):
                yield Static("B", classes="label")
                yield Static(id="output-b")
        yield Static(id="status")
        # every key in 80 columns: no padding, and ctrl+p (which still works) left unsaid
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.title = f"review {self.review.name}"
        self.sub_title = f"rater {self.rater}"
        self._load()

    def on_resize(self) -> None:
        self.query_one("#outputs").set_class(self.size.width < 100, "stacked")

    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load(self) -> None:
        items = st.review_items(self.store_path, self.review.id)
        votes = st.review_votes(self.store_path, self.review.id)
        self.post_message(self.Loaded(items, votes))

    def on_review_screen_loaded(self, message: Loaded) -> None:
        self.items = message.items
        self.done = {v.item for v in message.votes if v.rater == self.rater}
        self._show_next()

    def _show_next(self) -> None:
        votes = [st.VoteRecord("", self.review.id, i, self.rater, "", None, False)
                 for i in self.done]
        self.current = next_item(self.items, votes, self.rater)
        total = len(self.items)
        self.query_one("#progress", Static).update(
            f"item {min(len(self.done) + 1, total)} of {total} · r reveal last · c comment · "
            "i stats" if self.current else
            f"all {total} items voted · i shows the statistics, q quits")
        item = self.current
        self.query_one("#prompt", Static).update(item.prompt if item else "")
        self.query_one("#output-a", Static).update(item.output_a if item else "")
        self.query_one("#output-b", Static).update(item.output_b if item else "")
        warn = item is not None and flagged(item, self.review.models)
        self.query_one("#status", Static).update(
            "⚠ an output may name a model: judge the content only" if warn else "")
        self.shown_at = time.monotonic()

    def action_vote(self, choice: str) -> None:
        item = self.current
        if item is None:
            return
        seconds = round(time.monotonic() - self.shown_at, 2)
        vote = st.vote_row(self.review.id, item.item, self.rater, choice, seconds)
        self.spool.write([vote], ingest=False)  # on disk before the next item shows
        self.history.append((vote.id, item, choice, seconds))
        self.done.add(item.item)
        self._ingest()
        self.notify(f"voted: {CHOICES[choice]}", timeout=1.5)
        self._show_next()

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo", timeout=1.5)
            return
        vote_id, item, choice, seconds = self.history.pop()
        self.spool.write([st.vote_event(self.review.id, item.item, self.rater, choice, seconds,
                                        vote_id=vote_id, undone=True)], ingest=False)
        self.done.discard(item.item)
        self._ingest()
        self.notify(f"undone: {CHOICES[choice]} on item {item.item}", timeout=1.5)
        self._show_next()

    def action_reveal(self) -> None:
        if not self.history:
            self.notify("vote first: identities are shown only after the vote", timeout=2)
            return
        _, item, choice, _ = self.history[-1]
        self.notify(f"last item: A was {item.model_a}, B was {item.model_b} "
                    f"(you voted {CHOICES[choice]})", timeout=5)

    def action_comment(self) -> None:
        if not self.history:
            self.notify("vote first, then comment on that vote", timeout=2)
            return

        def save(text: str | None) -> None:
            if not text:
                return
            vote_id, item, choice, seconds = self.history[-1]
            self.spool.write([st.vote_row(self.review.id, item.item, self.rater, choice,
                                          seconds, vote_id=vote_id, comment=text)], ingest=False)
            self._ingest()
            self.notify("comment saved", timeout=1.5)

        self.app.push_screen(CommentDialog(), save)

    def action_stats(self) -> None:
        self.app.push_screen(ReviewStatsScreen(self.store_path, self.review,
                                               before=lambda: self.spool.ingest(wait=2)))

    def action_leave(self) -> None:
        """The session ends: the votes go into the store and the ratings are fitted again (in
        a worker), so the `leaderboard` view is current; then back, or out of the app."""
        if self.leaving:
            return
        self.leaving = True
        self.query_one("#status", Static).update("saving the votes and fitting the ratings…")
        self._fit_and_leave()

    @work(thread=True, exclusive=True, exit_on_error=False, group="leave")
    def _fit_and_leave(self) -> None:
        error = None
        try:
            self.spool.ingest(wait=2)
            # the same fit as the statistics screen's (same resamples, same seed): the same
            # votes give the same numbers everywhere
            fit_ratings(self.store_path, self.review.experiment, review_id=self.review.id)
        except TunelabError as failed:
            error = failed.message
        except Exception as failed:  # noqa: BLE001 - the votes are safe in the spool
            error = f"{type(failed).__name__}: {failed}"
        self.post_message(self.Fitted(error))

    def on_review_screen_fitted(self, message: Fitted) -> None:
        if message.error:
            self.app.notify(f"votes kept; ratings not saved: {message.error}",
                            severity="warning", timeout=6)
        back_or_exit(self.app)

    @work(thread=True, exit_on_error=False, group="ingest")
    def _ingest(self) -> None:
        self.spool.ingest(wait=2)

    def on_unmount(self) -> None:
        self.spool.close(wait=5)
