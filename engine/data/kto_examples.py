"""The data of a kto stage: single answers marked desirable or undesirable, from every vote.

KTO learns from one answer at a time, so every verdict that says something about an answer
counts, not only a clear winner:

    a or b (decisive)   the winner desirable, the loser undesirable    2 examples
    both bad            both answers undesirable                       2 examples
    both good           both answers desirable                         2 examples
    tie, skip           nothing: a tie says the two are alike, not how good they are

A JSON-lines file gives TRL's unpaired rows ({"prompt", "completion", "label": true|false}) or
pairs (prompt, chosen, rejected: one desirable and one undesirable example each).

An answer marked once desirable and once undesirable (two raters, or a rater and their own
swapped repeat, disagree) is left out with its contradiction; an answer marked the same way
twice is kept once. The held-out share is chosen by a hash of the prompt, as for pairs, and the
decisive votes among the held-out prompts are kept as pairs too, so a kto trial is measured on
the same preference metrics as a dpo trial. TRL's class weights are set from the counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.engine.data import preferences
from tunelab.engine.data.preferences import Pair, PreferenceData, PreferenceReport
from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.spec import LoadedSpec
from tunelab.store import find_review, review_items, review_votes

# what each verdict gives: (the left answer desirable?, the right answer desirable?); None: no
# example from that side
GIVES: dict[str, tuple[bool | None, bool | None]] = {
    "a": (True, False), "b": (False, True), "both_bad": (False, False),
    "both_good": (True, True), "tie": (None, None), "skip": (None, None)}
# the kinds of vote the report counts, in the order it says them
KINDS = ("decisive", "both_bad", "both_good", "tie", "skip", "file")
KIND_WORDS = {"decisive": ("decisive vote", "decisive votes"), "both_bad": ("both bad",) * 2,
              "both_good": ("both good",) * 2, "tie": ("tie", "ties"), "skip": ("skip", "skips"),
              "file": ("file row", "file rows")}


def _kind(n: int, kind: str) -> str:
    return f"{n} {KIND_WORDS[kind][n != 1]}"


@dataclass(frozen=True)
class Example:
    prompt: str  # as a person reads it
    completion: str
    desirable: bool
    messages: list[dict[str, str]] | None = None  # the turns before the answer, when known
    origin: str = ""  # "review qs, item 4 (ana)" or "answers.jsonl:12"


@dataclass
class ExampleReport(PreferenceReport):
    """A PreferenceReport whose units are examples (train, heldout: examples kept), with what
    each kind of vote gave and the classes."""

    stage: str = "kto"
    # kind of vote -> {"votes": n, "desirable": examples, "undesirable": examples} as given
    by_vote: dict[str, dict[str, int]] = field(default_factory=dict)
    # "train" / "heldout" -> {"desirable": n, "undesirable": n} once checked and split
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0

    def dropped(self) -> list[str]:
        parts = [_kind(self.left_out[k], k) for k in ("tie", "skip") if self.left_out.get(k)]
        if self.conflicting:
            parts.append(f"{self.conflicting} contradicted by another vote")
        return parts + ([f"{len(self.broken)} broken rows"] if self.broken else [])

    def given(self) -> list[str]:
        """What each kind of vote gave, in words: "12 decisive votes → 12 desirable + 12
        undesirable"."""
        lines = []
        for kind in KINDS:
            n = self.by_vote.get(kind)
            if n:
                lines.append(f"{_kind(n['votes'], kind)} → {n['desirable']} desirable + "
                             f"{n['undesirable']} undesirable")
        return lines

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "usable": self.usable}, ensure_ascii=False)


