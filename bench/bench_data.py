"""Benchmark: data preparation at scale against the plain libraries doing the same core work.

    python bench/bench_data.py                  # 20,000 and 100,000 rows, 3 alternating repetitions,
                                                # and 1,000,000 rows (tunelab only, one run; minutes)
    python bench/bench_data.py --quick          # 20,000 rows, one pair (under a minute)
    python bench/bench_data.py --rows 20000 --reps 5 --no-million
    python bench/bench_data.py --json rows.json # the rows for the suite (python -m bench)

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
every 0.1 s; PSS counts pages shared after fork once), and the CPU seconds of the process tree
(user + system of the process and its workers: less disturbed by other load than the wall time).

The rows for the suite: rows/s at 100,000 rows beside plain and beside the ceiling (the tokenizer
alone on the same rendered texts, measured in the same run: the target is ≥ 0.75× of it), the peak
memory at 100,000 rows (≤ 1 GiB) and at 1,000,000 rows (≤ 2 GiB); with --quick, the same at
20,000 rows, without verdicts (the targets are set at 100,000 rows).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Row, write_rows  # noqa: E402 - the bench folder is not a package when run

TARGET_CEILING = 0.75  # of the tokenizer alone's rows/s, at 100,000 rows, cold, near-dedupe
TARGET_PEAK = {100_000: 1 * 2**30, 1_000_000: 2 * 2**30}  # bytes
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

# The ceiling: the tokenizer alone on the rendered texts of every row, on all cores, nothing
# else (no reading, no checks, no de-duplication). Every preparation that counts tokens with
# this tokenizer is slower than this; it prints the seconds of the tokenizing call only.
TOKENIZER_ALONE = """
import sys, time, orjson
from transformers import AutoTokenizer
folder = sys.argv[1]
rows = [orjson.loads(line) for line in open(folder + "/chat.jsonl", "rb")]
tok = AutoTokenizer.from_pretrained(folder + "/model")
texts = tok.apply_chat_template([r["messages"] for r in rows], tokenize=False)
start = time.perf_counter()
tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)  # as tok(texts) calls it
print(time.perf_counter() - start)
"""


def tokenizer_alone(folder: Path) -> float:
    """Seconds the tokenizer alone takes over every row's rendered text, on all cores."""
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    done = subprocess.run([PYTHON, "-c", TOKENIZER_ALONE, str(folder)], env=env, check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[-1])


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


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    peak: int  # bytes, PSS of the process tree
    cpu: float  # seconds, user + system of the process tree


