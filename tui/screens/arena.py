"""Arena chat: two hidden models, A and B, answer each message side by side, streaming at once;
after each turn the person votes, and may then reveal which model was which.

Blind until the reveal: the panes are titled A and B only, nothing on screen says which models
were asked for, both replies stream together (on one shared base they even advance token by
token in lockstep), and no timing or length is shown. The sides are drawn once per arena
(`engine.arena.new`); ctrl+n starts a new arena with the sides drawn again. The keys are the
voting screen's (tui/keys.py): a b t x w s vote, u undoes, r reveals; after a vote, Enter opens
the message box for the next turn (until then a letter is a key, never the start of a
message). Each turn and each vote is fsynced to the spool before the screen moves on (a killed
app loses nothing), then moved into the store by a worker: the arena is a review of kind
`arena`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Markdown, Static

from tunelab import store as st
from tunelab.engine.review import arena as ar
from tunelab.engine.review.votes import CHOICE_WORDS
from tunelab.engine.serve.chat import Settings
from tunelab.tui import keys
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.title import ScreenTitle

# the verdict keys as the table writes them: `a A better · b B better · t tie …`
VOTE_KEYS = " · ".join(f"{k.written} {k.label}" for k in keys.rows("arena")
                       if k.action.startswith("vote("))


class ArenaScreen(Screen):
    KEYS_OF = "arena"
    # esc stops the replies first; Enter after a vote opens the message box
    BINDINGS = keys.bindings(KEYS_OF, back="back", enter="write")

    @dataclass
    class Loaded(Message):
        pair: Any  # engine.side_by_side.Pair, in the order of `models`
        models: tuple[str, str]

    @dataclass
    class LoadFailed(Message):
        error: str

    def __init__(self, store_path: Path, experiment: str, refs: tuple[str, str],
                 rater: str) -> None:
        super().__init__()
        self.store_path, self.experiment, self.refs, self.rater = (store_path, experiment,
                                                                   refs, rater)
        self.settings = Settings()
        self.pair: Any = None  # the two models as loaded, in the order of models
        self.models: tuple[str, str] | None = None
        self.arena: ar.Arena | None = None
        self.histories: tuple[list[dict[str, str]], list[dict[str, str]]] = ([], [])
        self.turn = 0  # turns recorded in this arena
        self.voting = False  # a turn waits for its vote
        self.voted: str | None = None  # the vote on the last turn
        self.vote_id: str | None = None  # while it may be undone: until the next message
        self.vote_seconds: float | None = None
        self.revealed = False
        self.generating = False
        self.stop_event = threading.Event()
        self.shown_at = time.monotonic()
        self.spool = st.Spool(store_path, tag=f"arena-{rater}")

    def compose(self) -> ComposeResult:
        yield ScreenTitle(id="title")
        yield Static(id="state")
        with Horizontal(id="sides"):
            for side in ("a", "b"):
                box = VerticalScroll(id=f"side-{side}", classes="side")
                box.border_title = side.upper()
                yield box
        yield Static(id="vote")
        yield Input(placeholder="loading the two models… (you can type already)", id="message")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"arena · {self.experiment}"
        self.sub_title = f"rater {self.rater}"
        self._state("loading the two models…")
        self.query_one("#message", Input).focus()  # typing ahead: nothing typed gets lost
        self._load()

    def on_resize(self) -> None:
        self.query_one("#sides").set_class(self.size.width < 70, "stacked")

    def _state(self, text: str) -> None:
        self.query_one("#state", Static).update(text)

    def _say(self, text: str) -> None:
        self.query_one("#vote", Static).update(text)

    # -- loading
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load(self) -> None:
        from tunelab.engine.serve.refs import resolve
        from tunelab.engine.serve.side_by_side import load_pair

        try:
            models = ar.resolve_pair(self.store_path, self.experiment, self.refs)
            pair = load_pair(*(resolve(self.store_path, self.experiment, r) for r in models))
        except Exception as error:  # noqa: BLE001 - shown to the user, the screen stays
            self.post_message(self.LoadFailed(str(error)))
            return
        self.post_message(self.Loaded(pair, models))

    def on_arena_screen_load_failed(self, message: LoadFailed) -> None:
        self.query_one("#message", Input).placeholder = "no models to ask: esc leaves"
        self.query_one("#state", Static).update(
            Text(f"cannot load the models: {message.error}", style="red"))

    def on_arena_screen_loaded(self, message: Loaded) -> None:
        self.pair, self.models = message.pair, message.models
        self._start_arena()

    def _start_arena(self) -> None:
        assert self.models is not None
        self.arena = ar.new(self.experiment, self.models)
        self.histories, self.turn, self.voting, self.voted = ([], []), 0, False, None
        self.vote_id = None
        self.revealed = False
        for side in ("a", "b"):
            box = self.query_one(f"#side-{side}", VerticalScroll)
            box.remove_children()
            box.border_title = side.upper()
        self._say("two models answer each message as A and B; after each turn you vote")
        self._ready()

    def _sides(self) -> Any:
        """The loaded pair in A, B order."""
        from tunelab.engine.serve.side_by_side import Pair

        assert self.arena is not None and self.models is not None
        if self.arena.left == self.models[0]:
            return self.pair
        return Pair((self.pair.sides[1], self.pair.sides[0]), self.pair.shared)

    def _ready(self) -> None:
        box = self.query_one("#message", Input)
        box.disabled = False
        box.placeholder = "message for A and B (Enter sends)"
        box.focus()
        self._state("ready" if not self.revealed else "revealed: no more votes in this arena")
        self.refresh_bindings()

    # -- a turn
    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.voting:
            return
        if self.pair is None or self.generating:  # the text stays in the box meanwhile
            self.notify("the models are still loading" if self.pair is None else
                        "A and B are still writing: Esc stops them", timeout=2)
            return
        event.input.value = ""
        self.vote_id = None  # a vote is final once the conversation goes on
        for history in self.histories:
            history.append({"role": "user", "content": text})
        replies = []
        for side in ("a", "b"):
            box = self.query_one(f"#side-{side}", VerticalScroll)
            reply = Markdown("…")
            box.mount(Static(f"you: {text}", classes="user", markup=False), reply)
            replies.append(reply)
        self.generating = True
        self.stop_event.clear()
        self._state("A and B are writing… (Esc stops both)")
        self._say("")
        self.refresh_bindings()
        self._stream(replies[0], replies[1])

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _stream(self, reply_a: Markdown, reply_b: Markdown) -> None:
        from tunelab.engine.serve.side_by_side import stream_pair

        texts, error = ("", ""), ""
        try:
            for texts in stream_pair(self._sides(), self.histories, self.settings,
                                     self.stop_event):
                self.app.call_from_thread(self._show, reply_a, reply_b, texts)
        except Exception as error_:  # noqa: BLE001 - told on screen, the replies so far stay
            error = type(error_).__name__  # not the message: it may name a model's folder
        self.app.call_from_thread(self._finished, reply_a, reply_b, texts, error)

    def _show(self, reply_a: Markdown, reply_b: Markdown, texts: tuple[str, str]) -> None:
        reply_a.update(texts[0] or "…")
        reply_b.update(texts[1] or "…")
        for side in ("a", "b"):
            self.query_one(f"#side-{side}", VerticalScroll).scroll_end(animate=False)

    def _finished(self, reply_a: Markdown, reply_b: Markdown, texts: tuple[str, str],
                  error: str) -> None:
        self._show(reply_a, reply_b, (texts[0] or "(no answer)", texts[1] or "(no answer)"))
        for history, text in zip(self.histories, texts, strict=True):
            history.append({"role": "assistant", "content": text})
        self.generating = False
        if error:
            self._state(f"[red]generation failed ({error})[/]")
        if self.revealed:
            self._ready()
            return
        assert self.arena is not None
        ar.record_turn(self.spool, self.arena, self.turn, self.histories[0][-2]["content"],
                       texts[0], texts[1])
        self._ingest()
        self.voting, self.voted = True, None
        box = self.query_one("#message", Input)
        box.disabled = True  # what was typed ahead stays in it
        box.placeholder = "vote first (keys above)"
        self.set_focus(None)  # the vote keys reach the screen, not the input
        self._state(f"turn {self.turn + 1}: which answer is better?")
        self._say(VOTE_KEYS)
        self.shown_at = time.monotonic()
        self.refresh_bindings()

    # -- votes and the reveal
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "vote":
            return self.voting
        if action == "undo":
            return self.vote_id is not None and not self.revealed
        if action == "reveal":
            return self.arena is not None and not self.revealed and not self.generating
        if action == "write":  # after a vote, the message box waits for Enter
            return not self.voting and not self.generating and self.pair is not None \
                and self.query_one("#message", Input).disabled
        return True

    def action_vote(self, choice: str) -> None:
        if not self.voting or self.arena is None:
            return
        seconds = round(time.monotonic() - self.shown_at, 2)
        self.vote_id = ar.record_vote(self.spool, self.arena, self.turn, self.rater, choice,
                                      seconds)
        self.vote_seconds = seconds
        self._ingest()
        self.voting, self.voted = False, choice
        self.turn += 1
        self._say(f"voted: {CHOICE_WORDS[choice]} · u undoes it · r reveals the models (and ends the "
                  "votes of this arena) · ⏎ writes the next message")
        box = self.query_one("#message", Input)
        box.placeholder = "⏎ to write the next message"  # a letter now is a key, not text
        self._state(f"turn {self.turn} voted")
        self.refresh_bindings()

    def action_write(self) -> None:
        """Enter after a vote: the message box for the next turn."""
        self._ready()

    def action_undo(self) -> None:
        """Takes back the vote on the last turn (until the next message is sent)."""
        if self.vote_id is None or self.arena is None or self.voted is None or self.revealed:
            return
        self.turn -= 1
        ar.record_vote(self.spool, self.arena, self.turn, self.rater, self.voted,
                       self.vote_seconds, vote_id=self.vote_id, undone=True)
        self._ingest()
        self.vote_id = None
        self.voting, self.voted = True, None
        box = self.query_one("#message", Input)
        box.disabled = True
        box.placeholder = "vote first (keys above)"
        self.set_focus(None)
        self._state(f"turn {self.turn + 1}: which answer is better? (vote undone)")
        self._say(VOTE_KEYS)
        self.refresh_bindings()

    def action_reveal(self) -> None:
        if self.arena is None or self.revealed or self.generating:
            return
        if self.voting:
            self.notify("vote on this turn first: identities are shown after the vote",
                        timeout=3)
            return
        self.revealed = True
        for side, ref in (("a", self.arena.left), ("b", self.arena.right)):
            self.query_one(f"#side-{side}", VerticalScroll).border_title = (
                f"{side.upper()} · {ref}")
        plural = "s" if self.turn != 1 else ""
        votes = (f"{self.turn} turn{plural} stored: tunelab review stats {self.arena.name}"
                 if self.turn else "no votes were given")
        self._say(f"A was {self.arena.left}, B was {self.arena.right} · {votes} · "
                  "ctrl+n starts a new blind arena")
        self._ready()

    def action_new(self) -> None:
        if self.pair is None or self.generating:
            return
        self._start_arena()
        self.notify("new arena: the sides are drawn again", timeout=2)

    def action_back(self) -> None:
        """Esc stops both replies; otherwise it goes back, out of the app when the arena is
        its only screen (`tunelab chat --arena`)."""
        if self.generating:
            self.stop_event.set()
        else:
            self.app.back()  # type: ignore[attr-defined]

    @work(thread=True, exit_on_error=False, group="ingest")
    def _ingest(self) -> None:
        self.spool.ingest(wait=2)

    def on_unmount(self) -> None:
        self.stop_event.set()
        self.spool.close(wait=5)
