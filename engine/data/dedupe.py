"""Exact and near-duplicate detection: a hash of the normalised text, and MinHash LSH (rensa, in
Rust; the LSH bands are those datasketch would choose).

Two examples are near-duplicates when the estimated Jaccard similarity of their word 3-grams is
at least the threshold. LSH finds the candidates without comparing every pair; each candidate is
then checked against the threshold with its MinHash, so the LSH's false positives are not
reported. Within a split the first occurrence is kept; between splits (leakage) the training
copy is kept and the validation or test copy removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NUM_PERM = 128
SEED = 1
_WORD = re.compile(r"\w+", re.UNICODE)


def exact_key(text: str) -> bytes:
    """Equal for texts that differ only in case and whitespace."""
    return hashlib.blake2b(" ".join(text.casefold().split()).encode(), digest_size=16).digest()


def shingles(text: str, n: int = 3) -> list[str]:
    words = _WORD.findall(text.casefold())
    if len(words) <= n:
        return [" ".join(words)]
    # the n-grams: the word list and its shifted copies zipped (zip stops at the shortest)
    return list({" ".join(gram) for gram in zip(*(words[i:] for i in range(n)), strict=False)})


def signatures(texts: Sequence[str]) -> list[Any]:
    """The MinHash of each text's word 3-grams, computed in one call in Rust (rensa): the Python
    side only cuts the words."""
    from rensa import RMinHash

    return list(RMinHash.from_token_sets([shingles(t) for t in texts], NUM_PERM, SEED))


def _bands(threshold: float) -> int:
    """The number of LSH bands datasketch picks for this threshold (equal weight on false
    positives and negatives), so the candidates are those datasketch's MinHashLSH would find."""
    try:
        from datasketch.lsh import _optimal_param  # private, hence the fallback below

        bands, _ = _optimal_param(threshold, NUM_PERM, 0.5, 0.5)
        return int(bands)
    except ImportError:  # pragma: no cover
        return 8


@dataclass(frozen=True)
class Match:
    index: int  # the row that is a duplicate
    of: int  # the row it duplicates (the kept one)
    kind: str  # exact | near


class DuplicateIndex:
    """Rows added so far, searchable by exact key and (when near) by MinHash LSH."""

    def __init__(self, near: bool, threshold: float) -> None:
        self.near = near
        self.threshold = threshold
        self.keys: dict[bytes, int] = {}
        self.lsh: Any = None
        self.signatures: list[Any] = []  # by LSH key (rensa's keys are 0, 1, 2 …)
        self.ids: list[int] = []  # the row id of each LSH key
        if near:
            from rensa import RMinHashLSH

            self.lsh = RMinHashLSH(threshold, NUM_PERM, _bands(threshold))

    def match(self, key: bytes, signature: Any) -> tuple[int, str] | None:
        found = self.keys.get(key)
        if found is not None:
            return found, "exact"
        if self.near and signature is not None:
            best = None
            for candidate in self.lsh.query(signature):
                similarity = signature.jaccard(self.signatures[candidate])
                if similarity >= self.threshold and (best is None or similarity > best[1]
                                                     or (similarity == best[1] and candidate < best[0])):
                    best = (candidate, similarity)
            if best is not None:
                return self.ids[best[0]], "near"
        return None

    def offer(self, row_id: int, text: str) -> tuple[int, str] | None:
        """The match of a new text, or None after adding it to the index."""
        key = exact_key(text)
        signature = signatures([text])[0] if self.near else None
        found = self.match(key, signature)
        if found is None:
            self.add(row_id, key, signature)
        return found

    def add(self, index: int, key: bytes, signature: Any) -> None:
        self.keys.setdefault(key, index)
        if self.near and signature is not None:
            self.lsh.insert(len(self.ids), signature)
            self.signatures.append(signature)
            self.ids.append(index)


def dedupe(texts: Sequence[str], mode: str, threshold: float, ids: Sequence[int] | None = None,
           sigs: Sequence[Any] | None = None) -> tuple[list[int], list[Match], DuplicateIndex]:
    """(positions kept, duplicates removed, an index of the kept rows) for texts in order.

    `ids` name the rows in the matches and the index (default: their positions); `sigs` are
    their MinHash signatures when already computed."""
    ids = list(range(len(texts))) if ids is None else list(ids)
    index = DuplicateIndex(near=mode == "near", threshold=threshold)
    if sigs is None:
        sigs = signatures(texts) if mode == "near" else [None] * len(texts)
    kept: list[int] = []
    removed: list[Match] = []
    for position, (text, sig) in enumerate(zip(texts, sigs, strict=True)):
        key = exact_key(text)
        if mode == "none":
            kept.append(position)
            continue
        found = index.match(key, sig)
        if found is not None:
            removed.append(Match(ids[position], found[0], found[1]))
        else:
            index.add(ids[position], key, sig)
            kept.append(position)
    return kept, removed, index


def leaks(index: DuplicateIndex, texts: Sequence[str], ids: Sequence[int],
          sigs: Sequence[Any] | None = None) -> list[Match]:
    """The texts (of validation or test) that duplicate a row of the index (of train)."""
    if sigs is None:
        sigs = signatures(texts) if index.near else [None] * len(texts)
    found = []
    for row_id, text, sig in zip(ids, texts, sigs, strict=True):
        hit = index.match(exact_key(text), sig)
        if hit is not None:
            found.append(Match(row_id, hit[0], hit[1]))
    return found
