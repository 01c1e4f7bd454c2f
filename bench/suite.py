"""Runs every bench script in its own process and collects their rows.

Each `bench/bench_*.py` is found by name, so a bench added later joins without an edit here.
One that takes `--json` is run as `python bench/bench_X.py [--quick] --json FILE` and its rows
are read back; one that does not yet is listed as "not wired" instead of breaking the run, and
one that fails or runs too long is listed with why. A subprocess per bench keeps their threads,
imports and memory apart (a TUI bench and a training bench in one process would disturb each
other's numbers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BenchResult:
    name: str
    status: str  # "ok", "not wired", "failed: …", "timed out after …"
    rows: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0


def discover(folder: Path = HERE) -> dict[str, Path]:
    """{name: script} for every bench_NAME.py, in name order."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(folder.glob("bench_*.py"))}


def wired(script: Path) -> bool:
    """Whether a script takes --json (read from its text: no import, no process)."""
    return '"--json"' in script.read_text(encoding="utf-8")


def run_bench(name: str, script: Path, quick: bool, timeout: float,
              extra: list[str] | None = None) -> BenchResult:
    if not wired(script):
        return BenchResult(name, "not wired")
    with tempfile.TemporaryDirectory(prefix=f"tunelab-bench-{name}-") as tmp:
        out = Path(tmp) / "rows.json"
        command = [sys.executable, str(script), "--json", str(out), *(["--quick"] if quick else []),
                   *(extra or [])]
        # One thread each for torch/numpy unless the caller says otherwise: the machine is shared
        # and a bench that grabs every core makes its neighbour's numbers meaningless.
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", **os.environ}
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=HERE.parent)
        except subprocess.TimeoutExpired:
            return BenchResult(name, f"timed out after {timeout:.0f}s",
                               seconds=time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.exists():
            lines = (done.stderr or done.stdout).strip().splitlines()
            why = lines[-1] if lines else f"exit {done.returncode}, no rows written"
            return BenchResult(name, f"failed: {why[:200]}", seconds=seconds)
        return BenchResult(name, "ok", json.loads(out.read_text()), seconds)


def run_suite(only: list[str] | None, quick: bool, timeout: float,
              extra: dict[str, list[str]] | None = None, echo: bool = True) -> list[BenchResult]:
    found = discover()
    unknown = [n for n in only or [] if n not in found]
    if unknown:
        raise SystemExit(f"no such bench: {', '.join(unknown)} (known: {', '.join(found)})")
    results = []
    for name, script in found.items():
        if only and name not in only:
            continue
        if echo:
            print(f"bench {name} …", end=" ", flush=True)
        result = run_bench(name, script, quick, timeout, (extra or {}).get(name))
        if echo:
            print(f"{result.status} ({result.seconds:.0f}s)", flush=True)
        results.append(result)
    return results
