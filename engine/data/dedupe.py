"""Exact and near-duplicate detection: a hash of the normalised text, and MinHash LSH (datasketch).

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
_WORD = re.compile(r"\w+", re.UNICODE)


def exact_key(text: str) -> bytes:
    """Equal for texts that differ only in case and whitespace."""
    return hashlib.blake2b(" ".join(text.casefold().split()).encode(), digest_size=16).digest()


def shingles(text: str, n: int = 3) -> list[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) <= n:
        return [" ".join(words).encode()]
    return list({" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)})


def _hashfunc() -> Any:
    try:
        import xxhash  # a dependency of datasets; several times faster than sha1

        return xxhash.xxh32_intdigest
    except ImportError:  # pragma: no cover - datasketch's own default
        from datasketch.hashfunc import sha1_hash32

        return sha1_hash32


def signatures(texts: Sequence[str]) -> list[Any]:
    from datasketch import MinHash

    return MinHash.bulk((shingles(t) for t in texts), num_perm=NUM_PERM, hashfunc=_hashfunc())


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
        self.signatures: dict[int, Any] = {}
        if near:
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)

    def match(self, key: bytes, signature: Any) -> tuple[int, str] | None:
        found = self.keys.get(key)
        if found is not None:
            return found, "exact"
        if self.near and signature is not None:
            best = None
            for candidate in self.lsh.query(signature):
                similarity = signature.jaccard(self.signatures[candidate])
                if similarity >= self.threshold and (best is None or similarity > best[1]):
                    best = (candidate, similarity)
            if best is not None:
                return best[0], "near"
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
            self.signatures[index] = signature
            self.lsh.insert(index, signature, check_duplication=False)


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
