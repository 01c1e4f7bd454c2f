"""Chat with a trained model: multi-turn, streamed, stoppable, stored.

The model loads in a worker (the screen says so meanwhile); each reply streams in from a
thread worker that hands every piece to the screen with `call_from_thread`, so keys work while
the model writes. The model is sent the whole conversation each turn, and the state line says
so (ctrl+n forgets it). Commands in the input: /system TEXT, /temp X, /top_p X, /max N, /min N,
/seed N, /clear (as ctrl+n), /save (keep the last message as a probe), /probe N (send a saved
probe), /probes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Markdown, Static

from tunelab import store as st
from tunelab.engine.serve.chat import Settings
from tunelab.tui import keys
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.title import ScreenTitle


class ChatScreen(Screen):
    KEYS_OF = "chat"
    BINDINGS = keys.bindings(KEYS_OF, back="back")  # esc stops a reply first

    def __init__(self, store_path: Path, experiment: str, ref: str, probes: Path) -> None:
        super().__init__()
        self.store_path, self.experiment, self.ref = store_path, experiment, ref
        self.probes_file = probes
        self.messages: list[dict[str, str]] = []
        self.system = ""
        self.settings = Settings()
        self.model: Any = None
        self.tokenizer: Any = None
        self.template = "auto"
        self.stop_event = threading.Event()
        self.generating = False
        self.chat_id = uuid.uuid4().hex
        self.created = time.time()

    def compose(self) -> ComposeResult:
        yield ScreenTitle(id="title")
        yield Static(id="state")
        yield VerticalScroll(id="log")
        yield Input(placeholder="loading the model…", id="message", disabled=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"chat · {self.experiment} · {self.ref}"  # after the app's name
        self._state(f"loading {self.ref}…")
        self._load()

    def _state(self, text: str) -> None:
        """`trial:0 ready · remembers 2 turns (ctrl+n forgets)`, and the settings under it."""
        turns = sum(m["role"] == "user" for m in self.messages)
        memory = (f" · remembers {turns} turn{'s' if turns != 1 else ''} (ctrl+n forgets)"
                  if turns else "")
        self.query_one("#state", Static).update(
            f"{text}{memory}\n[dim]{self.settings.describe()}[/]")

    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load(self) -> None:
        from tunelab.engine.serve.refs import ModelPool, resolve

        try:
            source = resolve(self.store_path, self.experiment, self.ref)
            model, tokenizer = ModelPool().get(source)
        except Exception as error:  # noqa: BLE001 - shown to the user, the screen stays
            self.app.call_from_thread(self._failed, f"cannot load {self.ref}: {error}")
            return
        # a dpo stage's own file has no [data]: its parent's template, else the model's own
        data = source.experiment.data
        self.template = data.template if data is not None else "auto"
        self.app.call_from_thread(self._loaded, model, tokenizer, source.ref)

    def _failed(self, why: str) -> None:
        self.query_one("#message", Input).placeholder = "no model to talk to: esc leaves"
        self.query_one("#state", Static).update(Text(why, style="red"))

    def _loaded(self, model: Any, tokenizer: Any, ref: str) -> None:
        self.model, self.tokenizer, self.ref = model, tokenizer, ref
        box = self.query_one("#message", Input)
        box.disabled = False
        box.placeholder = "message (Enter to send; /help for commands)"
        box.focus()
        self._state(f"{ref} ready")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text or self.model is None:
            return
        if text.startswith("/"):
            self._command(text)
            return
        if self.generating:
            self.notify("still writing: Esc stops it", timeout=2)
            return
        self._send(text)

    def _send(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self.query_one("#log").mount(Markdown(f"**you** {text}", classes="user"))
        self._reply()

    def _command(self, text: str) -> None:
        name, _, arg = text[1:].partition(" ")
        try:
            if name == "system":
                self.system = arg
                self.notify("system prompt set")
            elif name in {"temp", "temperature"}:
                self.settings = replace(self.settings, temperature=float(arg))
            elif name == "top_p":
                self.settings = replace(self.settings, top_p=float(arg))
            elif name == "max":
                self.settings = replace(self.settings, max_new_tokens=int(arg))
            elif name == "min":
                self.settings = replace(self.settings, min_new_tokens=int(arg))
            elif name == "seed":
                self.settings = replace(self.settings, seed=int(arg) if arg else None)
            elif name == "clear":
                self.action_new()
            elif name == "save":
                probes = self._probes()
                last = next((m["content"] for m in reversed(self.messages)
                             if m["role"] == "user"), None)
                if last:
                    probes.append(last)
                    self.probes_file.parent.mkdir(parents=True, exist_ok=True)
                    self.probes_file.write_text(json.dumps(probes, indent=1))
                    self.notify(f"saved as probe {len(probes)}")
            elif name == "probes":
                listing = "\n".join(f"{k}. {p}" for k, p in enumerate(self._probes(), 1))
                self.notify(listing or "no saved probes: /save keeps your last message",
                            timeout=8)
            elif name == "probe":
                self._send(self._probes()[int(arg) - 1])
            else:
                self.notify("commands: /system TEXT, /temp X, /top_p X, /max N, /min N, /seed N, "
                            "/clear, /save, /probes, /probe N", timeout=8)
        except (ValueError, IndexError):
            self.notify(f"cannot read {text!r}", severity="warning")
        self._state(f"{self.ref} ready")

    def _probes(self) -> list[str]:
        if self.probes_file.exists():
            return list(json.loads(self.probes_file.read_text()))
        return []

    def _reply(self) -> None:
        widget = Markdown("…", classes="assistant")
        self.query_one("#log").mount(widget)
        self.stop_event.clear()
        self.generating = True
        self._state(f"{self.ref} writing… (Esc stops)")
        self._stream(widget)

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _stream(self, widget: Markdown) -> None:
        from tunelab.engine.serve.chat import stream_reply

        conversation = ([{"role": "system", "content": self.system}] if self.system else [])
        conversation += self.messages
        text = ""
        try:
            for piece in stream_reply(self.model, self.tokenizer, conversation, self.settings,
                                      self.stop_event, self.template):
                text += piece
                self.app.call_from_thread(widget.update, text)
        except Exception as error:  # noqa: BLE001 - shown in the conversation
            text += f"\n\n*generation failed: {error}*"
            self.app.call_from_thread(widget.update, text)
        self.app.call_from_thread(self._finished, text)

    def _finished(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
        self.generating = False
        self.query_one("#log", VerticalScroll).scroll_end(animate=False)
        self._state(f"{self.ref} ready")
        self._save()

    @work(thread=True, exit_on_error=False, group="save")
    def _save(self) -> None:
        with st.Spool(self.store_path, tag="chat") as spool:
            spool.write([st.ChatRow(
                id=self.chat_id, experiment=self.experiment, model_ref=self.ref,
                system=self.system, messages=json.dumps(self.messages),
                settings=json.dumps(self.settings.__dict__), created_at=self.created,
                updated_at=time.time())])

    def action_back(self) -> None:
        """Esc stops a reply; with no reply under way it goes back, out of the app when the
        chat is its only screen (`tunelab chat`)."""
        if self.generating:
            self.stop_event.set()
        else:
            self.app.back()  # type: ignore[attr-defined]

    def action_new(self) -> None:
        """A new conversation: the model forgets this one (it stays stored)."""
        if self.generating:
            self.notify("still writing: esc stops it", timeout=2)
            return
        self.messages.clear()
        self.query_one("#log").remove_children()
        self.chat_id = uuid.uuid4().hex
        self.created = time.time()
        self._state(f"{self.ref} ready · a new conversation")

    def action_regenerate(self) -> None:
        if self.generating or not self.messages or self.messages[-1]["role"] != "assistant":
            return
        self.messages.pop()
        log = self.query_one("#log")
        if log.children:
            log.children[-1].remove()
        self._reply()
