"""Checks of examples: the rules every example must pass, the file's own rules, and findings about
the set as a whole. A row that fails a rule is dropped; every finding keeps a count and the first
few places (`file.jsonl:17`) so that a person can look at them.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.engine.data.formats import completions_of, prompt_of
from tunelab.engine.spec import ChoiceSpec, Experiment, RangeSpec, RulesSpec

EXAMPLES_KEPT = 10  # places listed per finding
MANY_EXAMPLES = 10_000


@dataclass(frozen=True)
class Finding:
    check: str  # a stable id: not_utf8, empty_completion, too_long, duplicate_near, leakage, …
    level: str  # error (stops the preparation unless forced) | warning | note
    message: str  # for people
    count: int = 0
    removed: int = 0  # rows dropped because of it
    examples: list[str] = field(default_factory=list)  # places: "file.jsonl:17"


class Findings:
    """Findings as they are collected: one per check and message, with counts and places."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, check: str, level: str, message: str, where: str | None = None,
            removed: bool = False) -> None:
        item = self._items.setdefault((check, message), {"level": level, "count": 0, "removed": 0,
                                                         "examples": []})
        item["count"] += 1
        item["removed"] += int(removed)
        if where is not None and len(item["examples"]) < EXAMPLES_KEPT:
            item["examples"].append(where)

    def once(self, check: str, level: str, message: str) -> None:
        self._items[(check, message)] = {"level": level, "count": 0, "removed": 0, "examples": []}

    def all(self) -> list[Finding]:
        order = {"error": 0, "warning": 1, "note": 2}
        found = [Finding(check, v["level"], message, v["count"], v["removed"], v["examples"])
                 for (check, message), v in self._items.items()]
        return sorted(found, key=lambda f: (order.get(f.level, 3), -f.removed, f.check))


def _banned_pattern(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w.strip()) for w in words if w.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if alternatives else None


class RowRules:
    """The per-row rules: structure, empty or short completions, and the file's [data.rules]."""

    def __init__(self, rules: RulesSpec) -> None:
        self.rules = rules
        self.banned = _banned_pattern(rules.banned_words)

    def problem(self, row: dict[str, Any]) -> tuple[str, str] | None:
        """(check id, reason) for the first rule the row breaks, or None."""
        r = self.rules
        if "messages" in row:
            roles = [m["role"] for m in row["messages"]]
            if "assistant" not in roles:
                return "no_answer", "no assistant turn"
            if roles[-1] != "assistant":
                return "no_answer", "does not end with an assistant turn"
            if not any(m.get("weight", 1) for m in row["messages"] if m["role"] == "assistant"):
                return "no_answer", "every assistant turn has weight 0 (nothing to train)"
        outputs = completions_of(row)
        if any(not o.strip() for o in outputs):
            return "empty_completion", "empty completion"
        shortest = min(len(o.strip()) for o in outputs)
        if shortest < r.min_completion_chars:
            return "short_completion", f"completion shorter than {r.min_completion_chars} characters"
        if r.max_completion_chars is not None and max(len(o) for o in outputs) > r.max_completion_chars:
            return "long_completion", f"completion longer than {r.max_completion_chars} characters"
        if "messages" in row:
            prompt = prompt_of(row)
            if len(prompt.strip()) < r.min_prompt_chars:
                return "short_prompt", f"prompt shorter than {r.min_prompt_chars} characters"
            if r.max_prompt_chars is not None and len(prompt) > r.max_prompt_chars:
                return "long_prompt", f"prompt longer than {r.max_prompt_chars} characters"
            if r.prompt_prefix is not None and not prompt.startswith(r.prompt_prefix):
                return "prompt_prefix", f"prompt does not start with {r.prompt_prefix!r}"
        if r.completion_prefix is not None and not all(o.startswith(r.completion_prefix) for o in outputs):
            return "completion_prefix", f"completion does not start with {r.completion_prefix!r}"
        if self.banned is not None:
            for output in outputs:
                hit = self.banned.search(output)
                if hit:
                    return "banned_word", f"banned word {hit.group(0).lower()!r}"
        return None


