"""Exact and near duplicates within a split, and leakage between train and validation/test."""

from __future__ import annotations

import random
from pathlib import Path

from data_helpers import finding, jsonl, pc_rows, prepared, sentence

from tunelab.engine.data.dedupe import dedupe
from tunelab.engine.data.reading import bucket as _bucket
from tunelab.engine.data.reading import content_key as _content_key


def _long_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"prompt": f"R{seed}x{i} " + sentence(rng, 30), "completion": sentence(rng, 30)}
            for i in range(n)]


def _near_copy(row: dict[str, str], word: str = "zeppelin") -> dict[str, str]:
    """The same example with one word of sixty changed and different spacing and case."""
    words = row["completion"].split()
    words[-1] = word
    return {"prompt": row["prompt"].upper(), "completion": "  ".join(words)}


def test_exact_duplicates_are_removed_keeping_the_first() -> None:
    texts = ["a b c", "d e f", "A  b c", "g h i", "d e f"]
    kept, removed, _ = dedupe(texts, "exact", 0.85)
    assert kept == [0, 1, 3]
    assert [(m.index, m.of, m.kind) for m in removed] == [(2, 0, "exact"), (4, 1, "exact")]


def test_near_duplicates_are_found_by_minhash_and_distinct_rows_are_not() -> None:
    rows = _long_rows(300)
    texts = [r["prompt"] + "\n" + r["completion"] for r in rows]
    near = _near_copy(rows[17])
    texts.append(near["prompt"] + "\n" + near["completion"])
    kept, removed, _ = dedupe(texts, "near", 0.85)
    assert [(m.index, m.of, m.kind) for m in removed] == [(300, 17, "near")]
    assert len(kept) == 300
    assert dedupe(texts, "exact", 0.85)[1] == []  # not an exact duplicate


def test_duplicates_in_a_file_are_reported_with_both_places(tmp_path: Path) -> None:
    rows = _long_rows(130)
    rows += [dict(rows[5]), _near_copy(rows[9])]
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    exact, near = finding(p.report, "duplicate_exact"), finding(p.report, "duplicate_near")
    assert exact.examples == ["d.jsonl:131 ~ d.jsonl:6"]
    assert near.examples == ["d.jsonl:132 ~ d.jsonl:10"] and "0.85" in near.message
    assert p.report.duplicates_removed == 2 and sum(p.report.counts.values()) == 130


def test_dedupe_exact_keeps_near_duplicates(tmp_path: Path) -> None:
    rows = _long_rows(130)
    rows.append(_near_copy(rows[9]))
    p = prepared(tmp_path, 'train = "d.jsonl"\ndedupe = "exact"', {"d.jsonl": jsonl(rows)})
    assert sum(p.report.counts.values()) == 131 and p.report.duplicates_removed == 0


def test_dedupe_none_keeps_every_row(tmp_path: Path) -> None:
    rows = pc_rows(120)
    rows += rows[:5]
    p = prepared(tmp_path, 'train = "d.jsonl"\ndedupe = "none"', {"d.jsonl": jsonl(rows)})
    assert sum(p.report.counts.values()) == 125


def test_near_duplicates_across_the_split_are_leakage_removed_from_test(tmp_path: Path) -> None:
    rows = _long_rows(200)
    spec_data = 'train = "d.jsonl"'
    first = prepared(tmp_path / "a", spec_data, {"d.jsonl": jsonl(rows)})
    train_row = first.rows("train")[0]
    # a near copy whose content hashes into validation or test is a leak of a training row
    for n in range(60):  # the hash decides where the copy lands; look for one outside train
        copy = _near_copy({"prompt": train_row["prompt"], "completion": train_row["completion"]},
                          f"word{n}")
        if _bucket(_content_key({"messages": [{"role": "user", "content": copy["prompt"]}, {
                "role": "assistant", "content": copy["completion"]}]}), 42) < 0.8:
            continue
        candidate = prepared(tmp_path / f"b{n}", spec_data, {"d.jsonl": jsonl([*rows, copy])})
        if candidate.report.leaked_removed:
            leak = finding(candidate.report, "leakage")
            assert leak.examples == ["d.jsonl:201"] and "near" in leak.message
            assert sum(candidate.report.counts.values()) == 200
            return
    raise AssertionError("no near copy landed outside train")