def class_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight): the rarer class weighed up by the ratio of the
    counts, the other 1, so both weigh the same in the loss. That is the bottom of the range
    the KTO paper (eq. 8) and TRL recommend, λ_D·n_D / (λ_U·n_U) in [1, 4/3]."""
    if desirable <= 0 or undesirable <= 0:
        return 1.0, 1.0
    if desirable < undesirable:
        return round(undesirable / desirable, 4), 1.0
    return 1.0, round(desirable / undesirable, 4)


def _count(report: ExampleReport, kind: str, found: list[Example]) -> None:
    n = report.by_vote.setdefault(kind, {"votes": 0, "desirable": 0, "undesirable": 0})
    n["votes"] += 1
    n["desirable"] += sum(e.desirable for e in found)
    n["undesirable"] += sum(not e.desirable for e in found)


def review_examples(store: Path, name: str, report: ExampleReport) -> list[Example]:
    """The examples every live vote of a review (or an arena) gives, counted by kind."""
    review = find_review(store, name)
    if review is None:
        raise SpecError(f"method.preferences: no review {name!r} in {store}")
    by_item = {i.item: i for i in review_items(store, review.id)}
    examples: list[Example] = []
    for v in review_votes(store, review.id):
        item = by_item.get(v.item)
        if item is None or v.choice not in GIVES:
            continue
        report.rows_read += 1
        sides = zip((item.output_a, item.output_b), GIVES[v.choice], strict=True)
        found = [Example(item.prompt, answer or "", good, item.messages,
                         f"review {review.name}, item {item.item} ({v.rater})")
                 for answer, good in sides if good is not None]
        kind = "decisive" if v.choice in ("a", "b") else v.choice
        _count(report, kind, found)
        if not found:
            report.left_out[kind] = report.left_out.get(kind, 0) + 1
        examples += found
    return examples


def _answer(value: Any) -> str | None:
    """An answer as text: a string, or TRL's conversational [{"role": "assistant", …}]."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content")
    return value if isinstance(value, str) else None


def file_examples(path: Path, report: ExampleReport) -> list[Example]:
    """Unpaired rows (prompt, completion, label) and pairs (prompt, chosen, rejected)."""
    examples: list[Example] = []
    for where, row in preferences.json_rows(path, report):
        prompt = row.get("prompt")
        messages = None
        if isinstance(prompt, list):  # conversational: the turns before the answer
            messages = [m for m in prompt if isinstance(m, dict) and "role" in m]
            prompt = next((m.get("content") for m in reversed(messages) if m["role"] == "user"),
                          None)
        if not isinstance(prompt, str) or not prompt.strip():
            report.broken.append(f"{where}: no 'prompt'")
            continue
        if isinstance(row.get("label"), bool) and _answer(row.get("completion")) is not None:
            answers = [(_answer(row["completion"]), row["label"])]
        elif _answer(row.get("chosen")) is not None and _answer(row.get("rejected")) is not None:
            answers = [(_answer(row["chosen"]), True), (_answer(row["rejected"]), False)]
        else:
            report.broken.append(f"{where}: neither completion and label (true or false) nor "
                                 "chosen and rejected")
            continue
        found = [Example(prompt, str(a), good, messages, where) for a, good in answers]
        _count(report, "file", found)
        examples += found
    return examples


def load_examples(source: str, store: Path) -> tuple[list[Example], ExampleReport]:
    """Every example of `review:NAME` (or `arena:NAME`) or a JSON-lines file, checked: an
    answer marked both ways is left out, one marked the same way twice is kept once."""
    report = ExampleReport(source)
    if source.startswith(("review:", "arena:")):
        examples = review_examples(store, source.split(":", 1)[1], report)
    else:
        examples = file_examples(Path(source), report)
    labels: dict[tuple[str, str], set[bool]] = {}
    for e in examples:
        labels.setdefault((e.prompt, e.completion), set()).add(e.desirable)
    contradicted = {k for k, found in labels.items() if len(found) > 1}
    report.conflicting = len(contradicted)
    kept: dict[tuple[str, str], Example] = {}
    for e in examples:
        key = (e.prompt, e.completion)
        if key in contradicted:
            continue
        if key in kept:
            report.duplicates += 1
        else:
            kept[key] = e
    return list(kept.values()), report


