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
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from tunelab import store as st
from tunelab.engine.review.predicted import first_waiting
from tunelab.engine.review.reviews import fit_ratings, flagged, next_item
from tunelab.engine.review.votes import CHOICE_WORDS
from tunelab.store.errors import TunelabError
from tunelab.tui import keys
from tunelab.tui.screens.review_stats import ReviewStatsScreen, back_or_exit
from tunelab.tui.screens.trial_texts import shown
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.title import ScreenTitle


class CommentDialog(ModalScreen[str]):
    BINDINGS = [Binding("escape", "dismiss('')", "cancel")]  # esc: back, nothing saved

    def compose(self) -> ComposeResult:
        yield Input(placeholder="a comment on this item (Enter to save, Esc to cancel)",
                    id="comment")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class ReviewScreen(Screen):
    KEYS_OF = "review"
    # the keys of tui/keys.py (the arena's too); esc and q leave, saving first
    BINDINGS = keys.bindings(KEYS_OF, back="leave", statistics="stats")

    @dataclass
    class Loaded(Message):
        items: list[st.ReviewItem]
        votes: list[st.VoteRecord]
        waiting: set[str]  # models a preference sweep waits on: their items first
        judged: list[st.Judgement]  # the LLM judges' verdicts: where they doubt comes next

    def __init__(self, store_path: Path, review: st.ReviewRecord, rater: str,
                 order: str = "adaptive", reward: str | None = None) -> None:
        super().__init__()
        self.reward = reward  # a reward model (EXPERIMENT:N) whose prediction shows after a vote
        self._predictor: Any = None
        self.store_path = store_path
        self.review = review
        self.rater = rater
        self.order = order  # adaptive | random: which item comes next
        self.items: list[st.ReviewItem] = []
        self.votes: list[st.VoteRecord] = []  # every rater's, this session's included
        self.again: st.ReviewItem | None = None  # an undone item, shown again first
        self.doubt = ""  # what the last ranking says is left to rank apart, or that you may stop
        self.steer: list | None = None  # the weighted contrasts that steer the adaptive order
        self.done: set[int] = set()
        self.current: st.ReviewItem | None = None
        self.shown_at = time.monotonic()
        # id, item, choice, seconds, and the item's number as the progress line showed it
        self.history: list[tuple[str, st.ReviewItem, str, float, int]] = []
        self.spool = st.Spool(store_path, tag=f"review-{rater}")
        self.leaving = False
        self.waiting: set[str] = set()
        self.judged: list[st.Judgement] = []
        self._poll: Timer | None = None  # reloads the items while a preference sweep waits

    def compose(self) -> ComposeResult:
        yield ScreenTitle(id="title")
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
        yield KeyFooter(compact=True)

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
        waiting = st.waiting_models(self.store_path, self.review.experiment)
        if waiting:  # the trial a sweep's reward model expects to win, first
            waiting = first_waiting(waiting, st.evaluations(self.store_path,
                                                            self.review.experiment))
        self.post_message(self.Loaded(items, votes, waiting,
                                      st.judgements(self.store_path, self.review.id)))

    def on_review_screen_loaded(self, message: Loaded) -> None:
        self.items, self.waiting, self.judged = message.items, message.waiting, message.judged
        known = {v.id for v in message.votes}  # this session's votes the store may not have yet
        self.votes = list(message.votes) + [v for v in self.votes if v.id not in known]
        self.done = {v.item for v in self.votes if v.rater == self.rater}
        if self.waiting and self._poll is None:  # a preference sweep adds items as it trains
            self._poll = self.set_interval(3, self._load)
        shown = self.current
        if shown is None or (self.waiting and not {shown.model_a, shown.model_b} & self.waiting):
            self._show_next()  # nothing shown, or an item the sweep no longer waits on
        self._steer(list(self.items), list(self.votes), set(self.waiting))

    @dataclass
    class Steered(Message):
        words: str  # what is left to rank apart, that you may stop, or what the sweep waits on
        doubts: list  # the weighted contrasts (ranks.Ranking.steering) that steer the order

    @work(thread=True, exclusive=True, exit_on_error=False, group="steer")
    def _steer(self, items: list[st.ReviewItem], live: list[st.VoteRecord],
               waiting: set[str]) -> None:
        """The rank rule on every vote so far (a few small fits: after each vote, in a worker),
        to say how many more votes the ranks need, or that you may stop; never while a
        preference sweep waits on items of this rater."""
        from tunelab.engine.review import ranks, stop
        from tunelab.engine.review.reviews import as_votes

        ranking = ranks.rank(as_votes(items, live))
        mine = {v.item for v in live if v.rater == self.rater}
        left = [i for i in items if i.item not in mine]
        waits = {m: sum(1 for i in left if m in (i.model_a, i.model_b)) for m in waiting}
        advice = stop.advise(ranking, len(left), waits)
        models = sorted({m for i in items for m in (i.model_a, i.model_b)})
        self.post_message(self.Steered(advice.words, ranking.steering(models)))

    def on_review_screen_steered(self, message: Steered) -> None:
        self.doubt, self.steer = message.words, message.doubts
        self._say_progress()

    def _number(self) -> int:
        """The item's number as the progress line shows it: the rater's votes so far, plus one."""
        return min(len(self.done) + 1, len(self.items))

    def _say_progress(self) -> None:
        total = len(self.items)
        self.query_one("#progress", Static).update(
            f"item {self._number()} of {total} · s skip · r reveal last · C comment · "
            "V stats" if self.current else
            f"all {total} items voted · V shows the statistics, q leaves")
        warn = self.current is not None and flagged(self.current, self.review.models)
        # one line: the blindness warning first; else what the votes still have to separate
        self.query_one("#status", Static).update(
            "⚠ an output may name a model: judge the content only" if warn else self.doubt)

    def _show_next(self) -> None:
        again, self.again = self.again, None
        self.current = again or next_item(self.items, self.votes, self.rater, self.order,
                                          self.steer, self.waiting, self.judged)
        self._say_progress()
        item = self.current
        # as written (a model's `[/]` is text, not markup), an empty answer said `(empty)`
        self.query_one("#prompt", Static).update(Text(item.prompt) if item else "")
        self.query_one("#output-a", Static).update(shown(item.output_a) if item else "")
        self.query_one("#output-b", Static).update(shown(item.output_b) if item else "")
        self.shown_at = time.monotonic()

    def action_vote(self, choice: str) -> None:
        item = self.current
        if item is None:
            return
        seconds = round(time.monotonic() - self.shown_at, 2)
        vote = st.vote_row(self.review.id, item.item, self.rater, choice, seconds)
        self.spool.write([vote], ingest=False)  # on disk before the next item shows
        self.history.append((vote.id, item, choice, seconds, self._number()))
        self.votes.append(st.VoteRecord(vote.id, self.review.id, item.item, self.rater, choice,
                                        seconds, False))
        self.done.add(item.item)
        self._ingest()
        self._steer(list(self.items), list(self.votes), set(self.waiting))
        self.notify(f"voted: {CHOICE_WORDS[choice]}", timeout=1.5)
        if self.reward and choice != "skip":
            self._predict(item)  # after the vote only: the review stays blind
        self._show_next()

    @dataclass
    class Predicted(Message):
        words: str

    @work(thread=True, exit_on_error=False, group="predict")
    def _predict(self, item: st.ReviewItem) -> None:
        """What the reward model predicted for the item just voted on (loaded once)."""
        from tunelab.engine.review import predicted

        try:
            if self._predictor is None:
                self._predictor = predicted.Predictor.load(self.store_path, str(self.reward))
            said = predicted.words(self._predictor.prefers_a(item), self._predictor.name)
        except TunelabError as failed:
            said = f"no reward model: {failed.message}"
        self.post_message(self.Predicted(said))

    def on_review_screen_predicted(self, message: Predicted) -> None:
        self.notify(message.words, timeout=4)

    def action_undo(self) -> None:
        if not self.history:
            self.notify("nothing to undo", timeout=1.5)
            return
        vote_id, item, choice, seconds, number = self.history.pop()
        self.spool.write([st.vote_event(self.review.id, item.item, self.rater, choice, seconds,
                                        vote_id=vote_id, undone=True)], ingest=False)
        self.votes = [v for v in self.votes if v.id != vote_id]
        self.done.discard(item.item)
        self.again = item  # the undone item comes back, whatever the order would pick
        self._ingest()
        self._steer(list(self.items), list(self.votes), set(self.waiting))
        self.notify(f"undone: {CHOICE_WORDS[choice]} on item {number} of {len(self.items)}; "
                    "it is shown again", timeout=1.5)
        self._show_next()

    def action_reveal(self) -> None:
        if not self.history:
            self.notify("vote first: identities are shown only after the vote", timeout=2)
            return
        _, item, choice, _, _ = self.history[-1]
        self.notify(f"last item: A was {item.model_a}, B was {item.model_b} "
                    f"(you voted {CHOICE_WORDS[choice]})", timeout=5)

    def action_comment(self) -> None:
        if not self.history:
            self.notify("vote first, then comment on that vote", timeout=2)
            return

        def save(text: str | None) -> None:
            if not text:
                return
            vote_id, item, choice, seconds, _ = self.history[-1]
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
    def _fit_and_leave(self) -> str | None:
        """Returns why the ratings could not be saved, if they could not; the screen leaves
        once this worker has finished (`on_worker_state_changed`), so leaving never cancels
        it halfway."""
        from textual.worker import WorkerState

        # the session's other workers (a vote's ingest, a refit of the order) end first
        while any(w.group in {"ingest", "steer"} and w.state in {WorkerState.PENDING,
                                                                 WorkerState.RUNNING}
                  for w in list(self.workers)):
            time.sleep(0.02)
        try:
            self.spool.ingest(wait=2)
            # the same fit as the statistics screen's (same resamples, same seed): the same
            # votes give the same numbers everywhere
            fit_ratings(self.store_path, self.review.experiment, review_id=self.review.id)
        except TunelabError as failed:
            return failed.message
        except Exception as failed:  # noqa: BLE001 - the votes are safe in the spool
            return f"{type(failed).__name__}: {failed}"
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "leave" or event.state not in {WorkerState.SUCCESS,
                                                                 WorkerState.ERROR}:
            return
        error = event.worker.result if event.state == WorkerState.SUCCESS else str(
            event.worker.error)
        if error:
            self.app.notify(f"votes kept; ratings not saved: {error}", severity="warning",
                            timeout=6)
        back_or_exit(self.app)

    @work(thread=True, exit_on_error=False, group="ingest")
    def _ingest(self) -> None:
        self.spool.ingest(wait=2)

    def on_unmount(self) -> None:
        self.spool.close(wait=5)
