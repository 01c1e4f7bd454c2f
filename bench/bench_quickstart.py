"""The README's first command, end to end: `tunelab run experiments/quickstart.toml`.

Run: python bench/bench_quickstart.py [--repeats 1] [--against OLD.toml]

Times the whole sweep (data, scratch model, baseline, six trials, the summary) in a fresh
store, and reads from the store whether a trial met the file's success criterion. The target
(issue 18): within 3 minutes on a quiet 2-core CPU, with a trial that succeeds. With
`--against FILE` another version of the quickstart runs alternately with it (A B A B …), so
that on a busy machine the ratio of the two still says how much faster one is.

With --json PATH (the suite) the figure is written as a row; --quick writes the row without
running the sweep (a minute and a half at best, too long for the quick suite).
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
sys.path.insert(0, str(Path(__file__).parent))

from measure import Row, write_rows  # noqa: E402

QUICKSTART = ROOT / "experiments" / "quickstart.toml"
TARGET_S = 180.0


def run_once(experiment: Path, folder: Path) -> tuple[float, bool, float | None]:
    """Wall seconds of `tunelab run`, whether a trial met the success criterion, its best
    test exact match."""
    from tunelab import store as st

    store = folder / "tunelab.duckdb"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tunelab.tui.cli", "run", str(experiment),
                           "--store", str(store)], capture_output=True, text=True, cwd=folder)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"tunelab run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    success = "success: yes" in done.stdout
    rows = st.query(store, "select max(value) from evaluations where name = 'exact_match' "
                           "and split = 'test' and model_ref like 'trial:%'").rows
    return seconds, success, rows[0][0] if rows else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--against", type=Path, help="another quickstart file, run alternately")
    parser.add_argument("--quick", action="store_true", help="the row only, no sweep (the suite)")
    parser.add_argument("--json", type=Path, help="also write the figure as a row here")
    args = parser.parse_args()
    if args.quick:
        write_rows(args.json, [Row("quickstart: `tunelab run` end to end", None, None, "s",
                                   f"≤ {TARGET_S:.0f} s quiet, a trial meets its criterion",
                                   note="not run with --quick (run bench/bench_quickstart.py)")])
        return

    arms = {"quickstart": QUICKSTART, **({"against": args.against.resolve()} if args.against else {})}
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    outcome: dict[str, tuple[bool, float | None]] = {}
    for i in range(args.repeats):
        order = list(arms) if i % 2 == 0 else list(reversed(arms))
        for arm in order:
            with tempfile.TemporaryDirectory() as tmp:
                wall, success, exact = run_once(arms[arm], Path(tmp))
            seconds[arm].append(wall)
            outcome[arm] = (success, exact)
            print(f"{arm:12} run {i + 1}: {wall:6.0f} s  success {'yes' if success else 'no'}  "
                  f"best test exact match {exact}  (load average {os.getloadavg()[0]:.1f})",
                  flush=True)
    ours = statistics.median(seconds["quickstart"])
    success, exact = outcome["quickstart"]
    print(f"quickstart: median {ours:.0f} s over {args.repeats} run(s), {os.cpu_count()} cores")
    if args.against:
        other = statistics.median(seconds["against"])
        print(f"against {args.against.name}: median {other:.0f} s; ratio {ours / other:.2f}")
    write_rows(args.json, [Row("quickstart: `tunelab run` end to end", ours, None, "s",
                               f"≤ {TARGET_S:.0f} s quiet, a trial meets its criterion",
                               ours <= TARGET_S and success,
                               note=f"best test exact match {exact}, {args.repeats} run(s)")])


if __name__ == "__main__":
    main()
