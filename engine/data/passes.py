"""The passes of a preparation over its rows on disk (engine.data.spill), a batch at a time: the
per-row work of the checks of the set as a whole and of de-duplication (one pass), and the
tokens of every kept row. The per-row work runs on all cores (engine.data.parallel: forked
workers each read their batches from the file themselves and send back a few numbers a row)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tunelab.engine.data import formats, parallel
from tunelab.engine.data import render as chat_render
from tunelab.engine.data.checks import (
    Findings,
    answer_marks,
    conflicting_answers,
    inconsistent_prefix,
    prompt_label,
)
from tunelab.engine.data.dedupe import Signed, keys_and_signatures
from tunelab.engine.data.progress import Progress
from tunelab.engine.data.reading import SPLITS, Table
from tunelab.engine.data.spill import BATCH, Spill


@dataclass(frozen=True)
class Marks:
    """What the checks of the whole set keep of every row, by row number (a few bytes a row)."""

    labels: np.ndarray  # int32: the label its prompt opens with, as a place in `names`; -1: none
    names: list[str]
    prompts: np.ndarray  # S16: checks.answer_marks
    answers: np.ndarray  # S16

    def check(self, table: Table, origin: Callable[[int], str], findings: Findings) -> None:
        """The checks of the set, over the rows of the splits split by split, each in the order
        read (mixed-in rows are not the user's own data: not checked)."""
        rows = np.concatenate([np.flatnonzero(table.group == split) for split in range(len(SPLITS))])
        names: list[str | None] = [*self.names, None]  # a label of -1 is the last: none
        labels = [names[n] for n in self.labels[rows].tolist()]
        inconsistent_prefix(labels, lambda i: origin(int(rows[i])), findings)
        conflicting_answers(self.prompts[rows], self.answers[rows], lambda i: origin(int(rows[i])), findings)


def _row_batch(numbers: range, spill: Spill, dedupe: str, threshold: float) -> tuple[Any, ...]:
    rows, _ = spill.batch(numbers.start // BATCH)
    decoded = [orjson.loads(r) for r in rows]
    names: dict[str, int] = {}  # the labels of this batch: the parent numbers them for the set
    labels = [-1 if (label := prompt_label(r)) is None else names.setdefault(label, len(names))
              for r in decoded]
    prompts, answers = zip(*map(answer_marks, decoded), strict=True) if decoded else ((), ())
    signed = keys_and_signatures([formats.content_text(r) for r in decoded], dedupe == "near",
                                 threshold) if dedupe != "none" else None
    return (np.array(labels, np.int32), list(names), np.array(prompts, "S16"),
            np.array(answers, "S16"), signed)


def mark(spill: Spill, dedupe: str, threshold: float, progress: Progress) -> tuple[Marks, Signed | None]:
    """Every row's marks for the checks of the set and, unless dedupe is "none", its exact key
    (and for near-duplicates its MinHash signature, into a file beside the spill, and its LSH
    bands), in one pass on all cores."""
    names: dict[str, int] = {}
    labels, prompts, answers, keys, bands = [], [], [], [], []
    path = spill.path.with_name("signatures")
    work = functools.partial(_row_batch, spill=spill, dedupe=dedupe, threshold=threshold)
    with path.open("wb") as out:
        for got_labels, got_names, got_prompts, got_answers, signed in parallel.chunks(
                work, range(spill.count), BATCH):
            numbers = np.array([names.setdefault(n, len(names)) for n in got_names] + [-1], np.int32)
            labels.append(numbers[got_labels])  # -1 picks the -1 at the end
            prompts.append(got_prompts)
            answers.append(got_answers)
            if signed is not None:
                keys.append(signed[0])
                if signed[1] is not None:
                    bands.append(signed[1])
                    signed[2].tofile(out)
            progress.advance(len(got_labels))
    if dedupe == "none":
        path.unlink(missing_ok=True)
    near = dedupe == "near"
    marks = Marks(_joined(labels, np.int32), list(names), _joined(prompts, "S16"), _joined(answers, "S16"))
    return marks, None if dedupe == "none" else Signed(
        _joined(keys, "S16"), (np.concatenate(bands) if bands else np.zeros((0, 1), np.uint64))
        if near else None, path if near else None, threshold)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


@dataclass(frozen=True)
class TokenFacts:
    """What the preparation keeps of each counted row's tokens, by row number (not the tokens:
    they are not needed, and sending them back from the workers would cost more than computing
    them); the template's message for a row it cannot render."""

    length: np.ndarray  # int32
    split_answers: np.ndarray  # bool: an answer tokenized on its own
    inexact: np.ndarray  # bool: a prompt that differs from the inference one
    turn_by_turn: np.ndarray  # bool: not tokenized once
    eos: np.ndarray  # (present, trained) bools
    errors: dict[int, str]


def _facts_batch(numbers: range, spill: Spill, wanted: np.ndarray, tokenizer: Any,
                 template: str) -> list[tuple[int, Any]]:
    mine = np.flatnonzero(wanted[numbers.start:numbers.stop]).tolist()
    if not mine:
        return []  # a batch of rows that are not counted (duplicates, leaks): not even read
    rows, _ = spill.batch(numbers.start // BATCH)
    found = chat_render.render_many([orjson.loads(rows[j]) for j in mine], tokenizer, template,
                                    offsets=False)
    return [(numbers.start + j, r if isinstance(r, str) else
             (len(r.input_ids), r.split_answers > 0, r.inexact_prompts > 0, r.turn_by_turn,
              *chat_render.eos_trained(r, tokenizer)))
            for j, r in zip(mine, found, strict=True)]


def count_tokens(spill: Spill, wanted: np.ndarray, tokenizer: Any, template: str,
                 progress: Progress) -> TokenFacts:
    """Every wanted row rendered and tokenized as the trainer will, on all cores."""
    n = spill.count
    facts = TokenFacts(np.zeros(n, np.int32), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool),
                       np.zeros((n, 2), bool), {})
    work = functools.partial(_facts_batch, spill=spill, wanted=wanted, tokenizer=tokenizer,
                             template=template)
    for got in parallel.chunks(work, range(n), BATCH):
        for number, found in got:
            if isinstance(found, str):
                facts.errors[number] = found
                continue
            (facts.length[number], facts.split_answers[number], facts.inexact[number],
             facts.turn_by_turn[number], *eos) = found
            facts.eos[number] = eos
        progress.advance(len(got))
    return facts


def check_tokens(facts: TokenFacts, row: int, origin: Any, tokenizer: Any,
                 findings: Findings, eos: bool) -> None:
    """The tokens of one example: prompts that differ from inference, and (on a sample of the
    training split) the end-of-sequence token."""
    if facts.inexact[row]:
        findings.add("prompt_tokens", "warning",
                     "a prompt's tokens in training differ from those the model gets at inference "
                     "(the tokenizer reads an earlier answer differently inside the later prompt)",
                     origin(row))
    if not eos:
        return
    present, trained = facts.eos[row]
    token = tokenizer.eos_token
    if not present:
        findings.add("eos", "warning",
                     f"the end-of-sequence token {token!r} is missing from the rendered example: "
                     "the model will not learn to stop (endless generations)", origin(row))
    elif not trained:
        findings.add("eos", "warning",
                     f"the end-of-sequence token {token!r} is not trained: the model will not "
                     "learn to stop (endless generations)", origin(row))
