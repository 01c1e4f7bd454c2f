"""Examples as the model sees them: the text through a chat template, the token ids, and which
tokens are trained.

A conversation is rendered with the model's own chat template, or with a template named in the
experiment file (`data.template`): `plain` (the prompt, a newline, the answer and the
end-of-sequence token; the default for a tokenizer without a chat template, e.g. a scratch
model's), `chatml` or `alpaca`. The trained tokens are those of the assistant turns (with their
end-of-turn markers); the span of each turn is found by rendering the conversation up to that
turn, so any template works whose rendering of a conversation starts with the rendering of its
beginning. A plain-text example is its text and the end-of-sequence token, all trained.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tunelab.engine.errors import DataError

TEMPLATES = {
    "plain": (
        "{% for m in messages %}"
        "{% if m.role == 'assistant' %}{{ m.content }}{{ eos_token }}"
        "{% elif m.role == 'system' %}{{ m.content }}\n\n"
        "{% else %}{{ m.content }}\n{% endif %}"
        "{% endfor %}"
    ),
    "chatml": (
        "{% for m in messages %}"
        "{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>' }}"
        "{% if m.role == 'assistant' and eos_token != '<|im_end|>' %}{{ eos_token }}{% endif %}"
        "{{ '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "alpaca": (
        "{% if messages[0].role == 'system' %}{{ messages[0].content + '\n\n' }}"
        "{% else %}{{ 'Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n' }}{% endif %}"
        "{% for m in messages %}"
        "{% if m.role == 'user' %}{{ '### Instruction:\n' + m.content + '\n\n### Response:\n' }}"
        "{% elif m.role == 'assistant' %}{{ m.content + eos_token + '\n\n' }}{% endif %}"
        "{% endfor %}"
    ),
}


def template_text(name: str, tokenizer: Any) -> str:
    """The Jinja text of a template name: auto, model, plain, chatml, alpaca."""
    own = getattr(tokenizer, "chat_template", None)
    if name == "auto":
        return own if isinstance(own, str) and own else TEMPLATES["plain"]
    if name == "model":
        if not isinstance(own, str) or not own:
            raise DataError("data.template = \"model\", but this tokenizer has no chat template; "
                            "name one: plain, chatml or alpaca")
        return own
    return TEMPLATES[name]


def template_label(name: str, tokenizer: Any) -> str:
    if name == "auto":
        own = getattr(tokenizer, "chat_template", None)
        return "the model's chat template" if own else "plain (the tokenizer has no chat template)"
    return "the model's chat template" if name == "model" else name


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    """The template compiled once, in transformers' own sandboxed Jinja environment."""
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:  # pragma: no cover - a transformers without it: apply_chat_template below
        return None
    return _compile_jinja_template(template)


_PER_TOKENIZER: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _facts(tokenizer: Any) -> dict[str, Any]:
    """What rendering needs from a tokenizer, looked up once (this is the hot loop of prepare)."""
    found = _PER_TOKENIZER.get(tokenizer)
    if found is None:
        bos = getattr(tokenizer, "bos_token", None) or ""
        ids = tokenizer("x")["input_ids"] if bos else []
        found = {"specials": {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)},
                 # the BOS text when the tokenizer adds one by itself (here it tokenizes without)
                 "bos": bos if ids and ids[0] == tokenizer.bos_token_id else ""}
        _PER_TOKENIZER[tokenizer] = found
    return found


def _render(tokenizer: Any, template: str, messages: list[dict[str, str]], generation: bool) -> str:
    compiled = _compiled(template)
    if compiled is not None:
        return str(compiled.render(messages=messages, add_generation_prompt=generation,
                                   **_facts(tokenizer)["specials"]))
    text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=generation)
    return text if isinstance(text, str) else str(text)


def _bos(tokenizer: Any) -> str:
    return str(_facts(tokenizer)["bos"])


def render_text(row: dict[str, Any], tokenizer: Any, template: str) -> str:
    """The whole example as text (for counting tokens)."""
    if "text" in row:
        return _bos(tokenizer) + row["text"] + (tokenizer.eos_token or "")
    return _with_bos(tokenizer, _render(tokenizer, template, _messages(row), False), template)


def _with_bos(tokenizer: Any, text: str, template: str) -> str:
    bos = _bos(tokenizer)
    # the named templates carry no BOS; a model's own template writes it itself when it wants one
    return bos + text if bos and template in TEMPLATES.values() and not text.startswith(bos) else text


def trained_spans(row: dict[str, Any], tokenizer: Any, template: str) -> tuple[str, list[tuple[int, int]]]:
    """(the text, the character spans of the trained turns)."""
    if "text" in row:
        text = render_text(row, tokenizer, template)
        return text, [(0, len(text))]
    messages = _messages(row)
    full = _with_bos(tokenizer, _render(tokenizer, template, messages, False), template)
    spans = []
    for i, m in enumerate(row["messages"]):
        if m["role"] != "assistant" or m.get("weight", 1) == 0:
            continue
        before = _with_bos(tokenizer, _render(tokenizer, template, messages[:i], True), template)
        upto = _with_bos(tokenizer, _render(tokenizer, template, messages[:i + 1], False), template)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise DataError(
                "the chat template does not render a conversation as the concatenation of its turns "
                "(it rewrites earlier turns), so the trained tokens cannot be located; "
                "set data.template to plain, chatml or alpaca")
        spans.append((len(before), len(upto)))
    return full, spans


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    trained: list[int]  # 1 for each token the loss is computed on
    text: str
    offsets: list[tuple[int, int]]  # each token's characters in text


def render_tokens(row: dict[str, Any], tokenizer: Any, template: str) -> Rendered:
    """The token ids of an example and its loss mask, exactly as the trainer gets them."""
    text, spans = trained_spans(row, tokenizer, template)
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("a fast tokenizer (tokenizers library) is needed to locate the trained tokens")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    mask = []
    offsets = [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
    for start, end in offsets:
        inside = any(s <= start < e or (start == end and s < start <= e) for s, e in spans)
        mask.append(1 if inside else 0)
    return Rendered(ids, mask, text, offsets)


def eos_trained(rendered: Rendered, tokenizer: Any) -> tuple[bool, bool]:
    """(the EOS token is present, it is trained at least once)."""
    eos = tokenizer.eos_token_id
    places = [i for i, t in enumerate(rendered.input_ids) if t == eos]
    return bool(places), any(rendered.trained[i] for i in places)


def token_lengths(rows: list[dict[str, Any]], tokenizer: Any, template: str) -> list[int | str]:
    """The length in tokens of each example, counted in one batch; for an example the template
    cannot render (many templates refuse some role orders), the template's message instead."""
    texts: list[str] = []
    failed: dict[int, str] = {}
    for i, row in enumerate(rows):
        try:
            texts.append(render_text(row, tokenizer, template))
        except Exception as error:  # noqa: BLE001 - jinja's own errors and raise_exception()
            failed[i] = str(error) or type(error).__name__
            texts.append("")
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [failed.get(i, len(ids)) for i, ids in enumerate(encoded)]


def generation_prompt(row: dict[str, Any], tokenizer: Any, template: str) -> tuple[str, str] | None:
    """(the prompt as the model sees it at inference, the expected answer) for a conversation:
    every turn before the last assistant turn, rendered as in training and opened for the
    assistant. None for a plain-text example, which has no prompt."""
    if "messages" not in row:
        return None
    messages = _messages(row)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return None
    text = _render(tokenizer, template, messages[:last], True)
    return _with_bos(tokenizer, text, template), messages[last]["content"]
