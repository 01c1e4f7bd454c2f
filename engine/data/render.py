"""Examples as the model sees them: the text through a chat template, the token ids, and which
tokens are trained.

A conversation is rendered with the model's own chat template, or with a template named in the
experiment file (`data.template`): `plain` (the prompt, a newline, the answer and the
end-of-sequence token; the default for a tokenizer without a chat template, e.g. a scratch
model's), `chatml` or `alpaca`. The trained tokens are those of the assistant turns (with their
end-of-turn markers); the span of each turn is found by rendering the conversation up to that
turn, so any template works whose rendering of a conversation starts with the rendering of its
beginning. A plain-text example is its text and the end-of-sequence token, all trained.

The tokens are built turn by turn, not by tokenizing the whole text: the prompt of every
assistant turn is that prompt tokenized alone, exactly the ids `generation_prompt` gives the
model at inference, and where a tokenizer would merge an answer's first characters into the
prompt's last token (`?\nI` in a BPE without a pre-tokenizer split there), the answer is
tokenized on its own, so its first token is trained. A prompt can still differ from the
inference one when an earlier answer, tokenized on its own, is read differently as part of the
later prompt; such turns are counted (`Rendered.inexact_prompts`) and the data report says so.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tunelab.engine.data.pieces import Splitter, unpadded
from tunelab.engine.data.pieces import forget as forget_pieces
from tunelab.engine.errors import DataError

PIECES_CHECKED = 32  # rows of a tokenizer's first batch also tokenized prefix by prefix, to compare

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


@lru_cache(maxsize=16)
def _globals(template: str) -> dict[str, Any]:
    return dict(_compiled(template).globals)


def _render(tokenizer: Any, template: str, messages: list[dict[str, str]], generation: bool) -> str:
    compiled = _compiled(template)
    if compiled is not None:
        # Template.render without its merge of the globals into every new context (a ChainMap
        # walked per render: a fifth of the time of rendering a row in prepare); merged once
        # here, the context is the same. Errors propagate as they are (their messages are used).
        context = compiled.new_context({**_globals(template), **_facts(tokenizer)["specials"],
                                        "messages": messages, "add_generation_prompt": generation},
                                       shared=True)
        return str(compiled.environment.concat(compiled.root_render_func(context)))
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


def _prefix(tokenizer: Any, template: str, messages: list[dict[str, str]], generation: bool) -> str:
    return _with_bos(tokenizer, _render(tokenizer, template, messages, generation), template)


@dataclass(frozen=True)
class _Plan:
    """An example's text and, for each assistant turn, where its prompt and its answer end in it
    (every prompt and every answer is a prefix of the text) and whether it is trained."""

    text: str
    turns: list[tuple[int, int, bool]]


def _plan(row: dict[str, Any], tokenizer: Any, template: str) -> _Plan:
    if "text" in row:
        text = render_text(row, tokenizer, template)
        return _Plan(text, [(0, len(text), True)])
    messages = _messages(row)
    full = _prefix(tokenizer, template, messages, False)
    turns = []
    for i, m in enumerate(row["messages"]):
        if m["role"] != "assistant":
            continue
        before = _prefix(tokenizer, template, messages[:i], True)
        upto = full if i == len(messages) - 1 else _prefix(tokenizer, template, messages[:i + 1], False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise DataError(
                "the chat template does not render a conversation as the concatenation of its turns "
                "(it rewrites earlier turns), so the trained tokens cannot be located; "
                "set data.template to plain, chatml or alpaca")
        turns.append((len(before), len(upto), m.get("weight", 1) != 0))
    return _Plan(full, turns)


def trained_spans(row: dict[str, Any], tokenizer: Any, template: str) -> tuple[str, list[tuple[int, int]]]:
    """(the text, the character spans of the trained turns)."""
    plan = _plan(row, tokenizer, template)
    return plan.text, [(b, u) for b, u, trained in plan.turns if trained]


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    trained: list[int]  # 1 for each token the loss is computed on
    text: str
    offsets: list[tuple[int, int]]  # each token's characters in text (empty when not asked for)
    split_answers: int = 0  # answers tokenized on their own: the tokenizer merged them into the prompt
    inexact_prompts: int = 0  # assistant turns whose prompt tokens differ from those at inference


def _encode(tokenizer: Any, texts: list[str]) -> list[Any]:
    if not texts:
        return []
    # the Rust tokenizer itself: the same ids as tokenizer(texts, add_special_tokens=False), without
    # transformers' conversion of every encoding to Python dicts (a quarter of the time)
    backend = tokenizer.backend_tokenizer
    with unpadded(backend):
        return list(backend.encode_batch(texts, add_special_tokens=False))


def _assemble(plan: _Plan, encoded: dict[int, Any], tokenizer: Any, with_offsets: bool) -> Rendered:
    """The token ids of a planned example, built turn by turn so that the prompt of every
    assistant turn is the token sequence of that prompt tokenized alone (what the model gets at
    inference), and the answer starts on a token of its own."""
    ids: list[int] = []
    mask: list[int] = []
    offsets: list[tuple[int, int]] = []
    at = 0  # characters of the text covered by ids
    split = inexact = 0
    cache: dict[int, list[int]] = {}

    def ids_at(end: int) -> list[int]:
        """The ids of the text up to end, tokenized alone (each .ids builds a new list)."""
        if end not in cache:
            cache[end] = encoded[end].ids
        return cache[end]

    def extend(end: int, trained: int) -> bool:
        """Appends the text up to `end` as the tokenizer reads that whole prefix; False when that
        reading does not start with the ids so far (the segment is then tokenized on its own)."""
        nonlocal at
        whole = ids_at(end)
        natural = whole[:len(ids)] == ids
        if natural:
            new = whole[len(ids):]
            if with_offsets:
                offsets.extend(encoded[end].offsets[len(ids):])
        else:
            segment, = _encode(tokenizer, [plan.text[at:end]])
            new = segment.ids
            if with_offsets:
                offsets.extend((a + at, b + at) for a, b in segment.offsets)
        ids.extend(new)
        mask.extend([trained] * len(new))
        at = end
        return natural

    for before, upto, trained in plan.turns:
        if not trained:
            continue  # context only: read within the next prompt (or the tail), as at inference
        if before > at:
            extend(before, 0)
        # an earlier answer, tokenized on its own, can make a later prompt differ
        exact = before == 0 or ids == ids_at(before)
        natural = extend(upto, 1)
        inexact += not exact
        split += exact and not natural
    if at < len(plan.text):
        extend(len(plan.text), 0)
    return Rendered(ids, mask, plan.text, offsets, split, inexact)


def _prefix_ends(plan: _Plan) -> set[int]:
    ends = {end for turn in plan.turns for end in turn[:2] if end > 0}
    return ends | {len(plan.text)}


def render_tokens(row: dict[str, Any], tokenizer: Any, template: str) -> Rendered:
    """The token ids of an example and its loss mask, exactly as the trainer gets them."""
    found = render_many([row], tokenizer, template, strict=True)[0]
    assert isinstance(found, Rendered)
    return found


def _prefix_encodings(plans: list[_Plan | str], tokenizer: Any) -> dict[int, dict[int, Any]]:
    """Each planned row's prefixes (by their end), each tokenized whole, in one batch."""
    wanted = [(n, end) for n, plan in enumerate(plans) if isinstance(plan, _Plan)
              for end in sorted(_prefix_ends(plan))]
    texts = [plans[n].text[:end] for n, end in wanted]  # type: ignore[union-attr]
    per_row: dict[int, dict[int, Any]] = {}
    for (n, end), got in zip(wanted, _encode(tokenizer, texts), strict=True):
        per_row.setdefault(n, {})[end] = got
    return per_row


