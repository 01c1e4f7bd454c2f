"""Store benchmark: ingest speed and the TUI's two hot reads at scale, beside plain DuckDB.

    python bench/bench_store.py                 # the issue's sizes: 1,000 trials, 5,000,000 metric rows
    python bench/bench_store.py --trials 100    # smaller, quicker

Targets (issue 7): ingest of metric events from a spool ≥ 200,000 rows/s; on a store of
1,000 trials and 5,000,000 metric rows, listing trials with their objective < 150 ms and one
trial's curve downsampled to ≤ 2,000 points per series < 50 ms, each as open + query + close.
"Plain duckdb" is the same work with no tunelab code: a bare connect, one SQL statement, close
(no dedupe, no upsert, no downsampling, no dataclasses), measured in the same run.

With `--json PATH` (the suite, `python -m bench`) the figures are also written as rows, each
measured beside its plain-duckdb counterpart, alternating; `--quick` uses small sizes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from tunelab import store as st
from tunelab.store.ingest import ingest_events, ingest_file, read_events
from tunelab.store.views import refresh_trial_summary

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, paired, summarise, write_rows  # noqa: E402

TRAIN_STEPS = 2450      # per trial: train loss and learning rate at each of these steps …
VALIDATION_POINTS = 100  # … and this many validation losses: 2 × 2450 + 100 = 5,000 rows
CONCURRENT = 4           # trials that ran at once (their rows interleave in the file)

METRICS_DDL = """CREATE TABLE metrics (experiment VARCHAR NOT NULL, trial INTEGER NOT NULL,
    step INTEGER NOT NULL, epoch DOUBLE, tokens BIGINT, split VARCHAR NOT NULL,
    name VARCHAR NOT NULL, value DOUBLE, time TIMESTAMPTZ,
    PRIMARY KEY (experiment, trial, split, name, step))"""


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and best wall time in milliseconds."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs), min(runs)


def build_store(path: Path, trials: int) -> int:
    """A synthetic store as a sweep would leave it; returns the metric rows."""
    with st.writing(path) as con:
        now = time.time()
        con.execute("INSERT INTO experiments (name, objective, direction, created_at, updated_at) "
                    "VALUES ('bench', 'eval_loss', 'minimize', now(), now())")
        # The last CONCURRENT trials are still running; a few failed, a third were pruned.
        con.execute(f"""INSERT INTO trials (experiment, number, state, method_kind, params, value,
                started_at, finished_at, duration_s, fail_reason, error, artifact_dir, updated_at)
            SELECT 'bench', n,
                   CASE WHEN n >= {trials - CONCURRENT} THEN 'running' WHEN n % 17 = 0 THEN 'failed'
                        WHEN n % 3 = 0 THEN 'pruned' ELSE 'complete' END,
                   CASE WHEN n % 2 = 0 THEN 'lora' ELSE 'full' END,
                   json_object('train.learning_rate', 1e-4 * (1 + n % 50), 'method.r', 8 * (1 + n % 4)),
                   CASE WHEN n >= {trials - CONCURRENT} OR n % 17 = 0 THEN NULL
                        ELSE 0.5 + (hash(n) % 1000) / 1000.0 END,
                   to_timestamp({now} - 100 * ({trials} - n)),
                   to_timestamp({now} - 100 * ({trials} - n) + 90),
                   90.0, NULL, NULL, '/nonexistent/trial-' || n, to_timestamp({now})
            FROM range({trials}) r(n)""")
        con.execute(f"""INSERT INTO trial_params
            SELECT 'bench', n, p.name, p.v, p.v::VARCHAR FROM range({trials}) r(n),
                   (VALUES ('train.learning_rate', 1e-4), ('method.r', 16.0)) p(name, v)""")
        # Rows in the order they would arrive: CONCURRENT trials at a time, interleaved by step.
        con.execute(f"""INSERT INTO metrics
            WITH s AS (
                SELECT t.n AS trial, x.step, x.split, x.name
                FROM range({trials}) t(n),
                     (SELECT step, 'train' AS split, nm AS name FROM range(1, {TRAIN_STEPS + 1}) r(step),
                             (VALUES ('loss'), ('learning_rate')) v(nm)
                      UNION ALL
                      SELECT step * {TRAIN_STEPS // VALIDATION_POINTS}, 'validation', 'loss'
                      FROM range(1, {VALIDATION_POINTS + 1}) r(step)) x)
            SELECT 'bench', trial, step, step / {TRAIN_STEPS / 3}, step * 4096, split, name,
                   CASE WHEN name = 'learning_rate' THEN 2e-4
                        ELSE 3.0 / (1 + step / 100.0) + random() * 0.1 END,
                   to_timestamp({now})
            FROM s ORDER BY trial // {CONCURRENT}, step, trial % {CONCURRENT}, split, name""")
        rows = con.execute("SELECT count(*) FROM metrics").fetchall()[0][0]
        refresh_trial_summary(con)
    return int(rows)


def write_spool(target: Path, rows: int) -> st.Spool:
    """A spool holding `rows` metric events, written as a trainer writes them, not yet ingested."""
    spool = st.Spool(target, tag="bench")
    now = time.time()
    batch = []
    for i in range(rows):
        batch.append({"table": "metrics", "row": {
            "experiment": "ingest", "trial": i // 5000, "step": i % 5000, "epoch": i / 5000,
            "tokens": i * 4096, "split": "train", "name": "loss", "value": random.random(),
            "time": now}})
        if len(batch) == 1000:
            spool.write(batch, ingest=False)
            batch = []
    if batch:
        spool.write(batch, ingest=False)
    return spool


PLAIN_INSERT = (
    "INSERT INTO metrics SELECT row.experiment, row.trial, row.step, row.epoch, row.tokens, "
    "row.split, row.name, row.value, to_timestamp(row.time) FROM read_json(?, "
    "format = 'newline_delimited', columns = {'table': 'VARCHAR', 'row': 'STRUCT("
    "experiment VARCHAR, trial INTEGER, step INTEGER, epoch DOUBLE, tokens BIGINT, "
    "split VARCHAR, name VARCHAR, value DOUBLE, time DOUBLE)'})")


def ingest_rows(folder: Path, rows: int, repeat: int) -> list[Row]:
    """Ingest of one spool file into a fresh store, tunelab against plain read_json + INSERT,
    alternating; each run is open + ingest + close on its own fresh file."""
    saved = folder / "paired.jsonl"
    spool = write_spool(folder / "paired-spool.duckdb", rows)
    shutil.copy(spool.path, saved)
    spool.close()
    runs = iter(range(10**6))
    pending: list[Callable[[], None]] = []

    # A fresh store per run, its schema made before the clock starts (tunelab's migrations are
    # more than one CREATE TABLE): what is timed is open + ingest + close on each side.
    def prepare(side: str) -> None:
        target = folder / f"{side}-{next(runs)}.duckdb"
        if side == "ours":
            with st.writing(target):
                pass
            copy = folder / "ours.jsonl"
            shutil.copy(saved, copy)  # ingest_file may consume its file: give it a copy
            pending.append(lambda: _ingest_ours(target, copy))
        else:
            con = duckdb.connect(str(target))
            con.execute(METRICS_DDL)
            con.close()
            pending.append(lambda: _ingest_plain(target, saved))

    ours_ms, plain_ms = [], []
    for i in range(repeat):
        for side in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
            prepare(side)
            start = time.perf_counter()
            pending.pop()()
            (ours_ms if side == "ours" else plain_ms).append(time.perf_counter() - start)
    a = summarise([rows / s for s in ours_ms])
    b = summarise([rows / s for s in plain_ms])
    ratio = a.median / b.median
    return [Row(f"store ingest, {rows:,} metric events (open + ingest + close)", a.median,
                b.median, "rows/s", "≥ 0.9× plain", ratio >= 0.9, a.spread, b.spread)]


def _ingest_ours(target: Path, spool_file: Path) -> None:
    with st.writing(target) as con:
        ingest_file(con, spool_file, {"metrics"})


def _ingest_plain(target: Path, spool_file: Path) -> None:
    con = duckdb.connect(str(target))
    con.execute(PLAIN_INSERT, [str(spool_file)])
    con.close()


def bench_ingest(folder: Path, rows: int, big: Path | None) -> None:
    print(f"\ningest: {rows:,} metric events from a spool file, open + ingest + close")

    def fresh(name: str) -> Path:
        target = folder / name
        target.unlink(missing_ok=True)
        with st.writing(target):
            pass
        return target

    def report(label: str, seconds: float) -> float:
        print(f"  {label:<40} {seconds * 1000:8.0f} ms  {rows / seconds:>10,.0f} rows/s")
        return rows / seconds

    # Spool.ingest: what a trial process does after each batch (it knows its spool's tables).
    target = fresh("a.duckdb")
    spool = write_spool(target, rows)
    saved = folder / "spool.jsonl"
    shutil.copy(spool.path, saved)
    start = time.perf_counter()
    assert spool.ingest(wait=5)
    ours = report("tunelab Spool.ingest", time.perf_counter() - start)
    spool.close()

    def file_ingest(target: Path, tables: set[str] | None = None) -> float:
        """A spool file whose tables are unknown (a dead writer's) is read once more for them."""
        copy = folder / "copy.jsonl"
        shutil.copy(saved, copy)
        start = time.perf_counter()
        with st.writing(target) as con:
            ingest_file(con, copy, tables)
        return time.perf_counter() - start

    report("tunelab, a dead writer's spool", file_ingest(fresh("b.duckdb")))
    report("tunelab, the same spool again (no-op)", file_ingest(folder / "b.duckdb"))
    if big is not None:
        copy = folder / "big-copy.duckdb"
        shutil.copy(big, copy)
        report("tunelab, into the 5M-row store", file_ingest(copy, {"metrics"}))
        copy.unlink()

    start = time.perf_counter()
    with st.writing(fresh("c.duckdb")) as con:
        ingest_events(con, read_events(saved))
    report("tunelab per-row path (json.loads)", time.perf_counter() - start)

    plain = folder / "plain.duckdb"
    con = duckdb.connect(str(plain))
    con.execute(METRICS_DDL)
    con.close()
    start = time.perf_counter()
    con = duckdb.connect(str(plain))
    con.execute(PLAIN_INSERT, [str(saved)])
    con.close()
    report("plain duckdb: read_json + INSERT", time.perf_counter() - start)
    print(f"  target ≥ 200,000 rows/s (Spool.ingest): {'met' if ours >= 200_000 else 'NOT met'}")


def bench_reads(path: Path, trials: int, repeat: int) -> list[Row]:
    rows = st.query(path, "SELECT count(*) FROM metrics").rows[0][0]
    size = path.stat().st_size / 2**20
    print(f"\nreads: {trials:,} trials, {rows:,} metric rows, {size:,.0f} MiB; "
          f"median (best) of {repeat}, open + query + close")
    numbers = list(range(trials))
    random.shuffle(numbers)
    picks = iter(numbers * (repeat // trials + 2))

    def plain_trials() -> None:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SELECT * FROM trials WHERE experiment = 'bench' ORDER BY number").fetchall()
        con.close()

    def plain_curve() -> None:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SELECT split, name, step, tokens, value FROM metrics WHERE experiment = "
                    "'bench' AND trial = ? ORDER BY split, name, step", [next(picks)]).fetchall()
        con.close()

    def plain_open() -> None:
        duckdb.connect(str(path), read_only=True).close()

    listed = st.list_trials(path, "bench")
    curve = st.trial_curve(path, "bench", 10)
    assert len(listed) == trials and any(t.best_value for t in listed if t.state == "running")
    assert all(len(s.steps) <= 2000 for s in curve.series)
    shown = ", ".join(f"{s.split}/{s.name} {s.total_points:,}→{len(s.steps):,}" for s in curve.series)
    print(f"  one curve: {shown}")
    cases = (
        ("open + close alone (plain duckdb)", plain_open, None),
        ("list_trials with best objective", lambda: st.list_trials(path, "bench"), 150),
        ("  plain duckdb: select * from trials", plain_trials, None),
        ("trial_curve, ≤ 2,000 points/series", lambda: st.trial_curve(path, "bench", next(picks)), 50),
        ("  plain duckdb: the trial's rows", plain_curve, None),
    )
    for label, fn, target in cases:
        median, best = timed(fn, repeat)
        verdict = "" if target is None else f"  target < {target} ms: " + (
            "met" if median < target else "NOT met")
        print(f"  {label:<38} {median:7.1f} ms ({best:.1f}){verdict}")
    out = []
    for label, ours, plain, target in (
            (f"list_trials, {trials:,} trials (open + query + close)", cases[1][1], plain_trials, 150),
            (f"trial_curve, {rows:,} metric rows in the store", cases[3][1], plain_curve, 50)):
        a, b = paired(ours, plain, repeat)
        out.append(Row(label, a.median, b.median, "ms", f"< {target} ms", a.median < target,
                       a.spread, b.spread))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="1,000 (100 with --quick)")
    parser.add_argument("--ingest-rows", type=int, default=None, help="200,000 (50,000 quick)")
    parser.add_argument("--repeat", type=int, default=None, help="30 (5 with --quick)")
    parser.add_argument("--keep", type=Path, help="build the synthetic store here and keep it")
    parser.add_argument("--quick", action="store_true", help="small sizes, for the suite")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    trials = args.trials or (100 if args.quick else 1000)
    ingest = args.ingest_rows or (50_000 if args.quick else 200_000)
    repeat = args.repeat or (5 if args.quick else 30)
    folder = Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
    try:
        big = args.keep or folder / "big.duckdb"
        if not big.exists():
            start = time.perf_counter()
            rows = build_store(big, trials)
            print(f"built a synthetic store: {trials:,} trials, {rows:,} metric rows "
                  f"in {time.perf_counter() - start:.1f}s")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"duckdb {duckdb.__version__}, python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores, load average {load} (other work slows every number)")
        out = bench_reads(big, trials, repeat)
        bench_ingest(folder, ingest, None if args.quick else big)
        # at least 9 alternating pairs: one ingest takes a fraction of a second and its spread
        # under load is wide; the ratio against 0.9 needs the median of more than a few
        out = ingest_rows(folder, ingest, max(9, min(repeat, 15))) + out
        for row in out:
            print(f"  paired: {row.figure}: tunelab {row.tunelab:,.1f} vs plain {row.plain:,.1f} "
                  f"{row.unit} ({row.ratio:.2f}×)")
        write_rows(args.json, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
