"""A reply's text, grown a token at a time: the pieces joined are exactly the decoded reply, for
four kinds of tokenizer, with letters of several bytes split across tokens; and a piece is handed
out at the token that completes it, not held back to the end of a word."""

from __future__ import annotations

import random

import pytest
from test_data_prompt_tokens import KINDS, _build

from tunelab.engine.serve.stream import TokenText

TEXTS = ["What is 12 plus 30? It is 42.", "Ça coûte 3 € — déjà vu 🙂 naïve café", "a\n\n  b\tc  ",
         "日本語のテキスト and English", " leading space and trailing "]


@pytest.fixture(scope="module", params=KINDS)
def tokenizer(request: pytest.FixtureRequest):  # noqa: ANN201
    return _build(request.param)


def _pieces(tokenizer, ids: list[int]) -> list[str]:  # noqa: ANN001
    reply = TokenText(tokenizer)
    pieces = [reply.add(token) for token in ids]
    return [*pieces, reply.rest()]


def test_the_pieces_joined_are_the_decoded_reply(tokenizer) -> None:  # noqa: ANN001
    rng = random.Random(0)
    cases = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in TEXTS]
    vocab = len(tokenizer)
    cases += [[rng.randrange(vocab) for _ in range(40)] for _ in range(30)]  # any ids at all
    for ids in cases:
        assert "".join(_pieces(tokenizer, ids)) == tokenizer.decode(ids, skip_special_tokens=True)


def test_a_word_is_shown_as_its_tokens_arrive(tokenizer) -> None:  # noqa: ANN001
    ids = tokenizer("What is 12 plus 30? It is 42.", add_special_tokens=False)["input_ids"]
    pieces = _pieces(tokenizer, ids)
    # one piece per token that completes text: nothing waits for the end of a word
    assert sum(1 for p in pieces[:-1] if p) == len(ids)
    assert pieces[0] != ""