def _prefix_ids(plans: list[_Plan | str], splitter: Splitter) -> dict[int, dict[int, Any]]:
    """The same ids as _prefix_encodings (without offsets), each text tokenized about once."""
    rows = [(n, plan) for n, plan in enumerate(plans) if isinstance(plan, _Plan)]
    found = splitter.encode([p.text for _, p in rows], [sorted(_prefix_ends(p)) for _, p in rows])
    return {n: ids for (n, _), ids in zip(rows, found, strict=True)}


def render_many(rows: list[dict[str, Any]], tokenizer: Any, template: str, strict: bool = False,
                offsets: bool = True) -> list[Rendered | str]:
    """render_tokens for many rows, with every prefix tokenized in one batch (the fast tokenizer
    runs a batch on all cores). Unless strict, an example the template cannot render (many
    templates refuse some role orders) gives the template's message instead."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("a fast tokenizer (tokenizers library) is needed to locate the trained tokens")
    plans: list[_Plan | str] = []
    for row in rows:
        try:
            plans.append(_plan(row, tokenizer, template))
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 - jinja's own errors and raise_exception()
            if strict:
                raise
            plans.append(str(error) or type(error).__name__)
    splitter = None if offsets else Splitter.of(tokenizer)
    per_row = _prefix_ids(plans, splitter) if splitter is not None else _prefix_encodings(plans, tokenizer)
    if splitter is not None and not splitter.checked:
        # the first batch: the pieces must give the ids tokenizing every prefix whole gives
        sample = plans[:PIECES_CHECKED]
        whole = _prefix_encodings(sample, tokenizer)
        if any(per_row[n][end].ids != got.ids for n, ends in whole.items() for end, got in ends.items()):
            forget_pieces(tokenizer)
            per_row = _prefix_encodings(plans, tokenizer)
        splitter.checked = True
    return [plan if isinstance(plan, str) else _assemble(plan, per_row.get(n, {}), tokenizer, offsets)
            for n, plan in enumerate(plans)]


def eos_trained(rendered: Rendered, tokenizer: Any) -> tuple[bool, bool]:
    """(the EOS token is present, it is trained at least once)."""
    eos, ids = tokenizer.eos_token_id, rendered.input_ids
    places = []  # found by list.index (in C): a Python loop over every id was 5 % of prepare
    at = -1
    while True:
        try:
            at = ids.index(eos, at + 1)
        except ValueError:
            break
        places.append(at)
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