def test_explicit_validation_rows_that_repeat_training_rows_are_removed(tmp_path: Path) -> None:
    train = pc_rows(150, seed=1)
    validation = pc_rows(20, seed=2) + [train[3], train[8]]
    p = prepared(tmp_path, 'train = "t.jsonl"\nvalidation = "v.jsonl"',
                 {"t.jsonl": jsonl(train), "v.jsonl": jsonl(validation)})
    leak = finding(p.report, "leakage")
    assert sorted(leak.examples) == ["v.jsonl:21", "v.jsonl:22"] and "exact" in leak.message
    assert p.report.leaked_removed == 2 and p.report.counts["validation"] == 20


def _datasketch_dedupe(texts: list[str], threshold: float) -> set[int]:
    """The near-duplicate removal as it was written on datasketch (MinHash.bulk, MinHashLSH,
    query then insert, each candidate checked against the threshold): the reference."""
    import hashlib as _hashlib

    import xxhash
    from datasketch import MinHash, MinHashLSH

    from tunelab.engine.data.dedupe import NUM_PERM, shingles

    sigs = MinHash.bulk(([s.encode() for s in shingles(t)] for t in texts), num_perm=NUM_PERM,
                        hashfunc=xxhash.xxh32_intdigest)
    lsh, keys, removed = MinHashLSH(threshold=threshold, num_perm=NUM_PERM), set(), set()
    for i, (text, sig) in enumerate(zip(texts, sigs, strict=True)):
        key = _hashlib.blake2b(" ".join(text.casefold().split()).encode(), digest_size=16).digest()
        if key in keys or any(sig.jaccard(sigs[c]) >= threshold for c in lsh.query(sig)):
            removed.add(i)
            continue
        keys.add(key)
        lsh.insert(i, sig, check_duplication=False)
    return removed


def test_the_native_minhash_removes_the_same_rows_as_datasketch_within_minhash_noise() -> None:
    from tunelab.engine.data.dedupe import shingles

    rng = random.Random(3)
    vocabulary = [f"v{i}" for i in range(3000)]
    texts = [" ".join(rng.choices(vocabulary, k=200)) for _ in range(800)]
    truth: dict[int, float] = {}  # copy -> true Jaccard of its 3-grams with its source
    for changed in range(0, 16):  # from identical to clearly different, across the threshold
        for _ in range(25):
            source = rng.randrange(800)
            words = texts[source].split()
            for place in rng.sample(range(200), changed):
                words[place] = f"x{rng.randrange(10**6)}"
            truth[len(texts)] = _jaccard(shingles(texts[source]), shingles(" ".join(words)))
            texts.append(" ".join(words))
    kept, removed, _ = dedupe(texts, "near", 0.85)
    ours = {m.index for m in removed}
    reference = _datasketch_dedupe(texts, 0.85)
    assert len(reference) > 100 and {i for i, j in truth.items() if j >= 0.95} <= ours
    assert not {i for i, j in truth.items() if j < 0.7} & ours
    # they may differ only on rows whose true similarity is close to the threshold
    differ = ours ^ reference
    assert all(abs(truth.get(i, 0) - 0.85) < 0.1 for i in differ), sorted(
        (i, round(truth.get(i, 0), 3)) for i in differ)
    # and on those the two find about as many (estimates on either side of the threshold)
    assert abs(len(ours) - len(reference)) <= 0.1 * len(reference)


def _jaccard(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / len(set(a) | set(b))
