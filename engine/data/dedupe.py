"""Exact and near-duplicate detection: a hash of the normalised text, and MinHash LSH (the MinHash
by rensa, in Rust; the LSH bands are those datasketch would choose).

Two examples are near-duplicates when the estimated Jaccard similarity of their word 3-grams is
at least the threshold. LSH finds the candidates without comparing every pair; each candidate is
then checked against the threshold with its MinHash, so the LSH's false positives are not
reported. Within a split the first occurrence is kept; between splits (leakage) the training
copy is kept and the validation or test copy removed.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def signatures(texts: Sequence[str]) -> list[bytes]:
    """The MinHash of each text's word 3-grams, computed in one call in Rust (rensa; the Python
    side only cuts the words), kept as its 128 32-bit values in bytes: 545 bytes a row, where
    the MinHash object takes about 1.2 KB (a million rows are held at once)."""
    from rensa import RMinHash

    return [array("I", m.digest()).tobytes()
            for m in RMinHash.from_token_sets([shingles(t) for t in texts], NUM_PERM, SEED)]


def jaccard(a: bytes, b: bytes) -> float:
    """The Jaccard similarity two signatures estimate: the share of equal values."""
    return float(np.count_nonzero(np.frombuffer(a, np.uint32) == np.frombuffer(b, np.uint32))) / NUM_PERM


def _bands(threshold: float) -> tuple[int, int]:
    """(bands, rows a band) as datasketch's MinHashLSH picks them for this threshold (equal weight
    on false positives and negatives), so the candidates are those datasketch would find."""
    try:
        from datasketch.lsh import _optimal_param  # private, hence the fallback below

        bands, width = _optimal_param(threshold, NUM_PERM, 0.5, 0.5)
        return int(bands), int(width)
    except ImportError:  # pragma: no cover
        return 8, 16


@dataclass(frozen=True)
class Match:
    index: int  # the row that is a duplicate
    of: int  # the row it duplicates (the kept one)
    kind: str  # exact | near


class DuplicateIndex:
    """Rows added so far, searchable by exact key and (when near) by MinHash LSH: the signature
    cut into bands, a row a candidate when one band is equal. The buckets are plain dicts of band
    hashes (about 1 KB a row; rensa's own LSH index keeps about ten times that)."""

    def __init__(self, near: bool, threshold: float) -> None:
        self.near = near
        self.threshold = threshold
        self.keys: dict[bytes, int] = {}
        self.signatures: list[bytes] = []  # of the rows in the LSH, by their position
        self.ids: list[int] = []  # the row id of each position
        self.bands, self.width = _bands(threshold) if near else (0, 0)
        self.buckets: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]

    def _band_hashes(self, signature: bytes) -> list[int]:
        w = 4 * self.width  # bytes a band
        return [hash(signature[b * w:(b + 1) * w]) for b in range(self.bands)]

    def match(self, key: bytes, signature: bytes | None) -> tuple[int, str] | None:
        found = self.keys.get(key)
        if found is not None:
            return found, "exact"
        if self.near and signature is not None:
            candidates: set[int] = set()
            for bucket, h in zip(self.buckets, self._band_hashes(signature), strict=True):
                there = bucket.get(h)
                if there is not None:
                    candidates.update(there if isinstance(there, list) else (there,))
            best = None
            for candidate in sorted(candidates):
                similarity = jaccard(signature, self.signatures[candidate])
                if similarity >= self.threshold and (best is None or similarity > best[1]):
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

    def add(self, index: int, key: bytes, signature: bytes | None) -> None:
        self.keys.setdefault(key, index)
        if self.near and signature is not None:
            position = len(self.ids)
            for bucket, h in zip(self.buckets, self._band_hashes(signature), strict=True):
                there = bucket.setdefault(h, position)
                if there != position:
                    if isinstance(there, list):
                        there.append(position)
                    else:
                        bucket[h] = [there, position]
            self.signatures.append(signature)
            self.ids.append(index)


def keys_and_signatures(texts: Sequence[str], near: bool) -> tuple[list[bytes], list[bytes | None]]:
    """The exact keys and (when near) the MinHash signatures of texts: the per-row work of
    de-duplication, done where the texts are (a preparation's workers)."""
    sigs: list[bytes | None] = list(signatures(texts)) if near else [None] * len(texts)
    return [exact_key(t) for t in texts], sigs


def dedupe(texts: Sequence[str] | None, mode: str, threshold: float, ids: Sequence[int] | None = None,
           sigs: Sequence[Any] | None = None,
           keys: Sequence[bytes] | None = None) -> tuple[list[int], list[Match], DuplicateIndex]:
    """(positions kept, duplicates removed, an index of the kept rows) for texts in order.

    `ids` name the rows in the matches and the index (default: their positions); `keys` and
    `sigs` are their exact keys and MinHash signatures when already computed (texts may then be
    None)."""
    if keys is None:
        assert texts is not None
        keys = [exact_key(t) for t in texts]
    ids = list(range(len(keys))) if ids is None else list(ids)
    index = DuplicateIndex(near=mode == "near", threshold=threshold)
    if sigs is None:
        assert texts is not None
        sigs = signatures(texts) if mode == "near" else [None] * len(texts)
    kept: list[int] = []
    removed: list[Match] = []
    for position, (key, sig) in enumerate(zip(keys, sigs, strict=True)):
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


def leaks(index: DuplicateIndex, texts: Sequence[str] | None, ids: Sequence[int],
          sigs: Sequence[Any] | None = None, keys: Sequence[bytes] | None = None) -> list[Match]:
    """The texts (of validation or test) that duplicate a row of the index (of train); their
    keys and signatures when already computed (texts may then be None)."""
    if keys is None:
        assert texts is not None
        keys = [exact_key(t) for t in texts]
    if sigs is None:
        assert texts is not None
        sigs = signatures(texts) if index.near else [None] * len(texts)
    found = []
    for row_id, key, sig in zip(ids, keys, sigs, strict=True):
        hit = index.match(key, sig)
        if hit is not None:
            found.append(Match(row_id, hit[0], hit[1]))
    return found
