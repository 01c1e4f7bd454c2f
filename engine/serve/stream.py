"""Text from tokens as they are generated, one token at a time, for the chat and the arena.

transformers' TextIteratorStreamer holds text back until a word ends (a space or a newline), so
the first words of a reply reach the screen a word late; and decoding a row's whole reply at
every step (as the arena did) costs time that grows with the reply. Here each new token costs
one decode of a short window: the text of the tokens since the last piece handed out, with a
few tokens before them for context (a tokenizer may write a token differently at the start of
a text: SentencePiece drops a leading space). A piece is held back only while it ends in a
broken character (a byte-level token that is half of a multi-byte letter), and the pieces
joined are exactly the decoded reply.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

_BROKEN = "\ufffd"  # what decoding shows for an incomplete UTF-8 sequence


class TokenText:
    """One reply's text, grown a token at a time (the incremental decoding of TGI and vLLM)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.prefix = 0  # where the window of context starts
        self.read = 0  # the tokens before this are handed out as text
        self.text = ""

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def add(self, token: int) -> str:
        """The new text this token completes ('' while a character is still broken)."""
        self.tokens.append(token)
        before = self._decode(self.tokens[self.prefix:self.read])
        after = self._decode(self.tokens[self.prefix:])
        if len(after) <= len(before) or after.endswith(_BROKEN):
            return ""
        piece = after[len(before):]
        self.prefix, self.read = self.read, len(self.tokens)
        self.text += piece
        return piece

    def rest(self) -> str:
        """At the end: whatever is still held back (a reply that ends mid-character)."""
        whole = self._decode(self.tokens)
        piece = whole[len(self.text):] if whole.startswith(self.text) else ""
        self.text += piece
        return piece


class PieceStreamer:
    """A `generate` streamer for one row: the pieces of its reply, as an iterator (the first
    call to `put` hands over the prompt, which is skipped)."""

    def __init__(self, tokenizer: Any, eos: set[int]) -> None:
        self.reply = TokenText(tokenizer)
        self.eos = eos
        self.out: queue.Queue[str | None] = queue.Queue()
        self.prompt_seen = False
        self.ended = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if token in self.eos:
                continue
            piece = self.reply.add(token)
            if piece:
                self.out.put(piece)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            rest = self.reply.rest()
            if rest:
                self.out.put(rest)
            self.out.put(None)

    def __iter__(self) -> Iterator[str]:
        while (piece := self.out.get()) is not None:
            yield piece


def end_tokens(kwargs: dict[str, Any]) -> set[int]:
    """The end-of-sequence ids of a `generate` call's arguments."""
    eos = kwargs.get("eos_token_id")
    if eos is None:
        return set()
    return set(eos if isinstance(eos, list) else [eos])
