"""The label format: a text and its class, `{"text": "the parcel never came", "label": "complaint"}`
in JSONL, or the columns text and label of a CSV (named otherwise with data.columns.text and
data.columns.label).

A labelled row becomes a conversation of one turn each way, the text asked and the label
answered, so everything that reads examples (checks, de-duplication, the split, the data report,
a language model that learns to write the label) reads it like any other. A classification head
(engine.train.classify) reads the two back with `text_and_label`; its classes are the labels of
every split, sorted (`label_names`), so the same data always gives the same class numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FIELDS = ("text", "label")


class LabelProblem(ValueError):
    """A record that has no usable text or label; the message is the reason."""


def labelled(data: dict[str, Any], text_key: str, label_key: str) -> list[dict[str, str]]:
    """The conversation of a labelled record (see the module)."""
    if text_key not in data or label_key not in data:
        raise LabelProblem(f"no {text_key!r}/{label_key!r} fields (format label)")
    text, label = data[text_key], data[label_key]
    if not isinstance(text, str) or not text.strip():
        raise LabelProblem("the text is missing or empty")
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise LabelProblem(f"the label {label!r} is not a string or a number")
    name = (f"{label:g}" if isinstance(label, float) else str(label)).strip()
    if not name:
        raise LabelProblem("the label is empty")
    return [{"role": "user", "content": text}, {"role": "assistant", "content": name}]


def text_and_label(row: dict[str, Any]) -> tuple[str, str]:
    """(the text, the label) of a prepared labelled row."""
    messages = row["messages"]
    return messages[0]["content"], messages[-1]["content"]


def label_names(*splits: Iterable[dict[str, Any]]) -> list[str]:
    """The classes: every label of the given splits, sorted (class i is the i-th name)."""
    return sorted({text_and_label(row)[1] for rows in splits for row in rows})
