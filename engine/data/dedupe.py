"""Exact and near-duplicate detection: a hash of the normalised text, and MinHash LSH (the MinHash
by rensa, in Rust; the LSH bands are those datasketch would choose).

Two examples are near-duplicates when the estimated Jaccard similarity of their word 3-grams is
at least the threshold. LSH finds the candidates without comparing every pair; each candidate is
then checked against the threshold with its MinHash, so the LSH's false positives are not
reported. Within a split the first occurrence is kept; between splits (leakage) the training
copy is kept and the validation or test copy removed.

At a million rows what is held is a few numbers a row (`Signed`): the exact keys grouped (equal
texts share a group), and for near-duplicates the LSH buckets that hold more than one row; the
signatures themselves wait in a file and are read only for the candidates of a match.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

NUM_PERM = 128
SEED = 1
_WORD = re.compile(r"\w+", re.UNICODE)
_JOIN = " ".join


def exact_key(text: str) -> bytes:
    """Equal for texts that differ only in case and whitespace."""
    return hashlib.blake2b(" ".join(text.casefold().split()).encode(), digest_size=16).digest()


def shingles(text: str, n: int = 3) -> list[str]:
    """The word n-grams of a text (a repeated one may come more than once: a MinHash is the
    same either way, and not de-duplicating them here saves hashing every one twice)."""
    words = _WORD.findall(text.casefold())
    if len(words) <= n:
        return [" ".join(words)]
    return list(map(_JOIN, zip(*(words[i:] for i in range(n)), strict=False)))


def signatures(texts: Sequence[str]) -> np.ndarray:
    """The MinHash of each text's word 3-grams, computed in one call in Rust (rensa; the Python
    side only cuts the words): one row of 128 32-bit values per text."""
    from rensa import RMinHash

    found = np.zeros((len(texts), NUM_PERM), dtype=np.uint32)
    for i, m in enumerate(RMinHash.from_token_sets([shingles(t) for t in texts], NUM_PERM, SEED)):
        found[i] = m.digest()
    return found


@lru_cache(maxsize=8)  # datasketch integrates numerically to choose: a tenth of a second a call
def _bands(threshold: float) -> tuple[int, int]:
    """(bands, rows a band) as datasketch's MinHashLSH picks them for this threshold (equal weight
    on false positives and negatives), so the candidates are those datasketch would find."""
    try:
        from datasketch.lsh import _optimal_param  # private, hence the fallback below

        bands, width = _optimal_param(threshold, NUM_PERM, 0.5, 0.5)
        return int(bands), int(width)
    except ImportError:  # pragma: no cover
        return 8, 16


def band_hashes(sigs: np.ndarray, threshold: float) -> np.ndarray:
    """One 64-bit hash per LSH band of each signature (rows equal in a band collide; rows that
    collide otherwise are told apart by the check of their similarity)."""
    bands, width = _bands(threshold)
    cut = sigs[:, :bands * width].reshape(len(sigs), bands, width).astype(np.uint64)
    weights = np.uint64(0x9E3779B97F4A7C15) ** np.arange(1, width + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrapping multiplication is the point of the hash
        return (cut * weights).sum(axis=2, dtype=np.uint64)


def keys_and_signatures(texts: Sequence[str], near: bool, threshold: float
                        ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The per-row work of de-duplication, done where the texts are (a preparation's workers):
    (exact keys as 16-byte values, band hashes, signatures); the last two only when near."""
    keys = np.array([exact_key(t) for t in texts], dtype="S16")
    if not near:
        return keys, None, None
    sigs = signatures(texts)
    return keys, band_hashes(sigs, threshold), sigs


@dataclass(frozen=True)
class Match:
    index: int  # the row that is a duplicate
    of: int  # the row it duplicates (the kept one)
    kind: str  # exact | near


