"""Two trainings at once on a CPU: a one-trial quickstart run alone, then two started together.

Run: python bench/bench_threads.py [--epochs 1] [--repeats 2] [--before] [--quick] [--json PATH]

Each run is a real `tunelab run` in its own folder with its own store. The figure is each
trial's own duration (from the store), so start-up and data preparation do not blur it.
With every process taking its share of the cores, two at once should take about 2x the time
of one alone (each has half the cores), not 30x (both processes' OpenMP threads spinning on
the same cores). Alone and together alternate, so the machine's other load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, summarise, write_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLOW_DOWN = 2.5  # two at once, each: about 2x one alone (half the cores each), not 30x


def start(folder: Path, epochs: int, before: bool) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tunelab.tui.cli", "run", str(ROOT / "experiments" / "quickstart.toml"),
               "--store", str(folder / "tunelab.duckdb"), "--set", "search.trials=1",
               "--set", f"train.epochs={epochs}", "--set", "eval.samples=0",
               "--set", 'eval.metrics=["perplexity"]', "--set", "eval.baseline=false",
               "--set", "success={}"]
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    if before:  # as tunelab ran before: every trial on all the cores, OpenMP threads spinning
        env.update(OMP_WAIT_POLICY="ACTIVE", TUNELAB_THREADS=str(os.cpu_count() or 1))
    log = (folder / "run.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)


def trial_seconds(folder: Path) -> float:
    import duckdb

    with duckdb.connect(str(folder / "tunelab.duckdb"), read_only=True) as con:
        row = con.execute("select duration_s, state from trials order by number limit 1").fetchone()
    if row is None or row[1] != "complete":
        raise SystemExit(f"the trial in {folder} did not complete; see {folder / 'run.log'}")
    return float(row[0])


def run(folders: list[Path], epochs: int, before: bool) -> list[float]:
    processes = [start(folder, epochs, before) for folder in folders]
    for process in processes:
        process.wait()
    return [trial_seconds(folder) for folder in folders]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="2 (1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="one repetition, for the suite")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    parser.add_argument("--before", action="store_true",
                        help="also as before the fix: all cores per trial, spinning OpenMP threads")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 2)
    modes = [False, True] if args.before else [False]
    alone: dict[bool, list[float]] = {m: [] for m in modes}
    together: dict[bool, list[float]] = {m: [] for m in modes}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode in modes:
                alone[mode] += run([Path(tmp) / f"alone-{mode}-{i}"], args.epochs, mode)
                together[mode] += run([Path(tmp) / f"a-{mode}-{i}", Path(tmp) / f"b-{mode}-{i}"],
                                      args.epochs, mode)
    print(f"one-trial quickstart, {args.epochs} epoch(s), {os.cpu_count()} cores, load average "
          f"{load:.1f} before and {os.getloadavg()[0]:.1f} after, {args.repeats} repeats")
    print(f"{'':44}{'median s':>10}{'min s':>8}{'max s':>8}{'slow-down':>11}")
    for mode in modes:
        name = "before (all cores, spinning)" if mode else "tunelab (share, brief spin)"
        one, two = statistics.median(alone[mode]), statistics.median(together[mode])
        print(f"{name + ': alone':44}{one:>10.1f}{min(alone[mode]):>8.1f}{max(alone[mode]):>8.1f}")
        print(f"{name + ': two at once, each':44}{two:>10.1f}{min(together[mode]):>8.1f}"
              f"{max(together[mode]):>8.1f}{two / one:>10.1f}x")
    print("(a fair share of the cores: two at once take about 2x as long as one alone)")
    rows = []
    for mode in modes:
        two, one = summarise(together[mode]), summarise(alone[mode])
        slow = two.median / one.median
        rows.append(Row(
            "two trainings at once on the CPU, each trial's seconds vs one alone"
            + (" (as before the fix: all cores each, spinning)" if mode else ""),
            two.median, one.median, "s", "" if mode else f"≤ {SLOW_DOWN}× alone",
            None if mode else slow <= SLOW_DOWN, two.spread, one.spread,
            f"{args.epochs} epoch(s), {args.repeats} repeat(s)"))
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
