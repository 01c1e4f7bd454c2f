"""The sweep runner: trial start-up with and without the preloaded fork server, and what the
pruner saves on the quickstart.

Run: python bench/bench_runner.py [--starts 5] [--trials 24] [--epochs 3] [--rows N] [--small-model]
                                  [--skip-pruning] [--saved DIR] [--only NAME]

1. Start-up: the time from asking for a trial process to the process being ready to train
   (torch, transformers, peft, TRL and tunelab's trainer imported), forked from the server that
   preloaded them (what `tunelab run` does) vs a fresh interpreter that imports them (spawn).
2. Pruning: the quickstart swept with the random sampler and the same seed (so every sweep
   tries the same configurations in the same order) with no pruner, then with the default
   pruner (percentile 90 after 2 finished trials), the median (startup_trials = 2),
   successive-halving and Hyperband pruners; train steps spent and best eval_loss of each, and
   which saves the most steps with the best within 1 %. Then the same pruners replayed
   (replay_pruners.py) on the recorded unpruned 24-trial sweeps at 3 and 12 epochs.

With --json PATH (the suite) the figures are also written as rows; --quick sweeps 6 trials
of 2 epochs on 128 rows with the small model, with no pruner and the default only (the
replayed rows compare the kinds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from measure import Row, summarise, write_rows  # noqa: E402


class Quiet:
    def event(self, event: object) -> None:
        pass


def startup(starts: int) -> dict[str, list[float]]:
    from tunelab.engine.run.jobs import TrialJob
    from tunelab.engine.run.pipe import forkserver_context, run_child

    out: dict[str, list[float]] = {"forked from the preloaded server": [],
                                   "fresh interpreter (no preload)": []}
    with tempfile.TemporaryDirectory() as tmp:
        job = TrialJob(store=str(Path(tmp) / "s.duckdb"), experiment={}, number=None,
                       trial_id=None, study_name="bench", storage="", base="", data={},
                       out_dir=tmp)
        contexts = {"forked from the preloaded server": forkserver_context(),
                    "fresh interpreter (no preload)": multiprocessing.get_context("spawn")}
        run_child("ready", job)  # starts the fork server: paid once per `tunelab run`
        for _ in range(starts):
            for name, context in contexts.items():
                started = time.time()
                result = run_child("ready", job, context=context)
                assert result.state == "complete", result.error
                out[name].append(result.info["ready_at"] - started)
    return out


def sweep(pruner: str, trials: int, epochs: int, tmp: Path, extra: list[str]
          ) -> tuple[int, float | None, int, int]:
    import os

    from tunelab import store as st
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    # One thread per trial, whatever else runs: a trial takes a share of the cores that
    # changes as other trainings come and go, and its thread count can change the order of its
    # sums, so its curve (probably why the unpruned 3-epoch sweep once ended at 0.4914, where
    # one-thread runs end at 0.4821). Fixed, a trial trains the same in every sweep (checked:
    # a real pruned 12-epoch sweep repeated the unpruned one's values), so sweeps compare
    # exactly and replay_pruners.py replays them exactly.
    os.environ.setdefault("TUNELAB_THREADS", "1")

    sets = [f"search.trials={trials}", f"train.epochs={epochs}", 'search.sampler="random"',
            f"search.pruner={pruner}", "eval.baseline=false", 'eval.metrics=["perplexity"]',
            "eval.samples=0", "success={}", "train.early_stopping_patience=10", *extra]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)
    store = tmp / f"{'none' if 'none' in pruner else 'pruned'}.duckdb"
    Runner(spec, store, Quiet()).run()
    st.flush_orphans(store)
    rows = st.query(store, "select state, steps, value from trials").rows
    steps = sum(r[1] or 0 for r in rows)
    best = min((r[2] for r in rows if r[0] == "complete" and r[2] is not None), default=None)
    return steps, best, sum(r[0] == "pruned" for r in rows), len(rows)


def _default() -> tuple[str, str]:
    """The default pruner of a new experiment: its name here and its `--set` value."""
    from replay_pruners import default_setting

    setting = default_setting()
    value = "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in setting.items()) + "}"
    short = {"percentile": "", "startup_trials": "startup ", "warmup_epochs": "warmup ",
             "min_resource": "min ", "max_resource": "max ", "reduction_factor": "factor "}
    about = " ".join([setting["kind"]] + [f"{short[k]}{v:g}" if isinstance(v, float) else
                                          f"{short[k]}{v}" for k, v in setting.items()
                                          if k != "kind"])
    return f"the default ({about})", value


def pruners(quick: bool) -> list[tuple[str, str]]:
    """The pruners swept for real: the default, and in a full run the three kinds as a new
    experiment names them. --quick sweeps the default only: the replayed rows (recorded
    24-trial sweeps, Optuna's real pruners) compare the kinds in a second instead of minutes."""
    kinds = [("median (startup 2)", '{kind="median",startup_trials=2}'),
             ("successive halving", '{kind="successive_halving"}'),
             ("hyperband", '{kind="hyperband"}')]
    return [_default(), *([] if quick else kinds)]


def replayed() -> list[Row]:
    """The default and the three kinds replayed on the quickstart's recorded unpruned 24-trial
    sweeps at 3 and 12 epochs (replay_pruners.py): exact for the random sampler, and free of
    the machine's load."""
    from replay_pruners import SWEEPS, compare, default_setting, load, rows, table, tunelab_pruner

    settings = {_default()[0]: tunelab_pruner(**default_setting()),
                "median (startup 2)": tunelab_pruner(kind="median", startup_trials=2),
                "successive halving": tunelab_pruner(kind="successive_halving"),
                "hyperband": tunelab_pruner(kind="hyperband")}
    results = compare({sweep: load(path) for sweep, path in SWEEPS.items()}, settings)
    print("replayed on the recorded unpruned 24-trial quickstart sweeps (3 and 12 epochs)")
    print(table(results))
    return rows(results, list(settings))


def compare_pruners(trials: int, epochs: int, extra: list[str], tmp: Path,
                    saved: Path | None = None, only: set[str] | None = None,
                    quick: bool = False) -> list[Row]:
    """The same sweep (random sampler, same seed: the same configurations in the same order)
    with no pruner and with each pruner; steps spent and best eval_loss of each.

    `saved`: a folder where each sweep's figures are kept, and read back instead of sweeping
    again (same trials, epochs and changes; the sweep is seeded, and its step counts and best
    value do not depend on the machine's load), so that sweeps can run in several processes at
    once and a last run gathers them. `only`: sweep these alone (the others must be saved)."""
    print(f"pruning on the quickstart: {trials} trials of {epochs} epochs, random sampler, "
          "the same seed")
    if extra:
        print("changed from the quickstart: " + " ".join(extra))
    print(f"{'':48}{'train steps':>12}{'pruned':>8}{'best eval_loss':>16}{'wall s':>8}")
    results: dict[str, tuple[int, float | None]] = {}
    swept = pruners(quick)
    for name, pruner in (("no pruner", '"none"'), *swept):
        folder = tmp / name.replace(" ", "-").replace("(", "").replace(")", "")
        folder.mkdir()
        started = time.time()
        changes = hashlib.sha1(" ".join(extra).encode()).hexdigest()[:8]
        key = f"{folder.name}-{trials}x{epochs}-{changes}.json"
        kept = saved / key if saved else None
        if kept is not None and kept.exists():
            steps, best, pruned = json.loads(kept.read_text())
        elif only is not None and name != "no pruner" and name not in only:
            continue
        else:
            steps, best, pruned, _ = sweep(pruner, trials, epochs, folder, extra)
            if kept is not None:
                kept.write_text(json.dumps([steps, best, pruned]))
        results[name] = (steps, best)
        best_text = f"{best:.4f}" if best is not None else "—"
        print(f"{name:48}{steps:>12}{pruned:>8}{best_text:>16}{time.time() - started:>8.0f}")
    full_steps, full_best = results["no pruner"]
    rows = []
    if any(name not in results for name, _ in swept):
        return rows  # a part of the comparison (--only): the last run gathers the verdict
    for name, _ in swept:
        steps, best = results[name]
        close = (best is not None and full_best is not None
                 and best <= full_best * 1.01)  # eval_loss: lower is better
        saved = 1 - steps / max(1, full_steps)
        rows.append(Row(f"pruning, {name}: train steps of a {trials}-trial quickstart sweep",
                        steps, full_steps, "steps", "≥ 50 % saved, best within 1 %",
                        saved >= 0.5 and close,
                        note=f"{saved:.0%} saved, best {best if best is None else round(best, 4)}"
                             f" vs {full_best if full_best is None else round(full_best, 4)}"))
    if len(swept) == 1:
        return rows  # --quick: the default alone; the replayed rows compare the kinds
    # The winner: within 1 % of the unpruned best, then the fewest steps.
    eligible = [(results[n][0], n) for n, _ in swept
                if results[n][1] is not None and full_best is not None
                and results[n][1] <= full_best * 1.01]  # type: ignore[operator]
    fewest = min(eligible)[0] if eligible else None
    tied = [n for steps, n in eligible if steps == fewest]
    winner = (tied[0] if len(tied) == 1 else "a tie: " + ", ".join(tied)) if tied \
        else "none (no pruner kept the best within 1 %)"
    print(f"fewest steps with the best within 1 %: {winner}")
    return [*rows, Row(f"pruning: the pruner that wins on this sweep is {winner}", None, None,
                       "", note=f"the default for new experiments is {_default()[0]}: it keeps "
                                "the best of both recorded sweeps, see the replayed rows (step "
                                "counts and best values do not depend on the machine's load)")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=None, help="5 (1 with --quick)")
    parser.add_argument("--trials", type=int, default=None, help="24 (6 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="3 (2 with --quick)")
    parser.add_argument("--rows", type=int, default=None,
                        help="only the first N examples of the quickstart's data (a faster sweep)")
    parser.add_argument("--small-model", action="store_true",
                        help="a smaller scratch model (hidden 64, 2 layers) than the quickstart's")
    parser.add_argument("--skip-pruning", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--saved", type=Path,
                        help="keep each sweep's figures in this folder and reuse them")
    parser.add_argument("--only", help="sweep only these pruners (comma-separated names as "
                                       "printed, e.g. 'hyperband'); the others must be saved")
    parser.add_argument("--quick", action="store_true",
                        help="small sweeps (128 rows, the small model), for the suite")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    if args.quick:
        args.rows = args.rows or 128
        args.small_model = True
    starts = args.starts or (1 if args.quick else 5)
    trials = args.trials or (6 if args.quick else 24)
    epochs = args.epochs or (2 if args.quick else 3)

    out = []
    if not args.skip_startup:
        times = startup(starts)
        print(f"trial start-up, {starts} starts each (seconds until ready to train)")
        print(f"{'':36}{'median':>8}{'min':>8}{'max':>8}")
        for name, values in times.items():
            print(f"{name:36}{statistics.median(values):>8.2f}{min(values):>8.2f}"
                  f"{max(values):>8.2f}")
        forked = summarise(times["forked from the preloaded server"])
        fresh = summarise(times["fresh interpreter (no preload)"])
        out.append(Row("trial start-up, forked from the preloaded server vs a fresh interpreter",
                       forked.median, fresh.median, "s", tunelab_spread=forked.spread,
                       plain_spread=fresh.spread))
    if not args.skip_pruning:
        print()
        with tempfile.TemporaryDirectory() as tmp:
            extra = []
            if args.rows:
                # the quickstart's own data (it was arithmetic.jsonl before the quickstart
                # moved to dates), so a --rows sweep is the quickstart's task made smaller
                rows = (ROOT / "experiments" / "data" / "quickstart.jsonl").read_text().splitlines()
                data = Path(tmp) / "quickstart.jsonl"
                data.write_text("\n".join(rows[: args.rows]) + "\n")
                extra.append(f'data.train="{data}"')
            if args.small_model:
                extra.append('model.scratch={arch="llama",hidden_size=64,layers=2,heads=4,'
                             'vocab_size=256}')
            if args.saved:
                args.saved.mkdir(parents=True, exist_ok=True)
            only = {n.strip() for n in args.only.split(",")} if args.only else None
            out += compare_pruners(trials, epochs, extra, Path(tmp), args.saved, only, args.quick)
        print()
        out += replayed()
    write_rows(args.json, out)


if __name__ == "__main__":
    main()