_LABEL = re.compile(r"^([#>*\[\w][^\n:]{0,28}:)")


def prompt_label(row: dict[str, Any]) -> str | None:
    """The label a prompt opens with ("Question:", "### Instruction:"), if any."""
    match = _LABEL.match(prompt_of(row).lstrip())
    return match.group(1) if match else None


def answer_marks(row: dict[str, Any]) -> tuple[bytes, bytes]:
    """(a digest of the prompt as written, of its answer): equal prompts with different answers
    are conflicting; empty digests for a plain-text row, which has no prompt."""
    if "text" in row:
        return b"", b""
    from tunelab.engine.data.formats import flat

    prompt, answer = flat(row)
    return _digest(" ".join(prompt.casefold().split())), _digest(answer.strip())


def inconsistent_prefix(labels: Sequence[str | None], where: Callable[[int], str],
                        findings: Findings) -> None:
    """Warns when most prompts open with the same label ("Question:", "### Instruction") and a few
    do not: usually rows written with another template, which teach the model two formats.
    `labels` of the rows in the order they are checked; `where(i)` the place of the i-th."""
    counted = Counter(h for h in labels if h)
    if not counted or len(labels) < 20:
        return
    head, n = counted.most_common(1)[0]
    if 0.8 * len(labels) <= n < len(labels):
        for i, h in enumerate(labels):
            if h != head:
                findings.add("inconsistent_template", "warning",
                             f"most prompts ({n:,} of {len(labels):,}) start with {head!r}; these do not",
                             where(i))


def conflicting_answers(prompts: np.ndarray, answers: np.ndarray, where: Callable[[int], str],
                        findings: Findings) -> None:
    """Notes prompts that appear with different answers: fine for open tasks, a labelling error
    for tasks with one right answer (the model learns to hedge between them). The answer_marks
    of the rows in the order they are checked (digests, not texts: a million prompts would
    otherwise stay in memory); each row is compared with the first of its prompt."""
    asked = np.flatnonzero(prompts != b"")
    _, first, group = np.unique(prompts[asked], return_index=True, return_inverse=True)
    first_of = asked[first[group.reshape(-1)]]
    differ = np.flatnonzero(answers[asked] != answers[first_of])
    for i, of in zip(asked[differ].tolist(), first_of[differ].tolist(), strict=True):
        findings.add("conflicting_answers", "note", "the same prompt with a different answer",
                     f"{where(i)} ~ {where(of)}")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def size_checks(usable: int, minimum: int, forced: bool, findings: Findings) -> None:
    if usable < minimum:
        level = "warning" if forced else "error"
        findings.once("few_examples", level,
                      f"{usable:,} usable examples, fewer than {minimum:,}: fine-tuning on so little data "
                      "overfits. Add data, or set data.force = true (or --force) to go on anyway.")
    elif usable > MANY_EXAMPLES:
        findings.once("many_examples", "note",
                      f"{usable:,} examples: past about 10,000, more of the same kind of example brings "
                      "diminishing returns; variety and quality matter more than volume.")


def batch_over_split(exp: Experiment, train: int) -> str | None:
    """A warning when an effective batch a trial can take is larger than the training split:
    every epoch is then one optimizer step on all of it, and a sweep "completes" having barely
    trained. Not a data finding (the prepared splits do not depend on the batch): said when a
    run or `tunelab data` starts."""
    searched = exp.search.space.get("train.batch_size")
    sizes = [exp.train.batch_size]
    if isinstance(searched, RangeSpec):
        sizes.append(int(searched.high))
    elif searched is not None:
        sizes += [v for v in (searched.values if isinstance(searched, ChoiceSpec) else searched)
                  if isinstance(v, int)]
    batch = max(sizes)
    if not 0 < train < batch:
        return None
    return (f"train.batch_size {batch:,} is larger than the training split ({train:,} examples): "
            "each epoch is one optimizer step on all of them. Lower train.batch_size (16 or 32 "
            "is usual) for more steps per epoch.")


def percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return float(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))])

    return {"min": float(ordered[0]), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99),
            "max": float(ordered[-1]), "mean": round(sum(ordered) / len(ordered), 1)}
