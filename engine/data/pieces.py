"""Token ids of many prefixes of a text for about the price of tokenizing the text once.

Rendering an example needs the ids of several prefixes of its text (every prompt and every
answer ends one), and tokenizing each prefix on its own reads the start of the text again and
again. A fast tokenizer cuts a text at its added tokens (`<|im_start|>`, `<|im_end|>` …) before
anything else, and then normalises, pre-tokenizes and encodes each piece between them on its own.
So the ids of a prefix are the ids of the whole pieces before its end, plus those of the part of
the piece its end falls in; each distinct piece is tokenized once (a chat template's
`assistant\n` or a repeated system prompt once per batch, not once per row).

That holds when no step depends on where a piece sits: the added tokens do not take in the
whitespace beside them (lstrip, rstrip, single_word) and are matched on the raw text, and no
pre-tokenizer or normaliser treats the first piece differently (Metaspace's prepend_scheme
"first", as Llama's tokenizer has). A tokenizer is checked for that by its configuration, and
then on its first rows against tokenizing every prefix whole; one that fails either is
tokenized prefix by prefix (`Splitter.of` gives None).
"""

from __future__ import annotations

import bisect
import json
import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Ids:
    """The ids of a prefix (render's _assemble reads `.ids`, as of a tokenizers Encoding)."""

    ids: list[int]


class Splitter:
    """The added tokens of one tokenizer, found the way the tokenizer finds them."""

    def __init__(self, backend: Any, added: dict[str, int]) -> None:
        self.backend = backend
        self.added = added
        # leftmost-longest, as the tokenizer's own matcher: at one place the longest token wins
        # one group: split gives the text between tokens and the tokens, alternately
        self.pattern = re.compile("(" + "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))
                                  + ")")
        self.checked = False  # compared with whole-prefix tokenization on a first batch

    @staticmethod
    def of(tokenizer: Any) -> Splitter | None:
        found = _SPLITTERS.get(tokenizer, False)
        if found is False:
            found = _build(tokenizer)
            _SPLITTERS[tokenizer] = found
        return found  # type: ignore[return-value]

    def encode(self, texts: Sequence[str], wanted: Sequence[Sequence[int]]) -> list[dict[int, Ids]]:
        """For each text, the ids of its prefix ending at each of `wanted` (ascending ends)."""
        todo: dict[str, int] = {}  # distinct strings to tokenize -> their place in the batch
        plans = [self._plan(text, ends, todo) for text, ends in zip(texts, wanted, strict=True)]
        encoded = self._encode(list(todo))
        out: list[dict[int, Ids]] = []
        for plan in plans:
            found: dict[int, Ids] = {}
            ids: list[int] = []  # of the whole pieces so far
            for end, whole, cut in plan:
                for part in whole:
                    ids.extend(encoded[part] if part >= 0 else (-1 - part,))
                found[end] = Ids(ids + encoded[cut] if cut is not None else list(ids))
            out.append(found)
        return out

    def tokenize_once(self, rows: Sequence[tuple[str, Sequence[tuple[int, int, bool]]]]
                      ) -> list[tuple[list[int], list[int]] | None]:
        """For each (text, turns): the ids of the whole text, each distinct piece tokenized once
        for the batch, and the mask of its trained turns. At a turn's boundary inside a piece,
        the text before it is tokenized alone too (a chat template's `assistant\\n`: once per
        batch) and must be the start of the piece's ids; where it is not (the tokenizer merges
        across the boundary), None: that row is rendered turn by turn."""
        todo: dict[str, int] = {}
        layouts = [self._layout(text, turns, todo) for text, turns in rows]
        encoded = self._encode(list(todo))
        return [self._whole(layout, encoded) for layout in layouts]

    def _layout(self, text: str, turns: Sequence[tuple[int, int, bool]], todo: dict[str, int]
                ) -> tuple[list[int], list[tuple[int, int, int, int | None]]] | None:
        """(the pieces, each as in _plan; the trained turns' boundaries, each as the piece it
        falls in or starts, and the cut of that piece before it) or None (a cut in an added token)."""
        pieces: list[int] = []
        starts: list[int] = []
        at = 0
        for n, part in enumerate(self.pattern.split(text)):  # text, token, text, … (in C)
            if part:
                starts.append(at)
                pieces.append(-1 - self.added[part] if n % 2 else todo.setdefault(part, len(todo)))
                at += len(part)
        starts.append(at)
        bounds: list[tuple[int, int, int, int | None]] = []
        for before, upto, trained in turns:
            if not trained:
                continue
            for end in (before, upto):
                k = bisect.bisect_right(starts, end) - 1
                if starts[k] == end:  # between pieces: the ids so far are those of whole pieces
                    bounds.append((end, k, 0, None))
                elif pieces[k] < 0:
                    return None
                else:
                    bounds.append((end, k, pieces[k], todo.setdefault(text[starts[k]:end], len(todo))))
        return pieces, bounds

    def _whole(self, layout: Any, encoded: list[list[int]]) -> tuple[list[int], list[int]] | None:
        if layout is None:
            return None
        pieces, bounds = layout
        ids: list[int] = []
        first: list[int] = []  # the place of each piece's first id
        for piece in pieces:
            first.append(len(ids))
            if piece >= 0:
                ids.extend(encoded[piece])
            else:
                ids.append(-1 - piece)
        first.append(len(ids))
        places = []
        for _, k, piece, cut in bounds:
            if cut is None:
                places.append(first[k])
                continue
            head = encoded[cut]
            if encoded[piece][:len(head)] != head:
                return None  # a merge crosses the boundary
            places.append(first[k] + len(head))
        mask = [0] * len(ids)
        for start, stop in zip(places[::2], places[1::2], strict=True):
            mask[start:stop] = [1] * (stop - start)
        return ids, mask

    def _plan(self, text: str, ends: Sequence[int],
              todo: dict[str, int]) -> list[tuple[int, list[int], int | None]]:
        """For each end: the whole pieces since the previous end, and the part of a piece the end
        falls in (None when it falls between pieces). A piece is the place of its string in the
        batch, or an added token's id as -1 - id."""
        pieces: list[tuple[int, int, int]] = []  # (start, stop, part)
        at = 0
        for n, part in enumerate(self.pattern.split(text)):  # text, token, text, … (in C)
            if not part:
                continue
            stop = at + len(part)
            pieces.append((at, stop, -1 - self.added[part] if n % 2 else todo.setdefault(part, len(todo))))
            at = stop
        plan = []
        i = 0
        for end in ends:
            whole = []
            while i < len(pieces) and pieces[i][1] <= end:
                whole.append(pieces[i][2])
                i += 1
            cut = None
            if i < len(pieces) and pieces[i][0] < end:  # inside a piece (or an added token): that part alone
                cut = todo.setdefault(text[pieces[i][0]:end], len(todo))
            plan.append((end, whole, cut))
        return plan

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        fast = getattr(self.backend, "encode_batch_fast", None)  # no character offsets: not needed
        with unpadded(self.backend):
            found = (fast or self.backend.encode_batch)(texts, add_special_tokens=False)
        return [e.ids for e in found]


