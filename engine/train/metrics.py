"""Generation metrics: plain functions of predictions and references, each in [0, 1].

BLEU and chrF come from sacrebleu and ROUGE-L from rouge-score (never `evaluate.load`,
which fetches scripts from the hub). Exact match and accuracy compare normalised text;
macro-F1 treats each distinct reference as a label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    pairs = list(zip(predictions, references, strict=True))
    return sum(normalise(p) == normalise(r) for p, r in pairs) / len(pairs) if pairs else 0.0


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """For label outputs: the first line of the prediction against the label."""
    firsts = [p.strip().splitlines()[0] if p.strip() else "" for p in predictions]
    return exact_match(firsts, references)


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    labels = sorted({normalise(r) for r in references})
    preds = [normalise(p.strip().splitlines()[0]) if p.strip() else "" for p in predictions]
    refs = [normalise(r) for r in references]
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(preds, refs, strict=True))
        fp = sum(p == label and r != label for p, r in zip(preds, refs, strict=True))
        fn = sum(p != label and r == label for p, r in zip(preds, refs, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def contains(predictions: Sequence[str], references: Sequence[str]) -> float:
    pairs = list(zip(predictions, references, strict=True))
    return sum(normalise(r) in normalise(p) for p, r in pairs) / len(pairs) if pairs else 0.0


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_chrf(list(predictions), [list(references)]).score / 100


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = [scorer.score(r, p)["rougeL"].fmeasure
              for p, r in zip(predictions, references, strict=True)]
    return sum(scores) / len(scores) if scores else 0.0


GENERATION: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "exact_match": exact_match,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "bleu": bleu,
    "chrf": chrf,
    "rouge_l": rouge_l,
    "contains": contains,
}
