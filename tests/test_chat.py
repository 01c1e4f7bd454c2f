"""Chat with a trained tiny model: streamed in pieces, responsive while it writes, stored."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from tunelab import store as st
from tunelab.engine.serve.chat import Settings, stream_reply
from tunelab.engine.serve.refs import ModelPool, resolve


def test_a_reply_streams_in_pieces_and_stops_when_asked(trained_store: Path) -> None:
    model, tokenizer = ModelPool().get(resolve(trained_store, "tiny", "best"))
    messages = [{"role": "user", "content": "What is 3 plus 4?"}]
    pieces = list(stream_reply(model, tokenizer, messages, Settings(temperature=0, max_new_tokens=12),
                               threading.Event()))
    assert len([p for p in pieces if p]) > 1
    stop = threading.Event()
    stop.set()  # asked to stop before it starts: at most the first token comes
    stopped = list(stream_reply(model, tokenizer, messages,
                                Settings(temperature=1.0, max_new_tokens=200, seed=1), stop))
    assert len([p for p in stopped if p]) <= 1  # the stop is checked after every token


def test_adapters_on_one_base_share_it(trained_store: Path) -> None:
    pool = ModelPool()
    base, _ = pool.get(resolve(trained_store, "tiny", "base"))
    again, _ = pool.get(resolve(trained_store, "tiny", "base"))
    assert base is again  # loaded once per session


async def test_two_turns_stream_stay_responsive_and_are_stored(trained_store: Path,
                                                               tmp_path: Path,
                                                               monkeypatch) -> None:  # noqa: ANN001
    from textual import events
    from textual.widgets import Input, Markdown

    from tunelab.engine.serve import chat as chat_engine
    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.chat import ChatScreen

    # The first reply is held after its first piece until the test has seen the screen answer
    # keys mid-stream: "still writing" is a state the test waits in, not a race against a
    # model that may finish in milliseconds. The model and the streaming are the real ones.
    gate = threading.Event()
    real_stream = chat_engine.stream_reply

    def held_stream(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        pieces = real_stream(*args, **kwargs)
        yield next(pieces, "")
        gate.wait(timeout=120)
        yield from pieces

    monkeypatch.setattr(chat_engine, "stream_reply", held_stream)
    app = TunelabApp([trained_store],
                     lambda: ChatScreen(trained_store, "tiny", "best", tmp_path / "probes.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()  # the model is loaded
        screen = app.screen
        box = screen.query_one("#message", Input)
        assert not box.disabled
        for command in ("/temp 1.0", "/max 300", "/min 300", "/seed 3"):  # a long reply
            box.value = command
            await pilot.press("enter")
        for turn, text in enumerate(["What is 3 plus 4?", "What is 9 minus 2?"]):
            box.value = text
            await pilot.press("enter")
            if turn == 0:
                # Mid-stream the app still handles keys: typing lands in the input while the
                # reply is being written. (The keys are posted as events and the test waits
                # for them to land.)
                for key in "hi":
                    app.post_message(events.Key(key, key))
                for _ in range(6000):  # a deadline of a minute, for a busy machine
                    if box.value == "hi":
                        break
                    await asyncio.sleep(0.01)
                assert box.value == "hi" and screen.generating
                box.value = "/min 0"
                await pilot.press("escape")  # and Esc stops the reply
                gate.set()
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert not screen.generating
                await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
        replies = [w for w in screen.query(Markdown) if "assistant" in w.classes]
        assert len(replies) == 2
    assert len(screen.messages) == 4
    st.flush_orphans(trained_store)
    rows = st.query(trained_store, "select model_ref, messages from chats").rows
    assert rows and rows[-1][0].startswith("trial:")
    assert len(json.loads(rows[-1][1])) == 4