@contextmanager
def unpadded(backend: Any) -> Iterator[None]:
    """The Rust tokenizer without padding or truncation, as it was after.

    transformers leaves the padding (and truncation) of its last call set on the Rust tokenizer,
    and a tokenizer saved after a padded call keeps it: after a batched generate, examples came
    back left-padded to the longest of their batch. Neither is wanted when rendering."""
    padding, truncation = backend.padding, backend.truncation
    if padding is not None:
        backend.no_padding()
    if truncation is not None:
        backend.no_truncation()
    try:
        yield
    finally:
        if padding is not None:
            backend.enable_padding(**padding)
        if truncation is not None:
            backend.enable_truncation(**truncation)


_SPLITTERS: weakref.WeakKeyDictionary[Any, Splitter | None] = weakref.WeakKeyDictionary()


def _build(tokenizer: Any) -> Splitter | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    tokens = backend.get_added_tokens_decoder()
    config = json.loads(backend.to_str())
    if any(t.lstrip or t.rstrip or t.single_word or (t.normalized and config.get("normalizer"))
           for t in tokens.values()):
        return None
    stages = json.dumps([config.get("normalizer"), config.get("pre_tokenizer")])
    if '"prepend_scheme": "first"' in stages:
        return None
    added = {t.content: i for i, t in tokens.items() if t.content}
    if not added:
        return None  # nothing to cut at: every prefix is one piece, as tokenizing it whole
    return Splitter(backend, added)


def forget(tokenizer: Any) -> None:
    """This tokenizer is tokenized prefix by prefix from now on (it failed the first check)."""
    _SPLITTERS[tokenizer] = None
