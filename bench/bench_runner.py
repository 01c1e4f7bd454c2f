"""The sweep runner: trial start-up with and without the preloaded fork server, and what the
pruner saves on the quickstart.

Run: python bench/bench_runner.py [--starts 5] [--trials 6] [--epochs 3] [--rows N] [--small-model]
                                  [--skip-pruning]

1. Start-up: the time from asking for a trial process to the process being ready to train
   (torch, transformers, peft, TRL and tunelab's trainer imported), forked from the server that
   preloaded them (what `tunelab run` does) vs a fresh interpreter that imports them (spawn).
2. Pruning: the quickstart swept twice with the random sampler and the same seed (so both
   sweeps try the same configurations in the same order), once with the file's median pruner
   (startup_trials = 2) and once without; train steps spent and best eval_loss of each.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Quiet:
    def event(self, name: str, **data: object) -> None:
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
    from tunelab import store as st
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None,
                        help="only the first N examples of the quickstart's data (a faster sweep)")
    parser.add_argument("--small-model", action="store_true",
                        help="a smaller scratch model (hidden 64, 2 layers) than the quickstart's")
    parser.add_argument("--skip-pruning", action="store_true")
    args = parser.parse_args()

    times = startup(args.starts)
    print(f"trial start-up, {args.starts} starts each (seconds until ready to train)")
    print(f"{'':36}{'median':>8}{'min':>8}{'max':>8}")
    for name, values in times.items():
        print(f"{name:36}{statistics.median(values):>8.2f}{min(values):>8.2f}{max(values):>8.2f}")
    if args.skip_pruning:
        return
    print()
    print(f"pruning on the quickstart: {args.trials} trials of {args.epochs} epochs, random "
          "sampler, the same seed")
    header = f"{'':28}{'train steps':>12}{'pruned':>8}{'best eval_loss':>16}{'wall s':>8}"
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if args.rows:
            rows = (ROOT / "experiments" / "data" / "arithmetic.jsonl").read_text().splitlines()
            data = Path(tmp) / "arithmetic.jsonl"
            data.write_text("\n".join(rows[: args.rows]) + "\n")
            extra.append(f'data.train="{data}"')
        if args.small_model:
            extra.append('model.scratch={arch="llama",hidden_size=64,layers=2,heads=4,vocab_size=256}')
        if extra:
            print("changed from the quickstart: " + " ".join(extra))
        print(header)
        for name, pruner in (("median pruner (startup 2)",
                              '{kind="median",startup_trials=2}'), ("no pruner", '"none"')):
            started = time.time()
            steps, best, pruned, _ = sweep(pruner, args.trials, args.epochs, Path(tmp), extra)
            results[name] = steps
            best_text = f"{best:.4f}" if best is not None else "—"
            print(f"{name:28}{steps:>12}{pruned:>8}{best_text:>16}{time.time() - started:>8.0f}")
    saved = 1 - results["median pruner (startup 2)"] / max(1, results["no pruner"])
    print(f"train steps saved by pruning: {saved:.0%}")


if __name__ == "__main__":
    main()
