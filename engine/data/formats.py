"""The formats of fine-tuning data, detected and normalised to one internal form.

The internal form of an example is a conversation, `{"messages": [{"role", "content"}, …]}`
with roles system, user and assistant (an assistant turn with `"weight": 0` is shown to the
model but not trained, as in OpenAI's format), or `{"text": …}` for plain text, where every
token is trained. Formats:

- prompt_completion: `{"prompt": …, "completion": …}` (the prompt may also be a list of messages)
- messages: OpenAI's chat fine-tuning format, `{"messages": [{"role": …, "content": …}]}`
- alpaca: `{"instruction": …, "input": …, "output": …}`
- sharegpt: `{"conversations": [{"from": "human" | "gpt" | "system", "value": …}]}`
- text: `{"text": …}`
- label: `{"text": …, "label": …}`, a text and its class (engine.data.labels); never detected
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunelab.engine.data import labels
from tunelab.engine.data.sources import Record
from tunelab.engine.spec import ColumnsSpec

FORMATS = ("prompt_completion", "messages", "alpaca", "sharegpt", "text", "label")

# The fields of each format, by their default column names
FIELDS = {
    "prompt_completion": ("prompt", "completion"),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
    "sharegpt": ("messages",),  # default column "conversations", see _column
    "text": ("text",),
    "label": labels.FIELDS,
}

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "model": "assistant", "bing": "assistant",
                  "system": "system"}
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class RowProblem(Exception):
    """A record that cannot become an example; the message is the reason shown in the report."""


def _column(columns: ColumnsSpec, name: str, fmt: str) -> str:
    mapped = getattr(columns, name)
    if mapped:
        return mapped
    return "conversations" if fmt == "sharegpt" and name == "messages" else name


DETECT_RECORDS = 200  # records the format is told by


def detect(records: list[Record], columns: ColumnsSpec) -> str | None:
    """The format most of the first records have (None when none fits)."""
    votes: Counter[str] = Counter()
    for record in records[:DETECT_RECORDS]:
        fmt = _looks_like(record.data, columns)
        if fmt:
            votes[fmt] += 1
    return votes.most_common(1)[0][0] if votes else None


def _looks_like(data: dict[str, Any], columns: ColumnsSpec) -> str | None:
    turns = data.get(_column(columns, "messages", "messages"))
    if isinstance(turns, list) and turns and isinstance(turns[0], dict):
        return "sharegpt" if "from" in turns[0] else "messages"
    turns = data.get(_column(columns, "messages", "sharegpt"))
    if isinstance(turns, list) and turns and isinstance(turns[0], dict):
        return "sharegpt" if "from" in turns[0] else "messages"
    for fmt in ("alpaca", "prompt_completion", "text"):
        if all(_column(columns, f, fmt) in data for f in FIELDS[fmt]):
            return fmt
    return None


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        # OpenAI content parts: [{"type": "text", "text": …}]
        texts = [p.get("text") for p in value if p.get("type", "text") == "text"]
        if len(texts) == len(value) and all(isinstance(t, str) for t in texts):
            return "".join(texts)
        raise RowProblem(f"{what} has non-text parts (images, audio) that are not supported")
    if value is None:
        raise RowProblem(f"{what} is missing")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowProblem(f"{what} is not text")


def normalise(data: dict[str, Any], fmt: str, columns: ColumnsSpec) -> dict[str, Any]:
    """One record in the internal form; raises RowProblem with the reason it cannot be."""
    if fmt == "text":
        key = _column(columns, "text", fmt)
        if key not in data:
            raise RowProblem(f"no {key!r} field (format text)")
        return {"text": _text(data[key], "the text")}
    if fmt == "label":
        try:
            messages: list[dict[str, Any]] = labels.labelled(
                data, _column(columns, "text", fmt), _column(columns, "label", fmt))
        except labels.LabelProblem as problem:
            raise RowProblem(str(problem)) from None
    elif fmt == "prompt_completion":
        messages = _prompt_completion(data, columns)
    elif fmt == "alpaca":
        messages = _alpaca(data, columns)
    else:
        messages = _turns(data, fmt, columns)
    system_key = columns.system
    if system_key and data.get(system_key) and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": _text(data[system_key], "the system prompt")})
    return {"messages": messages}


def _prompt_completion(data: dict[str, Any], columns: ColumnsSpec) -> list[dict[str, Any]]:
    p_key, c_key = _column(columns, "prompt", "x"), _column(columns, "completion", "x")
    if p_key not in data or c_key not in data:
        raise RowProblem(f"no {p_key!r}/{c_key!r} fields (format prompt_completion)")
    prompt, completion = data[p_key], data[c_key]
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict) and "role" in prompt[0]:
        messages = _chat(prompt, "role", "content", CHAT_ROLES)  # a conversational prompt (TRL)
    else:
        messages = [{"role": "user", "content": _text(prompt, "the prompt")}]
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        messages += _chat(completion, "role", "content", CHAT_ROLES)
    else:
        messages.append({"role": "assistant", "content": _text(completion, "the completion")})
    return messages


def _alpaca(data: dict[str, Any], columns: ColumnsSpec) -> list[dict[str, Any]]:
    i_key, in_key, o_key = (_column(columns, n, "alpaca") for n in ("instruction", "input", "output"))
    if i_key not in data or o_key not in data:
        raise RowProblem(f"no {i_key!r}/{o_key!r} fields (format alpaca)")
    instruction = _text(data[i_key], "the instruction")
    extra = data.get(in_key)
    extra_text = _text(extra, "the input") if extra not in (None, "") else ""
    prompt = f"{instruction}\n\n{extra_text}" if extra_text.strip() else instruction
    return [{"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(data[o_key], "the output")}]


def _turns(data: dict[str, Any], fmt: str, columns: ColumnsSpec) -> list[dict[str, Any]]:
    key = _column(columns, "messages", fmt)
    turns = data.get(key)
    if not isinstance(turns, list) or not turns:
        raise RowProblem(f"no list of turns in {key!r} (format {fmt})")
    if fmt == "sharegpt":
        return _chat(turns, "from", "value", SHAREGPT_ROLES)
    return _chat(turns, "role", "content", CHAT_ROLES)


def _chat(turns: list[Any], role_key: str, content_key: str, roles: dict[str, str]) -> list[dict[str, Any]]:
    messages = []
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise RowProblem(f"turn {n} is not an object")
        raw_role = turn.get(role_key)
        role = roles.get(str(raw_role).lower()) if raw_role is not None else None
        if role is None:
            if raw_role == "tool" or turn.get("tool_calls"):
                raise RowProblem("tool calls and tool turns are not supported")
            raise RowProblem(f"turn {n} has the unknown role {raw_role!r}")
        if turn.get("tool_calls"):
            raise RowProblem("tool calls and tool turns are not supported")
        message: dict[str, Any] = {"role": role, "content": _text(turn.get(content_key), f"turn {n}")}
        if role == "assistant" and turn.get("weight") == 0:
            message["weight"] = 0  # shown, not trained
        messages.append(message)
    return messages


# ---------------------------------------------------------------- views of an example


def prompt_of(row: dict[str, Any]) -> str:
    """The first user turn (what a prompt prefix rule checks); empty for text."""
    for m in row.get("messages", []):
        if m["role"] == "user":
            return str(m["content"])
    return ""


def completions_of(row: dict[str, Any]) -> list[str]:
    """The trained outputs: the assistant turns, or the whole text."""
    if "text" in row:
        return [row["text"]]
    return [m["content"] for m in row["messages"] if m["role"] == "assistant" and m.get("weight", 1)]


def flat(row: dict[str, Any]) -> tuple[str, str]:
    """(everything before the last trained turn, that turn) as plain text."""
    if "text" in row:
        return "", row["text"]
    messages = row["messages"]
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    before = "\n".join(m["content"] for m in messages[:last])
    return before, messages[last]["content"] if last < len(messages) else ""


def content_text(row: dict[str, Any]) -> str:
    """All the text of an example, for duplicate detection."""
    if "text" in row:
        return row["text"]
    return "\n".join(m["content"] for m in row["messages"])
