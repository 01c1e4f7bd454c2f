"""Examples as the model sees them: the text through a chat template, the token ids, and which
tokens are trained.

A conversation is rendered with the model's own chat template, or with a template named in the
experiment file (`data.template`): `plain` (the prompt, a newline, the answer and the
end-of-sequence token; the default for a tokenizer without a chat template, e.g. a scratch
model's), `chatml` or `alpaca`. The trained tokens are those of the assistant turns (with their
end-of-turn markers). A template tunelab recognises exactly (ChatML, Llama 3 and its own three:
engine.data.templates) is rendered once, in Python, and every turn's place is known as it is
written; any other is rendered by Jinja, once whole and once up to each turn, which locates the
turns for any template whose rendering of a conversation starts with the rendering of its
beginning. A plain-text example is its text and the end-of-sequence token, all trained.

The text is tokenized once (engine.data.pieces: each piece between the tokenizer's added tokens
once) and each turn found in it by its characters. The prompt of every assistant turn must be
exactly the ids `generation_prompt` gives the model at inference, so at each turn's boundary
the tokens are checked against those of the prompt tokenized alone. Where a tokenizer merges
across a boundary (an answer's first characters into the prompt's last token: `?\nI` in a BPE
without a pre-tokenizer split there), that row is built turn by turn instead: every prefix
tokenized alone, the answer on its own so its first token is trained (`Rendered.split_answers`;
the rows are counted in the data report). A prompt can still differ from the inference one when
an earlier answer, tokenized on its own, is read differently as part of the later prompt; such
turns are counted (`Rendered.inexact_prompts`) and the data report says so.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tunelab.engine.data import templates
from tunelab.engine.data.pieces import Splitter, chunked, unpadded
from tunelab.engine.data.pieces import forget as forget_pieces
from tunelab.engine.data.templates import NOT_CONCATENATED, Plan
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


def render_text(row: dict[str, Any], tokenizer: Any) -> str:
    """A plain-text example as the model sees it: its text and the end-of-sequence token."""
    return _bos(tokenizer) + row["text"] + (tokenizer.eos_token or "")


def _named_bos(tokenizer: Any, template: str) -> str:
    """The BOS the named templates get (they carry none; a model's own template writes its
    own when it wants one)."""
    return _bos(tokenizer) if template in TEMPLATES.values() else ""


def _with_bos(tokenizer: Any, text: str, template: str) -> str:
    bos = _named_bos(tokenizer, template)
    return bos + text if bos and not text.startswith(bos) else text


def _prefix(tokenizer: Any, template: str, messages: list[dict[str, str]], generation: bool) -> str:
    return _with_bos(tokenizer, _render(tokenizer, template, messages, generation), template)


_DIGESTS = tuple(templates.known(TEMPLATES).items())


def _native(template: str, tokenizer: Any, messages: list[dict[str, str]]) -> templates.Native | None:
    """The Python renderer of a recognised template; None for Jinja: any other template, and the
    rare row whose first turn is the assistant's or starts with the BOS text the named templates
    would add (where Jinja's rendering of a prefix says what becomes of it)."""
    found = templates.native(template, _DIGESTS)
    if found is None or not messages or messages[0]["role"] == "assistant":
        return None
    bos = _named_bos(tokenizer, template)
    return None if bos and messages[0]["content"].startswith(bos) else found


def _plan(row: dict[str, Any], tokenizer: Any, template: str) -> Plan:
    if "text" in row:
        text = render_text(row, tokenizer)
        return Plan(text, [(0, len(text), True)])
    messages = _messages(row)
    native = _native(template, tokenizer, messages)
    if native is not None:
        trained = [m.get("weight", 1) != 0 for m in row["messages"]]
        return native.plan(messages, trained, _facts(tokenizer)["specials"],
                           _named_bos(tokenizer, template))
    full = _prefix(tokenizer, template, messages, False)
    turns = []
    for i, m in enumerate(row["messages"]):
        if m["role"] != "assistant":
            continue
        before = _prefix(tokenizer, template, messages[:i], True)
        upto = full if i == len(messages) - 1 else _prefix(tokenizer, template, messages[:i + 1], False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise DataError(NOT_CONCATENATED)
        turns.append((len(before), len(upto), m.get("weight", 1) != 0))
    return Plan(full, turns)


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    trained: list[int]  # 1 for each token the loss is computed on
    text: str
    offsets: list[tuple[int, int]]  # each token's characters in text (empty when not asked for)
    split_answers: int = 0  # answers tokenized on their own: the tokenizer merged them into the prompt
    inexact_prompts: int = 0  # assistant turns whose prompt tokens differ from those at inference
    turn_by_turn: bool = False  # not tokenized once: every prefix of the text tokenized alone


def _encode(tokenizer: Any, texts: list[str]) -> list[Any]:
    if not texts:
        return []
    # the Rust tokenizer itself: the same ids as tokenizer(texts, add_special_tokens=False), without
    # transformers' conversion of every encoding to Python dicts (a quarter of the time)
    backend = tokenizer.backend_tokenizer
    with unpadded(backend):
        return [e for texts in chunked(texts) for e in backend.encode_batch(texts, add_special_tokens=False)]


def _assemble(plan: Plan, encoded: dict[int, Any], tokenizer: Any, with_offsets: bool) -> Rendered:
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
    return Rendered(ids, mask, plan.text, offsets, split, inexact, turn_by_turn=True)


def _prefix_ends(plan: Plan) -> set[int]:
    ends = {end for turn in plan.turns for end in turn[:2] if end > 0}
    return ends | {len(plan.text)}


def render_tokens(row: dict[str, Any], tokenizer: Any, template: str) -> Rendered:
    """The token ids of an example and its loss mask, exactly as the trainer gets them, with each
    token's characters (`offsets`)."""
    found = render_many([row], tokenizer, template, strict=True)[0]
    assert isinstance(found, Rendered)
    return found


def _prefix_encodings(plans: list[Plan | str], tokenizer: Any) -> dict[int, dict[int, Any]]:
    """Each planned row's prefixes (by their end), each tokenized whole, in one batch."""
    wanted = [(n, end) for n, plan in enumerate(plans) if isinstance(plan, Plan)
              for end in sorted(_prefix_ends(plan))]
    texts = [plans[n].text[:end] for n, end in wanted]  # type: ignore[union-attr]
    per_row: dict[int, dict[int, Any]] = {}
    for (n, end), got in zip(wanted, _encode(tokenizer, texts), strict=True):
        per_row.setdefault(n, {})[end] = got
    return per_row


def _plans(rows: list[dict[str, Any]], tokenizer: Any, template: str, strict: bool) -> list[Plan | str]:
    """Each row's plan; unless strict, the template's message for a row it cannot render (one
    it renders but not as the concatenation of its turns, as Llama 3's template does a
    conversation that opens with the assistant, is such a row: left out and said, not the end of
    the preparation)."""
    plans: list[Plan | str] = []
    for row in rows:
        try:
            plans.append(_plan(row, tokenizer, template))
        except DataError as error:
            if strict or str(error) != NOT_CONCATENATED:
                raise
            plans.append(NOT_CONCATENATED)
        except Exception as error:  # noqa: BLE001 - jinja's own errors and raise_exception()
            if strict:
                raise
            plans.append(str(error) or type(error).__name__)
    return plans


def _turn_by_turn(plans: list[Plan | str], tokenizer: Any, splitter: Splitter | None,
                  offsets: bool) -> list[Rendered | str]:
    """Every prefix of each row tokenized alone (by pieces when a splitter reads them the same)."""
    rows = [(n, p) for n, p in enumerate(plans) if isinstance(p, Plan)]
    if splitter is not None and not offsets:
        found = splitter.encode([p.text for _, p in rows], [sorted(_prefix_ends(p)) for _, p in rows])
        per_row: dict[int, dict[int, Any]] = {n: ids for (n, _), ids in zip(rows, found, strict=True)}
    else:
        per_row = _prefix_encodings(plans, tokenizer)
    return [p if isinstance(p, str) else _assemble(p, per_row.get(n, {}), tokenizer, offsets)
            for n, p in enumerate(plans)]


def _tokenized_once(plans: list[Plan | str], tokenizer: Any, splitter: Splitter) -> list[Rendered | str]:
    """Each text tokenized once, by its pieces; a row where a merge crosses a turn's boundary is
    rendered turn by turn."""
    rows = [(n, p) for n, p in enumerate(plans) if isinstance(p, Plan)]
    found = splitter.tokenize_once([(p.text, p.turns) for _, p in rows])
    out: list[Rendered | str] = list(plans)  # type: ignore[arg-type]
    again = [n for (n, _), got in zip(rows, found, strict=True) if got is None]
    for (n, p), got in zip(rows, found, strict=True):
        if got is not None:
            out[n] = Rendered(got[0], got[1], p.text, [])
    for n, rendered in zip(again, _turn_by_turn([plans[n] for n in again], tokenizer, splitter, False),
                           strict=True):
        out[n] = rendered
    return out


def render_many(rows: list[dict[str, Any]], tokenizer: Any, template: str, strict: bool = False,
                offsets: bool = True) -> list[Rendered | str]:
    """render_tokens for many rows in one batch (the fast tokenizer runs a batch on all cores);
    with offsets, every prefix is tokenized whole (each token's characters are wanted: a few rows
    shown to a person). Unless strict, an example the template cannot render (many templates
    refuse some role orders) gives the template's message instead."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("a fast tokenizer (tokenizers library) is needed to locate the trained tokens")
    plans = _plans(rows, tokenizer, template, strict)
    splitter = None if offsets else Splitter.of(tokenizer)
    if splitter is None:
        return _turn_by_turn(plans, tokenizer, None, offsets)
    found = _tokenized_once(plans, tokenizer, splitter)
    if not splitter.checked:
        # the first batch: the pieces must give the ids tokenizing every prefix whole gives
        sample = plans[:PIECES_CHECKED]
        whole = _turn_by_turn(sample, tokenizer, None, False)
        if any(_ids_and_counts(a) != _ids_and_counts(b) for a, b in zip(found, whole, strict=False)):
            forget_pieces(tokenizer)
            return _turn_by_turn(plans, tokenizer, None, False)
        splitter.checked = True
    return found


def _ids_and_counts(rendered: Rendered | str) -> Any:
    if isinstance(rendered, str):
        return rendered
    return rendered.input_ids, rendered.trained, rendered.split_answers, rendered.inexact_prompts


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
    native = _native(template, tokenizer, messages)
    if native is not None:
        bos = _named_bos(tokenizer, template)
        return native.prompt(messages[:last], _facts(tokenizer)["specials"], bos), messages[last]["content"]
    text = _render(tokenizer, template, messages[:last], True)
    return _with_bos(tokenizer, text, template), messages[last]["content"]
