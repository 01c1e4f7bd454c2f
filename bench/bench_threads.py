"""Two trainings at once on a CPU: a one-trial quickstart run alone, then two started together.

Run: python bench/bench_threads.py [--epochs 1] [--repeats 2]

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(folder: Path, epochs: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tunelab.tui.cli", "run", str(ROOT / "experiments" / "quickstart.toml"),
               "--store", str(folder / "tunelab.duckdb"), "--set", "search.trials=1",
               "--set", f"train.epochs={epochs}", "--set", "eval.samples=0",
               "--set", 'eval.metrics=["perplexity"]', "--set", "eval.baseline=false",
               "--set", "success={}"]
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    log = (folder / "run.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)


def trial_seconds(folder: Path) -> float:
    import duckdb

    with duckdb.connect(str(folder / "tunelab.duckdb"), read_only=True) as con:
        row = con.execute("select duration_s, state from trials order by number limit 1").fetchone()
    if row is None or row[1] != "complete":
        raise SystemExit(f"the trial in {folder} did not complete; see {folder / 'run.log'}")
    return float(row[0])


def run(folders: list[Path], epochs: int) -> list[float]:
    processes = [start(folder, epochs) for folder in folders]
    for process in processes:
        process.wait()
    return [trial_seconds(folder) for folder in folders]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    alone: list[float] = []
    together: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            alone += run([Path(tmp) / f"alone-{i}"], args.epochs)
            together += run([Path(tmp) / f"a-{i}", Path(tmp) / f"b-{i}"], args.epochs)
    one, two = statistics.median(alone), statistics.median(together)
    print(f"one-trial quickstart, {args.epochs} epoch(s), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end, {time.strftime('%H:%M')}")
    print(f"{'':28}{'median s':>10}{'min s':>8}{'max s':>8}")
    print(f"{'alone':28}{one:>10.1f}{min(alone):>8.1f}{max(alone):>8.1f}")
    print(f"{'two runs at once (each)':28}{two:>10.1f}{min(together):>8.1f}{max(together):>8.1f}")
    print(f"slow-down beside another run: {two / one:.1f}x (fair share of the cores: about 2x)")


if __name__ == "__main__":
    main()
