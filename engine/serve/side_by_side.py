"""Two models answering at once, for the arena: each side keeps its own conversation, rendered
with the template its model was trained with, and both replies stream at the same time.

Why two ways to run them:
- **One base, two LoRA adapters** (or one adapter and the bare base): one copy of the base
  carries both adapters, and a single `generate` call runs a batch of two rows, one per side,
  with peft's mixed-adapter batches (`adapter_names=[left, right]`, `"__base__"` for the bare
  base). peft's *active* adapter is global state on the model: two threads each generating with
  `set_adapter` on the same PeftModel would switch each other's adapter mid-reply. A batch of
  two avoids that, uses one copy of the weights, and makes both sides advance token by token in
  lockstep (so the pace of the text does not tell the sides apart). A small streamer splits the
  batch back into two texts.
- **Anything else** (full fine-tunes, different bases, prefix tuning or DoRA, which peft cannot
  mix in one batch): two separate models, each generating in its own thread. Each has its own
  weights, so nothing is shared between the threads.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.engine.serve.chat import Settings, generate_in_thread, generation_kwargs, prompt_for
from tunelab.engine.serve.refs import ModelPool, ModelSource, adapter_name
from tunelab.engine.serve.stream import TokenText, end_tokens

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Side:
    model: Any
    tokenizer: Any
    template: str  # the experiment's data.template: the prompt is rendered as in training
    adapter: str | None  # its adapter's name in a shared batch; None for a model of its own


@dataclass(frozen=True)
class Pair:
    sides: tuple[Side, Side]
    shared: bool  # one base model, one batch of two rows


def _mixable(source: ModelSource) -> bool:
    """The bare base, or a plain LoRA adapter: what peft can run in a mixed batch."""
    if source.weights is None:
        return True
    if not source.adapter:
        return False
    config = json.loads((Path(source.weights) / "adapter_config.json").read_text())
    return config.get("peft_type") == "LORA" and not config.get("use_dora")


def load_pair(left: ModelSource, right: ModelSource) -> Pair:
    """Loads the two models: on one shared base when peft can batch them, else separately."""
    from tunelab.engine.train import model as models

    sources = (left, right)
    if (left.base == right.base and any(s.adapter for s in sources)
            and all(_mixable(s) for s in sources)):
        pool = ModelPool()
        sides = []
        for s in sources:
            if s.weights is None:
                sides.append((models.load_tokenizer(s.base, s.experiment), BASE_ADAPTER))
            else:
                sides.append((pool.get(s)[1], adapter_name(s)))
        holder = pool.get(next(s for s in sources if s.adapter))[0]
        holder.eval()  # peft refuses adapter_names in training mode
        found = tuple(Side(holder, tok, s.experiment.dataset.template, name)
                      for s, (tok, name) in zip(sources, sides, strict=True))
        return Pair((found[0], found[1]), shared=True)
    # A pool each: two adapters of kinds peft cannot batch must not share one PeftModel.
    own = [(*ModelPool().get(s), s.experiment.dataset.template) for s in sources]
    return Pair((Side(own[0][0], own[0][1], own[0][2], None),
                 Side(own[1][0], own[1][1], own[1][2], None)), shared=False)


class _RowsStreamer:
    """Receives the batch's new tokens each step (shape [2]) and puts (row, text so far) on a
    queue; a row's text ends at its end-of-sequence token (generate pads it after that). Each
    token is decoded once, in a short window (stream.TokenText), not the whole reply again."""

    def __init__(self, tokenizers: list[Any], eos: set[int], out: queue.Queue) -> None:
        self.replies = [TokenText(tokenizer) for tokenizer in tokenizers]
        self.eos, self.out = eos, out
        self.done = [False for _ in tokenizers]
        self.prompt_seen = False
        self.ended = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call hands over the prompt
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if self.done[row]:
                continue
            if token in self.eos:
                self.done[row] = True
                continue
            if self.replies[row].add(token):
                self.out.put((row, self.replies[row].text))

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            for row, reply in enumerate(self.replies):
                if reply.rest():
                    self.out.put((row, reply.text))
                self.out.put((row, None))


def _merged(out: queue.Queue, producers: int) -> Iterator[tuple[str, str]]:
    """(text A, text B) so far, each time one of them grew; what piled up meanwhile is taken at
    once, so a slow reader (the screen) gets the newest texts rather than falling behind."""
    texts, finished = ["", ""], 0
    while finished < producers:
        item = out.get()
        while True:
            row, text = item
            if text is None:
                finished += 1
            else:
                texts[row] = text
            try:
                item = out.get_nowait()
            except queue.Empty:
                break
        yield texts[0], texts[1]


def stream_pair(pair: Pair, conversations: tuple[list[dict[str, str]], list[dict[str, str]]],
                settings: Settings, stop: threading.Event) -> Iterator[tuple[str, str]]:
    """Yields (reply A, reply B) as both grow, each side answering its own conversation;
    `stop.set()` ends both. The last pair yielded is the whole of both replies."""
    out: queue.Queue = queue.Queue()
    if pair.shared:
        yield from _stream_batch(pair, conversations, settings, stop, out)
        return
    from tunelab.engine.serve.chat import stream_reply

    errors: list[BaseException] = []

    def run(row: int) -> None:
        side, text = pair.sides[row], ""
        try:
            for piece in stream_reply(side.model, side.tokenizer, conversations[row], settings,
                                      stop, side.template):
                text += piece
                out.put((row, text))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)
        out.put((row, None))

    threads = [threading.Thread(target=run, args=(row,), daemon=True,
                                name=f"tunelab-arena-{row}") for row in (0, 1)]
    for t in threads:
        t.start()
    yield from _merged(out, 2)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _stream_batch(pair: Pair, conversations: tuple[list[dict[str, str]], list[dict[str, str]]],
                  settings: Settings, stop: threading.Event,
                  out: queue.Queue) -> Iterator[tuple[str, str]]:
    import torch

    model = pair.sides[0].model
    ids = [side.tokenizer(prompt_for(conv, side.tokenizer, side.template),
                          add_special_tokens=False)["input_ids"]
           for side, conv in zip(pair.sides, conversations, strict=True)]
    first = pair.sides[0].tokenizer
    width = max(len(x) for x in ids)
    pad = first.pad_token_id
    # Left padding: both rows continue from the right end; the mask hides the padding.
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    device = next(model.parameters()).device
    kwargs = generation_kwargs(first, settings, stop)
    streamer = _RowsStreamer([s.tokenizer for s in pair.sides], end_tokens(kwargs), out)
    finish = generate_in_thread(model, {
        **kwargs, "input_ids": input_ids.to(device), "attention_mask": mask.to(device),
        "adapter_names": [s.adapter for s in pair.sides]}, streamer)
    yield from _merged(out, 2)
    finish()
