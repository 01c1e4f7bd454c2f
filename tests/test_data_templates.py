"""Chat templates rendered without Jinja (engine/data/templates.py): for every recognised template,
the text, the turns' places and the generation prompts are those Jinja gives, on conversations
of every shape; a template that differs by a character is rendered by Jinja."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_data_prompt_tokens import _build

from tunelab.engine.data import render as chat_render
from tunelab.engine.data import templates


def _conversations(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of every shape a file can hold: with and without a system turn, one to three
    exchanges, answers with weight 0, whitespace a `| trim` template drops, an assistant first."""
    rng = random.Random(seed)
    words = ["sorry", "I", "can", "do", "what", "?", "\n", " ", "{x}", "<s>", "ünï", "2 + 2"]

    def text() -> str:
        gaps = ["", " ", "  ", "\n"]
        return "".join(rng.choice(words) + rng.choice(gaps) for _ in range(rng.randint(0, 7)))

    rows = []
    for _ in range(n):
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": text()})
        if rng.random() < 0.1:
            messages.append({"role": "assistant", "content": text()})
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": text()})
            answer: dict[str, Any] = {"role": "assistant", "content": text()}
            if rng.random() < 0.2:
                answer["weight"] = 0
            messages.append(answer)
        rows.append({"messages": messages})
    return rows


def _jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_render, "_native", lambda *args: None)


def _plan_or_error(row: dict[str, Any], tokenizer: Any, template: str) -> Any:
    try:
        return chat_render._plan(row, tokenizer, template)
    except Exception as error:  # noqa: BLE001 - the same refusal, both ways
        return type(error).__name__, str(error)


def _prompt_or_error(row: dict[str, Any], tokenizer: Any, template: str) -> Any:
    try:
        return chat_render.generation_prompt(row, tokenizer, template)
    except Exception as error:  # noqa: BLE001
        return type(error).__name__, str(error)


CASES = [("chatml", "auto"), ("llama3", "auto"), ("scratch", "plain"), ("scratch", "chatml"),
         ("scratch", "alpaca"), ("metaspace", "plain"), ("metaspace", "chatml"),
         ("metaspace", "alpaca"), ("llama3", "plain")]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_a_recognised_template_renders_as_jinja_does(kind: str, name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = _build(kind)
    template = chat_render.template_text(name, tokenizer)
    assert templates.native(template, chat_render._DIGESTS) is not None
    rows = _conversations(300, seed=len(kind) + len(name))
    ours = [_plan_or_error(r, tokenizer, template) for r in rows]
    prompts = [_prompt_or_error(r, tokenizer, template) for r in rows]
    _jinja(monkeypatch)
    assert ours == [_plan_or_error(r, tokenizer, template) for r in rows]
    assert prompts == [_prompt_or_error(r, tokenizer, template) for r in rows]


@pytest.mark.parametrize("text", [t for texts in templates._TEXTS.values() for t in texts])
def test_each_known_model_template_is_rendered_natively_and_as_jinja_does(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = _build("llama3" if "header" in text else "chatml")
    tokenizer.chat_template = text
    rows = _conversations(200, seed=7)
    ours = [_plan_or_error(r, tokenizer, text) for r in rows]
    assert templates.native(text, chat_render._DIGESTS) is not None
    _jinja(monkeypatch)
    assert ours == [_plan_or_error(r, tokenizer, text) for r in rows]


def test_a_template_that_differs_by_one_character_goes_through_jinja() -> None:
    tokenizer = _build("chatml")
    changed = tokenizer.chat_template.replace("<|im_end|>\\n", "<|im_end|>\\n\\n")
    assert templates.native(tokenizer.chat_template, chat_render._DIGESTS) is not None
    assert templates.native(changed, chat_render._DIGESTS) is None
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert chat_render._plan(row, tokenizer, changed).text.endswith("yo<|im_end|>\n\n")


def test_a_recognised_template_renders_each_row_once_and_jinja_never(monkeypatch) -> None:
    tokenizer = _build("chatml")
    template = chat_render.template_text("auto", tokenizer)
    calls = []
    monkeypatch.setattr(chat_render, "_render", lambda *args: calls.append(args) or "")
    rows = [r for r in _conversations(60, seed=1) if r["messages"][0]["role"] != "assistant"]
    rendered = chat_render.render_many(rows, tokenizer, template, offsets=False)
    assert len(rendered) == len(rows) > 40 and not calls
