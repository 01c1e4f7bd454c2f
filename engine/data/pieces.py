"""Token ids of many prefixes of a text for about the price of tokenizing the text once.

Rendering an example needs the ids of several prefixes of its text (every prompt and every
answer ends one), and tokenizing each prefix on its own reads the start of the text again and
again. A fast tokenizer cuts a text at its added tokens (`<|im_start|>`, `<|im_end|>` …) before
anything else, and then normalises, pre-tokenizes and encodes each piece between them on its own.
So the ids of a prefix are the ids of the whole pieces before its end, plus those of the part of
the piece its end falls in; each distinct piece is tokenized once (a chat template's
`assistant\n` or a repeated system prompt once per batch, not once per row).

To render a row for training (`Splitter.tokenize_once`: the preparation and the trainer), its
whole text is tokenized, once, in one batch call for many rows (the texts whole cost the
tokenizer less than their pieces apart: one string a row). The added tokens' ids say where each
piece starts among the ids, so each turn's boundary is found by its characters; at a boundary
inside a piece, the ids must start with those of the piece's text before it tokenized alone.

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
        """For each (text, turns): the ids of the whole text, tokenized whole in one batch, and the
        mask of its trained turns. The added tokens' ids mark where each piece starts among the
        ids. At a turn's boundary inside a piece, the text before it in that piece is tokenized
        alone too (a chat template's `assistant\\n`: once per batch) and must be the start of the
        piece's ids; where it is not (the tokenizer merges across the boundary), None: that row
        is rendered turn by turn."""
        heads: dict[str, int] = {}
        layouts = [self._layout(text, turns, heads) for text, turns in rows]
        encoded = self._encode([text for text, _ in rows] + list(heads))
        head_ids = encoded[len(rows):]
        return [self._whole(layout, ids, head_ids) for layout, ids in zip(layouts, encoded, strict=False)]

    def _layout(self, text: str, turns: Sequence[tuple[int, int, bool]], heads: dict[str, int]
                ) -> tuple[list[int], list[tuple[int, int | None]]] | None:
        """(the ids of the text's added tokens in order; each trained turn's boundary as a place
        and a head) or None (a boundary inside an added token). A place p >= 0 is the first id
        of the text piece after p added tokens, and the head (its place in `heads`) the text of
        that piece before the boundary, or None; p < 0 is added token number -1 - p itself (the
        end of the text counts as one more, after the last)."""
        added: list[int] = []
        starts: list[int] = []  # of each piece, and the end of the text
        places: list[int] = []  # of each piece, as above
        at = 0
        for n, part in enumerate(self.pattern.split(text)):  # text, token, text, … (in C)
            if part:
                starts.append(at)
                places.append(-1 - len(added) if n % 2 else len(added))
                if n % 2:
                    added.append(self.added[part])
                at += len(part)
        starts.append(at)
        places.append(-1 - len(added))
        bounds: list[tuple[int, int | None]] = []
        for before, upto, trained in turns:
            if not trained:
                continue
            for end in (before, upto):
                k = bisect.bisect_right(starts, end) - 1
                if starts[k] == end:  # between pieces: the ids so far are those of whole pieces
                    bounds.append((places[k], None))
                elif places[k] < 0:
                    return None
                else:
                    bounds.append((places[k], heads.setdefault(text[starts[k]:end], len(heads))))
        return added, bounds

    @staticmethod
    def _whole(layout: Any, ids: list[int], head_ids: list[list[int]]
               ) -> tuple[list[int], list[int]] | None:
        if layout is None:
            return None
        added, bounds = layout
        # each added token where the text has it: a text piece that gave one of their ids too
        # (a vocabulary that spells an added token out) would shift them, so the counts must agree
        at: list[int] = []
        try:
            for token in added:
                at.append(ids.index(token, at[-1] + 1 if at else 0))
        except ValueError:  # an added token the text has is not among the ids: not a cut place
            return None
        if any(ids.count(token) != added.count(token) for token in set(added)):
            return None
        at.append(len(ids))  # the end of the text
        places = []
        for place, head in bounds:
            if place < 0:
                places.append(at[-1 - place])
                continue
            start = at[place - 1] + 1 if place else 0  # the piece's first id
            want = head_ids[head] if head is not None else []
            if ids[start:start + len(want)] != want:
                return None  # a merge crosses the boundary
            places.append(start + len(want))
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
        encode = getattr(self.backend, "encode_batch_fast", None) or self.backend.encode_batch  # no offsets
        with unpadded(self.backend):
            return [e.ids for texts in chunked(texts) for e in encode(texts, add_special_tokens=False)]


ENCODE_CHUNK = 2000  # texts a call: 20,000 in one call took a quarter more CPU than in ten


def chunked(texts: list[str]) -> Iterator[list[str]]:
    """The texts in calls of ENCODE_CHUNK: a trainer renders a whole split in one batch, and the
    Rust tokenizer is slower on one very large batch than on the same texts in a few."""
    for start in range(0, len(texts), ENCODE_CHUNK):
        yield texts[start:start + ENCODE_CHUNK]


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
