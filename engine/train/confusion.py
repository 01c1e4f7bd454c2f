"""A classifier's confusion matrix, the accuracy and macro F1 read from it, and how the store
holds it. Light (the standard library only): the TUI reads the matrix back with the same names.

Macro F1 is scikit-learn's `f1_score(average="macro")`: the mean F1 over the labels that occur
among the true or the predicted labels (a class the model never predicted and that never occurs
is no label of this split). In the store each cell is a row of `evaluations` with split
"confusion" and name "TRUE → PREDICTED" (the test split's; zero cells are kept, so the matrix
is whole): `select name, value from evaluations where split = 'confusion'`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPLIT = "confusion"
ARROW = " → "


@dataclass(frozen=True)
class Confusion:
    """Counts of (true label, predicted label) over the classes, in class order."""

    labels: tuple[str, ...]
    counts: Mapping[tuple[str, str], int]

    @classmethod
    def of(cls, labels: Sequence[str], truth: Sequence[str], predicted: Sequence[str]) -> Confusion:
        return cls(tuple(labels), Counter(zip(truth, predicted, strict=True)))

    def count(self, truth: str, predicted: str) -> int:
        return int(self.counts.get((truth, predicted), 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def accuracy(self) -> float:
        return sum(self.count(label, label) for label in self.labels) / self.total if self.total else 0.0

    @property
    def macro_f1(self) -> float:
        scores = []
        for label in self.labels:
            hit = self.count(label, label)
            missed = sum(self.count(label, other) for other in self.labels) - hit
            wrong = sum(self.count(other, label) for other in self.labels) - hit
            if hit + missed + wrong:  # the label occurs (truly or predicted)
                scores.append(2 * hit / (2 * hit + missed + wrong))
        return sum(scores) / len(scores) if scores else 0.0

    def cells(self) -> dict[str, float]:
        """name -> count for the store (split "confusion"), every cell of the matrix."""
        return {f"{truth}{ARROW}{predicted}": float(self.count(truth, predicted))
                for truth in self.labels for predicted in self.labels}


def from_values(values: Mapping[str, float]) -> Confusion | None:
    """The matrix among a model's evaluations ("confusion/TRUE → PREDICTED" -> count)."""
    counts: dict[tuple[str, str], int] = {}
    for key, value in values.items():
        split, _, name = key.partition("/")
        if split != SPLIT or ARROW not in name:
            continue
        truth, _, predicted = name.rpartition(ARROW)
        counts[(truth, predicted)] = int(value)
    if not counts:
        return None
    labels = sorted({label for pair in counts for label in pair})
    return Confusion(tuple(labels), Counter(counts))