class Signed:
    """What de-duplication keeps of every row: its exact-key group and, for near-duplicates, the
    shared LSH buckets it is in; the signatures are in a file (`signature_file`, 512 bytes a
    row, read for a match's candidates only)."""

    def __init__(self, keys: np.ndarray, bands: np.ndarray | None, signature_file: Path | None,
                 threshold: float) -> None:
        self.threshold = threshold
        # rows with the same exact key share a group number
        self.groups: np.ndarray = (np.unique(keys, return_inverse=True)[1].reshape(-1) if len(keys)
                                   else np.zeros(0, dtype=np.int64))
        self.near = bands is not None
        self.shared: dict[int, list[int]] = {}  # row -> its buckets that other rows are in too
        if bands is not None and len(bands):
            for b in range(bands.shape[1]):
                _, bucket, counts = np.unique(bands[:, b], return_inverse=True, return_counts=True)
                bucket = bucket.reshape(-1)
                for row in np.flatnonzero(counts[bucket] > 1).tolist():
                    self.shared.setdefault(row, []).append(b * len(bands) + int(bucket[row]))
        self._file = signature_file
        self._sigs: np.ndarray | None = None

    def similarity(self, a: int, b: int) -> float:
        """The Jaccard similarity the two rows' signatures estimate: the share of equal values."""
        if self._sigs is None:
            assert self._file is not None
            self._sigs = np.memmap(self._file, dtype=np.uint32, mode="r").reshape(-1, NUM_PERM)
        return float(np.count_nonzero(self._sigs[a] == self._sigs[b])) / NUM_PERM

    def close(self) -> None:
        self._sigs = None  # the map is let go: its pages no longer count in this process


class DuplicateIndex:
    """Rows added so far, searchable by exact key and (when near) by MinHash LSH: a row is a
    candidate when one band of its signature is equal."""

    def __init__(self, signed: Signed, near: bool) -> None:
        self.signed = signed
        self.near = near and signed.near
        self.first: dict[int, int] = {}  # exact-key group -> the first row added with it
        self.members: dict[int, list[int]] = {}  # shared bucket -> rows added, in order

    def match(self, row: int) -> tuple[int, str] | None:
        found = self.first.get(int(self.signed.groups[row]))
        if found is not None:
            return found, "exact"
        if not self.near or row not in self.signed.shared:
            return None
        candidates = sorted({c for bucket in self.signed.shared[row] for c in self.members.get(bucket, ())})
        best = None
        for candidate in candidates:  # the most similar; the first of equals
            similarity = self.signed.similarity(row, candidate)
            if similarity >= self.signed.threshold and (best is None or similarity > best[1]):
                best = (candidate, similarity)
        return (best[0], "near") if best is not None else None

    def add(self, row: int) -> None:
        self.first.setdefault(int(self.signed.groups[row]), row)
        if self.near:
            for bucket in self.signed.shared.get(row, ()):
                self.members.setdefault(bucket, []).append(row)

    def offer(self, row: int) -> tuple[int, str] | None:
        """The match of a new row, or None after adding it to the index."""
        found = self.match(row)
        if found is None:
            self.add(row)
        return found


def dedupe_rows(signed: Signed, rows: Iterable[int], mode: str
                ) -> tuple[list[int], list[Match], DuplicateIndex]:
    """(rows kept, duplicates removed, an index of the kept rows) for the rows in order; the
    first occurrence is kept."""
    index = DuplicateIndex(signed, near=mode == "near")
    kept: list[int] = []
    removed: list[Match] = []
    for row in rows:
        found = index.match(row) if mode != "none" else None
        if found is not None:
            removed.append(Match(row, found[0], found[1]))
        else:
            if mode != "none":
                index.add(row)
            kept.append(row)
    return kept, removed, index


def leaks(index: DuplicateIndex, rows: Iterable[int]) -> list[Match]:
    """The rows (of validation or test) that duplicate a row of the index (of train)."""
    found = []
    for row in rows:
        hit = index.match(row)
        if hit is not None:
            found.append(Match(row, hit[0], hit[1]))
    return found


def dedupe(texts: Sequence[str], mode: str, threshold: float, folder: Path | None = None
           ) -> tuple[list[int], list[Match], Any]:
    """dedupe_rows for a list of texts (their positions are the rows); the signatures wait in
    a file in `folder` (a temporary one by default)."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        keys, bands, sigs = keys_and_signatures(texts, mode == "near", threshold)
        path = Path(tmp) / "signatures"
        if sigs is not None:
            sigs.tofile(path)
        signed = Signed(keys, bands, path if sigs is not None else None, threshold)
        try:
            return dedupe_rows(signed, range(len(texts)), mode)
        finally:
            signed.close()
