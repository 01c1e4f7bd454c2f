"""Prefix ids from pieces (engine/data/pieces.py): the preparation and the trainer tokenize each
text about once, and get exactly the ids that tokenizing every prefix whole gives, for the four
kinds of tokenizer the prompt-token tests use; a tokenizer for which the pieces would differ is
tokenized prefix by prefix."""

from __future__ import annotations

from typing import Any

import pytest
from test_data_prompt_tokens import KINDS, _build, _conversations
from test_data_templates import _conversations as every_shape

from tunelab.engine.data import pieces
from tunelab.engine.data import render as chat_render
from tunelab.engine.data.templates import NOT_CONCATENATED
from tunelab.engine.errors import DataError


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
        # each text whole and once, in one call; beside them only the openings of the answers'
        # pieces (`assistant\n`), each once for the batch
        texts = [r.text for r in rendered]
        assert sent[:len(texts)] == texts
        heads = sent[len(texts):]
        assert heads and len(set(heads)) == len(heads) and all(len(h) < 30 for h in heads), heads
    else:  # the plain template puts the answer right after "?\n", which this tokenizer merges
        assert again and all(r.split_answers or r.inexact_prompts for r in again)
        assert not [r for r in rendered if not r.turn_by_turn and (r.split_answers or r.inexact_prompts)]


def _row_facts(rendered: Any) -> Any:
    return rendered if isinstance(rendered, str) else (
        rendered.input_ids, rendered.trained, rendered.split_answers, rendered.inexact_prompts)


@pytest.mark.parametrize("kind", KINDS)
def test_the_fast_path_gives_the_masks_of_jinja_turn_by_turn_on_every_row(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (a recognised template rendered in Python, each text tokenized once, the
    answers found by their characters) against the reference (Jinja renders the text and every
    prefix, and every prefix is tokenized whole), row by row: the same ids, the same trained
    tokens and the same counts, on the rows of the prompt-token tests and on conversations of
    every shape (system turns, weight-0 answers, whitespace a template trims, an assistant
    first, a template's refusals)."""
    tokenizer = _build(kind)
    template = chat_render.template_text("auto", tokenizer)
    rows = _conversations(160) + _conversations(120, seed=9) + every_shape(300, seed=11)
    splitter = pieces.Splitter.of(tokenizer)
    if splitter is not None:  # its own logic on every row: not the check of the first rows
        splitter.checked = True  # (which would send every row turn by turn if they differed)
    fast = chat_render.render_many(rows, tokenizer, template, offsets=False)
    assert pieces.Splitter.of(tokenizer) is splitter
    monkeypatch.setattr(chat_render, "_native", lambda *args: None)
    reference = chat_render.render_many(rows, tokenizer, template, offsets=True)
    assert [_row_facts(r) for r in fast] == [_row_facts(r) for r in reference]
    once = [r for r in fast if not isinstance(r, str) and not r.turn_by_turn]
    assert len(once) > len(rows) // 2 or kind in ("metaspace", "scratch")


def test_a_conversation_the_template_cannot_concatenate_is_left_out_alone() -> None:
    """Llama 3's template writes its BOS before the first message but not before a generation
    prompt with no messages: a conversation that opens with the assistant is not the
    concatenation of its turns. That row is said and left out; the others are rendered (it
    used to end the whole preparation)."""
    tokenizer = _build("llama3")
    template = chat_render.template_text("auto", tokenizer)
    rows = _conversations(6, seed=3)
    odd = {"messages": [{"role": "assistant", "content": "Hello, how can I help?"},
                        {"role": "user", "content": "Add 2 and 3."},
                        {"role": "assistant", "content": "5"}]}
    rendered = chat_render.render_many([*rows[:3], odd, *rows[3:]], tokenizer, template,
                                       offsets=False)
    assert rendered[3] == NOT_CONCATENATED
    assert [r.input_ids for r in rendered[:3] + rendered[4:]] == [  # type: ignore[union-attr]
        r.input_ids for r in chat_render.render_many(rows, tokenizer, template, offsets=False)]
    with pytest.raises(DataError, match="concatenation of its turns"):
        chat_render.render_many([odd], tokenizer, template, strict=True)
