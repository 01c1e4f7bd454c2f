"""Prefix ids from pieces (engine/data/pieces.py): the preparation and the trainer tokenize each
text about once, and get exactly the ids that tokenizing every prefix whole gives, for the four
kinds of tokenizer the prompt-token tests use; a tokenizer for which the pieces would differ is
tokenized prefix by prefix."""

from __future__ import annotations

from typing import Any

import pytest
from test_data_prompt_tokens import KINDS, _build, _conversations

from tunelab.engine.data import pieces
from tunelab.engine.data import render as chat_render


def _facts(rendered: list[Any]) -> list[tuple[list[int], list[int], int, int]]:
    return [(r.input_ids, r.trained, r.split_answers, r.inexact_prompts) for r in rendered]


@pytest.mark.parametrize("kind", KINDS)
def test_pieces_give_the_ids_of_whole_prefixes(kind: str) -> None:
    tokenizer = _build(kind)
    template = chat_render.template_text("auto", tokenizer)
    rows = _conversations(120, seed=3)
    whole = chat_render.render_many(rows, tokenizer, template, offsets=True)  # every prefix whole
    fast = chat_render.render_many(rows, tokenizer, template, offsets=False)
    assert _facts(fast) == _facts(whole)
    assert any(r.split_answers for r in whole) or kind != "scratch"  # the boundary case is in there


def test_tokenizers_that_read_a_piece_by_its_place_are_not_cut() -> None:
    """Metaspace with prepend_scheme "first" marks only the text's first piece: pieces tokenized
    alone would each get the mark."""
    assert pieces.Splitter.of(_build("metaspace")) is None
    assert pieces.Splitter.of(_build("chatml")) is not None


def test_a_tokenizer_whose_pieces_differ_falls_back_on_its_first_rows() -> None:
    """The check on the first batch catches what the configuration does not show: a splitter
    forced onto the Metaspace tokenizer gives other ids for a second exchange, so it is dropped and
    every row is tokenized prefix by prefix."""
    tokenizer = _build("metaspace")
    backend = tokenizer.backend_tokenizer
    added = {t.content: i for i, t in backend.get_added_tokens_decoder().items()}
    forced = pieces.Splitter(backend, added)
    pieces._SPLITTERS[tokenizer] = forced
    rows = _conversations(40, seed=4)
    template = chat_render.template_text("auto", tokenizer)
    fast = chat_render.render_many(rows, tokenizer, template, offsets=False)
    assert pieces.Splitter.of(tokenizer) is None
    assert _facts(fast) == _facts(chat_render.render_many(rows, tokenizer, template, offsets=True))


@pytest.mark.parametrize("kind", KINDS)
def test_each_text_is_tokenized_once_and_only_a_row_with_a_merge_across_a_turn_goes_turn_by_turn(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = _build(kind)
    template = chat_render.template_text("auto", tokenizer)
    rows = _conversations(120, seed=5)
    sent: list[str] = []
    encode = pieces.Splitter._encode
    monkeypatch.setattr(pieces.Splitter, "_encode",
                        lambda self, texts: sent.extend(texts) or encode(self, texts))
    rendered = chat_render.render_many(rows, tokenizer, template, offsets=False)
    again = [r for r in rendered if r.turn_by_turn]
    if kind == "metaspace":  # a tokenizer that reads a piece by its place: every prefix alone
        assert len(again) == len(rows)
    elif kind in ("chatml", "llama3"):
        assert not again  # byte-level BPE splits before a word after a newline
        # each text once: no character is sent to the tokenizer twice but the shared openings
        assert sum(map(len, sent)) <= sum(len(r.text) for r in rendered)
    else:  # the plain template puts the answer right after "?\n", which this tokenizer merges
        assert again and all(r.split_answers or r.inexact_prompts for r in again)
        assert not [r for r in rendered if not r.turn_by_turn and (r.split_answers or r.inexact_prompts)]
