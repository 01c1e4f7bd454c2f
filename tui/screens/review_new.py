"""Creating a blind review from the TUI: a dialog for the models, the prompts, how many and the
name; the outputs are generated in a thread worker (it can take minutes on a real model) with
the progress shown, then the voting screen opens. And `open_review`, which the trials screen's
keys call: vote in the experiment's newest review, see its statistics, or make a new one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import Button, Input, Label, ProgressBar, SelectionList, Static
from textual.widgets.option_list import OptionDoesNotExist

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.engine.refs import ModelRef
from tunelab.engine.review import reviews as review
from tunelab.store.errors import TunelabError
from tunelab.tui import keys, source
from tunelab.tui.screens.review import ReviewScreen
from tunelab.tui.screens.review_stats import ReviewStatsScreen
from tunelab.tui.source import Trial


class ModelList(SelectionList[str]):
    """Space ticks a model; Enter creates the review, as in the boxes below. A ticked row
    reads `[x]`, an unticked one `[ ]`: the state is in the glyph, not in the colour only
    (Textual draws `▐X▌` either way), so a monochrome terminal or a screen capture shows it."""

    BINDINGS = [Binding("enter", "screen.create", "create", show=False)]

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        try:
            selection = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return line
        segments = list(line)
        if len(segments) < 3:
            return line
        ticked = selection.value in self.selected
        style = segments[1].style
        return Strip([Segment("[", style), Segment("x" if ticked else " ", style),
                      Segment("]", style), *segments[3:]])


class NewReviewDialog(ModalScreen["st.ReviewRecord | None"]):
    """Models, prompts, how many, a name; Enter in a box (or Create) generates the outputs."""

    KEYS_OF = "new review"
    BINDINGS = keys.bindings(KEYS_OF, back="cancel")

    @dataclass
    class Progress(Message):
        done: int
        total: int

    @dataclass
    class Created(Message):
        review: st.ReviewRecord

    @dataclass
    class Failed(Message):
        title: str
        message: str

    def __init__(self, store_path: Path, experiment: str, choices: list[tuple[str, str]],
                 chosen: set[str], taken: set[str]) -> None:
        super().__init__()
        self.store_path = store_path
        self.experiment = experiment
        self.choices = choices  # (model ref, what the list shows)
        self.chosen = chosen
        self.taken = taken  # names of the reviews that exist
        self.started: float | None = None
        self.done = 0

    def compose(self) -> ComposeResult:
        name = self.experiment
        k = 2
        while name in self.taken:
            name, k = f"{self.experiment}-{k}", k + 1
        with Vertical(id="new-box") as box:
            box.border_title = f"New blind review · {self.experiment}"
            yield Static(id="new-chosen")
            yield ModelList(*[(label, ref, ref in self.chosen)
                                       for ref, label in self.choices], id="new-models")
            with Horizontal(classes="row"):
                yield Label("Prompts")
                yield Input("test", placeholder="test (the test split) or a JSON-lines file",
                            id="new-prompts")
            with Horizontal(classes="row"):
                yield Label("How many")
                yield Input("50", type="integer", id="new-n")
                yield Label(" Name")
                yield Input(name, id="new-name")
            yield Static("Prompts: test (the experiment's test split) or a file of "
                         '{"prompt": …} lines. Tab moves, Enter creates, Esc cancels.',
                         id="new-status")
            yield ProgressBar(show_eta=False, id="new-progress")
            with Horizontal(id="new-buttons"):
                yield Button("Create", variant="primary", id="new-create")
                yield Button("Cancel", id="new-cancel")

    def on_mount(self) -> None:
        models = self.query_one(ModelList)
        models.highlighted = 0
        models.focus()
        self._say_chosen()
        if len(self.choices) < 2:
            self._say(f"{self.experiment} has no complete trial yet, so there is nothing to "
                      "compare the base with: run the experiment first.", error=True)

    def on_selection_list_selected_changed(self) -> None:
        self._say_chosen()

    def _say_chosen(self) -> None:
        """The chosen models, also said in words under the ticks."""
        chosen = self.query_one(ModelList).selected
        self.query_one("#new-chosen", Static).update(
            "Models (space ticks; two or more) · chosen: " + (", ".join(chosen) or "none"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new-create":
            self.action_create()
        else:
            self.action_cancel()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.action_create()

    def action_cancel(self) -> None:
        if self.started is not None:
            self.notify("the outputs are being generated; this cannot be stopped halfway",
                        timeout=3)
            return
        self.dismiss(None)

    def _say(self, text: str, error: bool = False) -> None:
        status = self.query_one("#new-status", Static)
        status.update(text)
        status.set_class(error, "error")

    def action_create(self) -> None:
        if self.started is not None:
            return
        refs = list(self.query_one(SelectionList).selected)
        count = self.query_one("#new-n", Input).value.strip()
        name = self.query_one("#new-name", Input).value.strip()
        prompts = self.query_one("#new-prompts", Input).value.strip() or "test"
        if len(refs) < 2:
            return self._say("Choose at least two models (space toggles one).", error=True)
        if not count.isdigit() or int(count) < 1:
            return self._say("How many: a whole number of prompts, 1 or more.", error=True)
        if not name:
            return self._say("Give the review a name.", error=True)
        if name in self.taken:
            return self._say(f"A review named {name!r} exists; choose another name.", error=True)
        self.started, self.done = time.monotonic(), 0
        for widget in self.query("Input, SelectionList, #new-create"):
            widget.disabled = True
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)  # until the first outputs say how many there are
        bar.add_class("running")
        self._tick()
        self.set_interval(1, self._tick, name="elapsed")
        self._create(refs, prompts, int(count), name)

    def _tick(self) -> None:
        if self.started is None:
            return
        total = self.query_one(ProgressBar).total
        done = (f"{self.done} of {fmt.number(int(total))} outputs done" if self.done and total
                else "loading the first model")
        self._say(f"Generating: {done} · {fmt.duration(time.monotonic() - self.started)}")

    @work(thread=True, exclusive=True, exit_on_error=False, group="create")
    def _create(self, refs: list[str], prompts: str, n: int, name: str) -> None:
        try:
            rows = review.prompts_for(self.store_path, self.experiment, prompts, n)
            def progress(k: int, total: int) -> None:
                self.post_message(self.Progress(k, total))

            found = review.create(self.store_path, self.experiment, name, refs, rows, prompts,
                                  progress=progress)
            self.post_message(self.Created(found))
        except TunelabError as error:
            self.post_message(self.Failed(error.title, error.message))
        except Exception as error:  # noqa: BLE001 - shown in the dialog, not as a traceback
            self.post_message(self.Failed(type(error).__name__, str(error)))

    def on_new_review_dialog_progress(self, message: Progress) -> None:
        self.done = message.done
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        self._tick()

    def on_new_review_dialog_created(self, message: Created) -> None:
        self.started = None
        self.dismiss(message.review)

    def on_new_review_dialog_failed(self, message: Failed) -> None:
        self.started = None
        for widget in self.query("Input, SelectionList, #new-create"):
            widget.disabled = False
        self.query_one(ProgressBar).remove_class("running")
        self._say(f"{message.title}: {message.message}", error=True)


def model_choices(trials: list[Trial], store: Path, best: int | None,
                  objective: str) -> tuple[list[tuple[str, str]], set[str]]:
    """The models a review can compare: the base and every complete trial kept in `store`; the
    base and the best trial are chosen to begin with."""
    choices = [("base", "base        the model before fine-tuning")]
    for t in trials:
        o = t.overview
        if o.state == "complete" and t.store == store:
            mark = " ★ best" if o.number == best else ""
            ref = str(ModelRef.trial(o.number))
            choices.append((ref, f"{ref:<11} {o.method_kind or ''} "
                            f"{fmt.objective_title(objective)} "
                            f"{fmt.objective_value(objective, o.value)}{mark}"))
    chosen = {"base"} | ({str(ModelRef.trial(best))} if best is not None else set())
    return choices, chosen


def open_review(app: App, stores: tuple[Path, ...], experiment: str, what: str,
                trials: list[Trial], best: Trial | None, objective: str) -> None:
    """From a worker thread: `vote` in (or `stats` of) the experiment's newest review, in
    whichever of the stores holds it, or the new-review dialog when there is none yet or
    `what` is `new`. A new review is written to the store of the best trial: a review's models
    are trials of one store."""
    newest = source.newest_review(stores, experiment)
    rater = review.rater_name()
    if newest is not None and what in ("vote", "stats"):
        shown = (ReviewScreen(newest.store, newest.review, rater) if what == "vote"
                 else ReviewStatsScreen(newest.store, newest.review))
        app.call_from_thread(app.push_screen, shown)
        if (twins := newest.twin_words()) is not None:
            app.call_from_thread(app.notify, twins, timeout=6)
        return
    store = best.store if best is not None else stores[0]

    def opened(found: st.ReviewRecord | None) -> None:
        if found is not None:
            app.push_screen(ReviewScreen(store, found, rater))

    choices, chosen = model_choices(trials, store, best.number if best else None, objective)
    # a name finds one review in a store; none of the stores gets a second of a name
    taken = {r.name for p in stores for r in st.list_reviews(p)}
    dialog = NewReviewDialog(store, experiment, choices, chosen, taken)
    app.call_from_thread(app.push_screen, dialog, opened)
    if newest is None and what != "new":
        app.call_from_thread(app.notify, f"{experiment} has no review yet: make one here",
                             timeout=4)
    if len(stores) > 1:
        app.call_from_thread(app.notify, f"the new review goes to {store.name}, the store of "
                             "the best trial: its models are that store's trials", timeout=6)
