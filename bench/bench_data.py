"""Benchmark: data preparation at scale against the plain libraries doing the same core work.

    python bench/bench_data.py                  # 20,000 and 100,000 rows, 3 alternating repetitions
    python bench/bench_data.py --million        # and 1,000,000 rows (one repetition; minutes)
    python bench/bench_data.py --rows 20000 --reps 5

The rows are OpenAI-chat conversations (bench/make_chat_data.py: 2 % exact and 2 % near
duplicates, a fifth of them two exchanges long) and the model is a local folder with a
byte-level BPE tokenizer and a ChatML template, as a person brings a hub model. Each run is a
fresh process with a cold cache:

- tunelab: `prepare` (read, normalise, check, split, near-dedupe with leakage, exact prompt tokens,
  write), as `tunelab data` runs it;
- plain: what a person would write with the plain libraries for the core of it: json lines read
  with orjson, the chat template applied and the texts tokenized in batches (transformers), word
  3-gram MinHash with datasketch's bulk API and MinHashLSH query-then-insert.

The two alternate (plain, tunelab, plain, tunelab …) so that a noisy machine slows both alike; the
table gives the median and the spread (min–max) of the wall time, rows per second, and the peak
memory of the whole process tree (the sum of the PSS of the process and its workers, sampled
every 0.1 s; PSS counts pages shared after fork once).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the interpreter of the active environment (a venv's PYTHON can be the base one)
PYTHON = shutil.which("python") or sys.executable

TUNELAB = """
import sys
from pathlib import Path
from tunelab.engine.data.prepare import prepare
from tunelab.engine.data.progress import Progress
from tunelab.engine.spec import load_spec
prepare(load_spec(Path(sys.argv[1])), Path(sys.argv[2]), progress=Progress(show=False))
"""

PLAIN = """
import re, sys, orjson
from datasketch import MinHash, MinHashLSH
from transformers import AutoTokenizer
folder = sys.argv[1]
rows = [orjson.loads(line) for line in open(folder + "/chat.jsonl", "rb")]
tok = AutoTokenizer.from_pretrained(folder + "/model")
texts = tok.apply_chat_template([r["messages"] for r in rows], tokenize=False)
for start in range(0, len(texts), 1000):
    tok(texts[start:start + 1000], add_special_tokens=False)
word = re.compile(r"\\w+")
def grams(row):
    w = word.findall("\\n".join(m["content"] for m in row["messages"]).casefold())
    return [" ".join(w[i:i + 3]).encode() for i in range(max(1, len(w) - 2))]
sigs = MinHash.bulk((grams(r) for r in rows), num_perm=128)
lsh = MinHashLSH(threshold=0.85, num_perm=128)
for i, s in enumerate(sigs):
    if not [c for c in lsh.query(s) if s.jaccard(sigs[c]) >= 0.85]:
        lsh.insert(i, s, check_duplication=False)
"""


def _tree_pss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0
        for p in [root, *root.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total
    except psutil.NoSuchProcess:
        return 0


def timed(code: str, *args: str) -> tuple[float, int]:
    """(wall seconds, peak PSS of the process tree in bytes) of a fresh Python running code."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-c", code, *args], env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.1)
    took = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the run failed (exit {proc.returncode})")
    return took, peak


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}s ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--million", action="store_true", help="also 1,000,000 rows (one repetition)")
    parser.add_argument("--no-plain", action="store_true", help="tunelab only")
    args = parser.parse_args()
    sizes = [(n, args.reps) for n in args.rows] + ([(1_000_000, 1)] if args.million else [])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
          flush=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, reps in sizes:
            folder = Path(tmp) / f"rows{n}"
            subprocess.run([PYTHON, str(HERE / "make_chat_data.py"), "--rows", str(n),
                            "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
            ours: list[tuple[float, int]] = []
            plain: list[tuple[float, int]] = []
            for rep in range(reps):
                if not args.no_plain:
                    plain.append(timed(PLAIN, str(folder)))
                ours.append(timed(TUNELAB, str(folder / "experiment.toml"), str(folder / f"cache{rep}")))
                print(f"  {n:,} rows, repetition {rep + 1}: tunelab {ours[-1][0]:.1f}s"
                      + (f", plain {plain[-1][0]:.1f}s" if plain else ""), flush=True)
            table.append((n, ours, plain))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'rows':>10}  {'tunelab wall':>20} {'rows/s':>8} {'peak':>9}   "
          f"{'plain wall':>20} {'rows/s':>8} {'peak':>9}   {'speed':>6}")
    for n, ours, plain in table:
        t = [w for w, _ in ours]
        line = (f"{n:>10,}  {_spread(t):>20} {n / statistics.median(t):>8,.0f} "
                f"{_gib(max(m for _, m in ours)):>9}")
        if plain:
            p = [w for w, _ in plain]
            ratios = [b / a for a, b in zip(t, p, strict=True)]
            line += (f"   {_spread(p):>20} {n / statistics.median(p):>8,.0f} "
                     f"{_gib(max(m for _, m in plain)):>9}   {statistics.median(ratios):>5.2f}×")
        print(line)
    print("speed: plain wall / tunelab wall, median of the alternating pairs (> 1: tunelab faster)")


if __name__ == "__main__":
    main()
