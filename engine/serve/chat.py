"""Streaming replies for the chat screen: the conversation rendered with the template the
model was trained with, tokens handed out as they are generated, stoppable at any time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    min_new_tokens: int = 0  # the end-of-sequence token is held back until this many
    seed: int | None = None

    def describe(self) -> str:
        seed = f" · seed {self.seed}" if self.seed is not None else ""
        return (f"temperature {self.temperature:g} · top-p {self.top_p:g} · "
                f"max {self.max_new_tokens} tokens{seed}")


def prompt_for(messages: list[dict[str, str]], tokenizer: Any, template_name: str = "auto") -> str:
    """The conversation so far, opened for the assistant's next turn, as in training."""
    from tunelab.engine.data import render as chat_render

    template = chat_render.template_text(template_name, tokenizer)
    found = chat_render.generation_prompt(
        {"messages": [*messages, {"role": "assistant", "content": ""}]}, tokenizer, template)
    assert found is not None
    return found[0]


def generation_kwargs(tokenizer: Any, settings: Settings, stop: threading.Event) -> dict[str, Any]:
    """The `generate` arguments for these settings; generation ends early once `stop` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return stop.is_set()

    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    sample = settings.temperature > 0
    kwargs = {"max_new_tokens": settings.max_new_tokens,
              "min_new_tokens": settings.min_new_tokens,
              "do_sample": sample, "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id,
              "stopping_criteria": StoppingCriteriaList([Stop()])}
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    return kwargs


def generate_in_thread(model: Any, kwargs: dict[str, Any], streamer: Any) -> Callable[[], None]:
    """Starts `model.generate` in a thread that feeds `streamer`; returns a function that waits
    for the thread and re-raises its error, if any, in the caller's thread."""
    import torch

    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.no_grad():
                model.generate(**kwargs, streamer=streamer)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True, name="tunelab-generate")
    worker.start()

    def finish() -> None:
        worker.join()
        if errors:
            raise errors[0]

    return finish


def stream_reply(model: Any, tokenizer: Any, messages: list[dict[str, str]], settings: Settings,
                 stop: threading.Event, template_name: str = "auto") -> Iterator[str]:
    """Yields pieces of the reply as the model writes them; `stop.set()` ends it early."""
    from tunelab.engine.serve.stream import PieceStreamer, end_tokens

    text = prompt_for(messages, tokenizer, template_name)
    device = next(model.parameters()).device
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
    kwargs = generation_kwargs(tokenizer, settings, stop)
    streamer = PieceStreamer(tokenizer, end_tokens(kwargs))
    finish = generate_in_thread(model, {**inputs, **kwargs}, streamer)
    yield from streamer
    finish()
