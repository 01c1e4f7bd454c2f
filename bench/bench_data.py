"""Benchmark: prepare 100,000 rows (read, normalise, check, near-dedupe, split, count tokens, write).

    python bench/bench_data.py [--rows 100000]

Prints rows per second for the whole preparation, and, on the same rows, the time of its main
parts alone: the plain hashing and datasketch MinHash LSH work, the scratch tokenizer's training,
and rendering plus counting tokens, so the pipeline's own overhead is visible. The
rows are synthetic prompt/completion pairs with 2 % exact and 2 % near duplicates.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [f"w{i}" for i in range(5000)]


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = [{"prompt": " ".join(rng.choices(WORDS, k=20)), "completion": " ".join(rng.choices(WORDS, k=30))}
            for _ in range(n)]
    for i in range(0, n, 50):  # 2 % exact copies of an earlier row
        rows[i] = dict(rows[rng.randrange(max(i, 1))]) if i else rows[i]
    for i in range(25, n, 50):  # 2 % near copies: one word of fifty changed
        src = rows[rng.randrange(i)]
        words = src["completion"].split()
        words[rng.randrange(len(words))] = "changed"
        rows[i] = {"prompt": src["prompt"], "completion": " ".join(words)}
    return rows


def plain_work(texts: list[str]) -> float:
    """sha256 of every text, MinHash of its word 3-grams, LSH query-then-insert: the core alone."""
    from datasketch import MinHash, MinHashLSH

    from tunelab.engine.data.dedupe import NUM_PERM, _hashfunc, shingles

    start = time.perf_counter()
    for t in texts:
        hashlib.sha256(t.encode()).digest()
    sigs = MinHash.bulk((shingles(t) for t in texts), num_perm=NUM_PERM, hashfunc=_hashfunc())
    lsh = MinHashLSH(threshold=0.85, num_perm=NUM_PERM)
    for i, s in enumerate(sigs):
        if not lsh.query(s):
            lsh.insert(i, s, check_duplication=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from tunelab.engine.data.prepare import prepare
    from tunelab.engine.data.render import template_text, token_lengths
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train.model import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = make_rows(args.rows)
        with (folder / "rows.jsonl").open("w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        (folder / "bench.toml").write_text(
            'name = "bench"\n[model]\nscratch = { vocab_size = 2000 }\n'
            '[data]\ntrain = "rows.jsonl"\ndedupe = "near"\n')
        spec = load_spec(folder / "bench.toml")

        start = time.perf_counter()
        prepared = prepare(spec, folder / "cache")
        cold = time.perf_counter() - start
        start = time.perf_counter()
        prepare(spec, folder / "cache")
        warm = time.perf_counter() - start

        r = prepared.report
        print(f"rows: {args.rows:,} → {r.counts['train']:,} / {r.counts['validation']:,} / "
              f"{r.counts['test']:,}; duplicates removed {r.duplicates_removed:,}, "
              f"leaked {r.leaked_removed:,}", file=sys.stderr)
        texts = [row["prompt"] + "\n" + row["completion"] for row in rows]
        core = plain_work(texts)
        train = prepared.rows("train")
        start = time.perf_counter()
        tokenizer = train_tokenizer([r["prompt"] + "\n" + r["completion"] for r in train], 2000)
        tok_train = time.perf_counter() - start
        start = time.perf_counter()
        token_lengths([r for s in ("train", "validation", "test") for r in prepared.rows(s)],
                      tokenizer, template_text("plain", tokenizer))
        counting = time.perf_counter() - start
        print(f"prepare (cold, dedupe near): {cold:.1f}s = {args.rows / cold:,.0f} rows/s")
        print(f"prepare (cached):            {warm:.2f}s")
        print("parts of it, timed alone:")
        print(f"  hashing + MinHash LSH:     {core:.1f}s = {args.rows / core:,.0f} rows/s")
        print(f"  scratch tokenizer training: {tok_train:.1f}s (on the {len(train):,} training rows)")
        print(f"  render + count tokens:     {counting:.1f}s")


if __name__ == "__main__":
    main()
