"""The passes of a preparation over its rows on disk (engine.data.spill), a batch at a time: the
checks of the set as a whole, the per-row work of de-duplication and the tokens of every kept
row. The per-row work runs on all cores (engine.data.parallel: forked workers each read their
batches from the file themselves and send back a few numbers a row)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tunelab.engine.data import formats, parallel
from tunelab.engine.data import render as chat_render
from tunelab.engine.data.checks import Findings, conflicting_answers, inconsistent_prefix
from tunelab.engine.data.dedupe import Signed, keys_and_signatures
from tunelab.engine.data.progress import Progress
from tunelab.engine.data.reading import SPLITS, Table
from tunelab.engine.data.spill import BATCH, Spill, origin_text


def _split_major(spill: Spill, table: Table) -> Iterator[tuple[str, dict[str, Any]]]:
    """(origin, row) of every row of the splits, split by split, each in the order read."""
    for split in range(len(SPLITS)):
        wanted = table.group == split
        for first, rows, origins in spill.batches(wanted):
            for j in np.flatnonzero(wanted[first:first + len(rows)]).tolist():
                yield origin_text(origins[j]), orjson.loads(rows[j])


def check_the_set(spill: Spill, table: Table, findings: Findings) -> None:
    """Prompts that open with another label than most, and prompts with different answers: each
    row decoded as it is checked, so a million decoded rows are never held at once."""
    inconsistent_prefix(_split_major(spill, table), findings)
    conflicting_answers(_split_major(spill, table), findings)


def _sign_batch(numbers: range, spill: Spill, near: bool, threshold: float) -> tuple[Any, Any, Any]:
    rows, _ = spill.batch(numbers.start // BATCH)
    return keys_and_signatures([formats.content_text(orjson.loads(r)) for r in rows], near, threshold)


def sign(spill: Spill, near: bool, threshold: float, progress: Progress) -> Signed:
    """The exact keys (and for near-duplicates the MinHash signatures, into a file beside the
    spill, and their LSH bands) of every row, on all cores."""
    keys, bands = [], []
    path = spill.path.with_name("signatures")
    work = functools.partial(_sign_batch, spill=spill, near=near, threshold=threshold)
    with path.open("wb") as out:
        for got_keys, got_bands, got_sigs in parallel.chunks(work, range(spill.count), BATCH):
            keys.append(got_keys)
            if near:
                bands.append(got_bands)
                got_sigs.tofile(out)
            progress.advance(len(got_keys))
    return Signed(np.concatenate(keys) if keys else np.zeros(0, "S16"),
                  (np.concatenate(bands) if bands else np.zeros((0, 1), np.uint64)) if near else None,
                  path if near else None, threshold)


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