def _classes(examples: list[Example]) -> dict[str, int]:
    good = sum(e.desirable for e in examples)
    return {"desirable": good, "undesirable": len(examples) - good}


def too_few(report: ExampleReport, needed: int) -> str | None:
    """Why a kto stage must refuse these examples, and what to do; None when it may run."""
    train = report.classes.get("train", {})
    todo = (f"vote on more items (every verdict but tie and skip gives two examples: "
            f"`tunelab review {report.source.split(':', 1)[1]}`)"
            if report.source.startswith(("review:", "arena:")) else "add rows to the file")
    if report.usable < needed or not report.train or not report.heldout:
        parts = report.dropped()
        why = f" ({', '.join(parts)} give none)" if parts else ""
        return (f"{report.source} gives {report.usable} usable examples{why}; a kto stage needs "
                f"at least {needed} (method.min_pairs), some of them held out: {todo}, or "
                "lower method.min_pairs")
    missing = [c for c in ("desirable", "undesirable") if not train.get(c)]
    if missing:
        return (f"{report.source} gives no {missing[0]} example to train on: KTO learns from "
                f"both kinds; {todo} (a \"both good\" vote is w, \"both bad\" x)")
    return None


def checked_examples(spec: LoadedSpec, store: Path) -> tuple[list[Example], list[Example],
                                                             ExampleReport, str | None]:
    """(training examples, held-out examples, the report, why a run must refuse or None)."""
    exp = spec.experiment
    method = exp.method
    examples, report = load_examples(str(method.preferences), store)
    train, held = preferences.split_pairs(examples, method.heldout, exp.train.seed)
    report.train, report.heldout = len(train), len(held)
    report.classes = {"train": _classes(train), "heldout": _classes(held)}
    t = report.classes["train"]
    report.desirable_weight, report.undesirable_weight = class_weights(t["desirable"],
                                                                       t["undesirable"])
    report.notes = [*report.given(),
                    f"classes: {t['desirable']} desirable and {t['undesirable']} undesirable to "
                    f"train on; weights {report.desirable_weight:g} and "
                    f"{report.undesirable_weight:g} (desirable_weight, undesirable_weight)"]
    return train, held, report, too_few(report, max(method.min_pairs, 2))


def _pairs_by_side(source: str, store: Path, held_prompts: set[str]) -> tuple[list[Pair],
                                                                                list[Pair]]:
    """The decisive votes as pairs, on the examples' sides of the split: the preference metrics
    of a kto trial are measured on them, as a dpo trial's are."""
    try:
        pairs, _ = preferences.load_pairs(source, store)
    except (SpecError, TrainError):
        return [], []
    return ([p for p in pairs if p.prompt not in held_prompts],
            [p for p in pairs if p.prompt in held_prompts])


def _example_row(e: Example) -> dict[str, Any]:
    return {"prompt": e.prompt, "messages": e.messages, "completion": e.completion,
            "label": e.desirable, "origin": e.origin}


def prepare(spec: LoadedSpec, store: Path, folder: Path) -> PreferenceData:
    """Checks and splits the examples and writes them (and the pairs among them) beside the
    parent's splits; refuses with too few. The files: examples and heldout_examples (what KTO
    trains and is validated on), train and heldout (the pairs the metrics are measured on)."""
    method = spec.experiment.method
    train, held, report, refusal = checked_examples(spec, store)
    if refusal:
        raise SpecError(refusal, "too few examples")
    pairs_train, pairs_held = _pairs_by_side(str(method.preferences), store,
                                             {e.prompt for e in held})
    rows = {"examples": [_example_row(e) for e in train],
            "heldout_examples": [_example_row(e) for e in held],
            "train": [preferences.pair_row(p) for p in pairs_train],
            "heldout": [preferences.pair_row(p) for p in pairs_held]}
    return preferences.write_prepared(spec, store, folder, report, rows, prefix="kto")