def timed(code: str, *args: str) -> Run:
    """A fresh Python running code: its wall time, peak memory and CPU time."""
    # the tokenizers library's own threads as a person gets them (the suite sets it to false)
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    env["HF_HUB_OFFLINE"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-c", code, *args], env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.1)
    took = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the run failed (exit {proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and the workers it reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(took, peak, cpu)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}s ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-million", action="store_true", help="leave out the 1,000,000-row run")
    parser.add_argument("--no-plain", action="store_true", help="tunelab only")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one pair, no million")
    parser.add_argument("--json", type=Path, help="write the suite's rows here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.reps, args.no_million = [20_000], 1, True
    sizes = [(n, args.reps) for n in args.rows] + ([] if args.no_million else [(1_000_000, 1)])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
          flush=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, reps in sizes:
            folder = Path(tmp) / f"rows{n}"
            subprocess.run([PYTHON, str(HERE / "make_chat_data.py"), "--rows", str(n),
                            "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
            ours: list[Run] = []
            plain: list[Run] = []
            alone: list[float] = []
            for rep in range(reps):
                # a million rows: tunelab alone (the memory figure is tunelab's)
                if not args.no_plain and n < 1_000_000:
                    plain.append(timed(PLAIN, str(folder)))
                    alone.append(tokenizer_alone(folder))
                ours.append(timed(TUNELAB, str(folder / "experiment.toml"), str(folder / f"cache{rep}")))
                print(f"  {n:,} rows, repetition {rep + 1}: tunelab {ours[-1].wall:.1f}s "
                      f"(cpu {ours[-1].cpu:.1f}s)"
                      + (f", plain {plain[-1].wall:.1f}s (cpu {plain[-1].cpu:.1f}s), the tokenizer "
                         f"alone {alone[-1]:.1f}s" if plain else ""),
                      flush=True)
            shutil.rmtree(folder, ignore_errors=True)
            table.append((n, ours, plain, alone))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'rows':>10}  {'tunelab wall':>20} {'rows/s':>8} {'cpu s':>7} {'peak':>9}   "
          f"{'plain wall':>20} {'rows/s':>8} {'cpu s':>7} {'peak':>9}   {'speed':>6}")
    for n, ours, plain, alone in table:
        t = [r.wall for r in ours]
        line = (f"{n:>10,}  {_spread(t):>20} {n / statistics.median(t):>8,.0f} "
                f"{statistics.median(r.cpu for r in ours):>7.1f} {_gib(max(r.peak for r in ours)):>9}")
        if plain:
            p = [r.wall for r in plain]
            line += (f"   {_spread(p):>20} {n / statistics.median(p):>8,.0f} "
                     f"{statistics.median(r.cpu for r in plain):>7.1f} "
                     f"{_gib(max(r.peak for r in plain)):>9}   "
                     f"{statistics.median(_ratios(ours, plain)):>5.2f}×")
        print(line)
        if alone:
            print(f"{'':>10}  the tokenizer alone, all cores, nothing else: {statistics.median(alone):.1f}s "
                  f"= {n / statistics.median(alone):,.0f} rows/s (the ceiling of any preparation "
                  "that counts tokens with it)")
    print("speed: plain wall / tunelab wall, median of the alternating pairs (> 1: tunelab faster)")
    write_rows(args.json, _rows(table, args.quick))


def _ratios(ours: list[Run], plain: list[Run]) -> list[float]:
    return [b.wall / a.wall for a, b in zip(ours, plain, strict=True)]


def _rows(table: list[tuple[int, list[Run], list[Run], list[float]]], quick: bool) -> list[Row]:
    """rows/s at 100,000 rows (or the quick size) beside plain and beside the ceiling the
    tokenizer alone sets; the peak memory there and at 1,000,000 rows."""
    rows = []
    for n, ours, plain, alone in table:
        at_target = n == 100_000
        if (at_target or quick) and n != 1_000_000:
            rows += _speed_rows(n, ours, plain, alone, at_target)
        if n in TARGET_PEAK or quick:
            rows.append(_peak_row(n, ours))
    return rows


def _speed_rows(n: int, ours: list[Run], plain: list[Run], alone: list[float], at_target: bool
                ) -> list[Row]:
    rows = []
    rates = [n / r.wall for r in ours]
    plain_rates = [n / r.wall for r in plain]
    note = f"cpu s (tunelab/plain): {statistics.median(r.cpu for r in ours):.1f}"
    if plain:
        note += f"/{statistics.median(r.cpu for r in plain):.1f}"
    rows.append(Row(
        f"data preparation, {n:,} OpenAI-chat rows, cold, near-dedupe", round(statistics.median(rates)),
        round(statistics.median(plain_rates)) if plain else None, "rows/s", "", None,
        max(rates) - min(rates), (max(plain_rates) - min(plain_rates)) if plain else None,
        note + ("" if at_target else "; quick size, the targets are at 100,000 rows")))
    if alone:
        ceiling = [n / a for a in alone]
        ratio = statistics.median(r / c for r, c in zip(rates, ceiling, strict=True))
        rows.append(Row(
            f"  against the ceiling: the tokenizer alone on the {n:,} rows' texts (all cores, "
            "nothing else: no reading, checks or de-duplication)", round(statistics.median(rates)),
            round(statistics.median(ceiling)), "rows/s",
            f"≥ {TARGET_CEILING}× the ceiling at 100,000 rows",
            ratio >= TARGET_CEILING if at_target else None, max(rates) - min(rates),
            max(ceiling) - min(ceiling),
            note=f"median of the pairs {ratio:.2f}×; any preparation that counts tokens with this "
                 "tokenizer is slower than the ceiling"))
    return rows


def _peak_row(n: int, ours: list[Run]) -> Row:
    peak = max(r.peak for r in ours)
    limit = TARGET_PEAK.get(n)
    return Row(f"data preparation peak memory, {n:,} OpenAI-chat rows", round(peak / 2**30, 2), None,
               "GiB", f"≤ {limit / 2**30:.0f} GiB" if limit else "", peak <= limit if limit else None,
               note=f"{n / statistics.median(r.wall for r in ours):,.0f} rows/s, "
                    f"cpu {statistics.median(r.cpu for r in ours):.0f}s")


if __name__ == "__main__":
    main()
