"""python -m bench [--quick] [--only NAME …]: every benchmark, one report (docs/benchmarks.md).

Each bench runs in its own process (bench/suite.py) and the rows land in one table with the
machine and the versions (bench/report.py). `--quick` uses each bench's small sizes and is
meant to finish within about five minutes on 2 CPUs (the report says how long it took).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import report
from bench.suite import discover, run_suite

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about five minutes)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"only these benches ({', '.join(discover())})")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per bench (default 600 with --quick, 3600 without)")
    parser.add_argument("--quiet-machine", action="store_true",
                        help="nothing else ran: leave out the report's 'measured under load'")
    args = parser.parse_args()
    timeout = args.timeout or (600.0 if args.quick else 3600.0)
    results = run_suite(args.only, args.quick, timeout)
    report.write(args.out, results, args.quick, under_load=not args.quiet_machine)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
