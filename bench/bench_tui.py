"""TUI benchmark: start-up to the first screen, and the trials screen's refresh at scale.

    python bench/bench_tui.py                # the issue's sizes: 1,000 trials, 5,000,000 metric rows
    python bench/bench_tui.py --trials 100   # smaller, quicker

Targets (issue 8): the first screen in under 1.5 s; a refresh of the trials screen (every 2 s
while a trial runs) well under its period. Start-up is measured from launching a fresh Python
process (the `tunelab` command's imports included) to the experiments table showing data,
headless. The store is the synthetic one of bench_store.py (4 trials still running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_store import build_store  # noqa: E402

CHILD = """
import time, sys
start = time.perf_counter()
import tunelab.tui.cli  # what `tunelab tui` imports before the app
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.experiments import ExperimentsScreen
imported = time.perf_counter()

async def main():
    app = TunelabApp([sys.argv[1]])
    async with app.run_test(size=(120, 40)) as pilot:
        first = None
        while True:
            screen = app.screen
            if first is None and isinstance(screen, ExperimentsScreen):
                first = time.perf_counter()
            if isinstance(screen, ExperimentsScreen) and screen.loaded_once:
                await pilot.pause()
                break
            await pilot.pause(0.005)
        data = time.perf_counter()
    print(imported - start, first - start, data - start, time.time() - (data - first), time.time(),
          flush=True)

import asyncio
asyncio.run(main())
"""


def startup(store: Path, repeat: int) -> None:
    print(f"\nstart-up: a fresh process to the experiments screen ({repeat} runs)")
    walls, launches, imports, firsts, datas = [], [], [], [], []
    for _ in range(repeat):
        begin = time.time()
        done = subprocess.run([sys.executable, "-c", CHILD, str(store)], capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        imported, first, data, first_at, data_at = (float(x) for x in done.stdout.split())
        wall = first_at - begin  # from launching the process (interpreter start included)
        launched_data = data_at - begin
        walls.append(wall)
        launches.append(launched_data)
        imports.append(imported)
        firsts.append(first)
        datas.append(data)
    med = statistics.median
    print(f"  imports (tunelab.tui.cli + app)      {med(imports) * 1000:7.0f} ms")
    print(f"  first screen shown (in process)      {med(firsts) * 1000:7.0f} ms")
    print(f"  experiments table filled (in proc.)  {med(datas) * 1000:7.0f} ms")
    print(f"  launch to first screen               {med(walls) * 1000:7.0f} ms  "
          f"(best {min(walls) * 1000:.0f})")
    print(f"  launch to experiments with data      {med(launches) * 1000:7.0f} ms  "
          f"(best {min(launches) * 1000:.0f})")


async def refresh(store: Path, repeat: int) -> None:
    from tunelab.tui import source
    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.trials import TrialsScreen
    from tunelab.tui.widgets.table import VimTable

    stores = (store,)
    reads = []
    for _ in range(repeat):
        start = time.perf_counter()
        source.trials(stores, "bench")
        source.evaluations(stores, "bench")
        reads.append((time.perf_counter() - start) * 1000)

    app = TunelabApp([store])
    async with app.run_test(size=(160, 50)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrialsScreen)
        rows = len(screen.trials)
        cycles, rebuilds = [], []
        for _ in range(repeat):  # a live refresh: read in the worker, update the changed cells
            start = time.perf_counter()
            screen.reload()
            await app.workers.wait_for_complete()
            await pilot.pause()
            cycles.append((time.perf_counter() - start) * 1000)
        for i in range(repeat):  # a full rebuild: sort by another column
            screen.query_one(VimTable).move_cursor(column=4 + i % 2)
            start = time.perf_counter()
            screen.action_sort()
            await pilot.pause()
            rebuilds.append((time.perf_counter() - start) * 1000)
    med = statistics.median
    print(f"\ntrials screen over {rows:,} trials, {repeat} runs each")
    print(f"  store read (trials + evaluations)    {med(reads):7.0f} ms  (best {min(reads):.0f})")
    print(f"  live refresh: read + update cells    {med(cycles):7.0f} ms  (best {min(cycles):.0f})")
    print(f"  re-sort: rebuild the whole table     {med(rebuilds):7.0f} ms  (best {min(rebuilds):.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TUNELAB_SQL_HISTORY", os.devnull)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "bench.duckdb"
        start = time.perf_counter()
        rows = build_store(store, args.trials)
        print(f"synthetic store: {args.trials:,} trials, {rows:,} metric rows "
              f"(built in {time.perf_counter() - start:.0f}s)")
        startup(store, args.repeat)
        asyncio.run(refresh(store, args.repeat))


if __name__ == "__main__":
    main()
