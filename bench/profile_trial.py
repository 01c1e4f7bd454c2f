"""Where a trial's time goes: one quickstart trial under cProfile, in this process.

    python bench/profile_trial.py [--epochs 2] [--write docs/benchmarks.md]

The trial is the one `tunelab run` starts (engine.train.sft.run_trial with the runner's own
job), run here instead of in a forked child so that the profiler sees all of it. Its time is
split at the entry points of each stage: the data loader (reading and collating batches), the
forward and backward passes and the optimizer step of each training step, the evaluations
(the validation loss each epoch and the test split at the end), the store writes (spool and
ingest) and the checkpoints. `--write` puts the table in the report's profiling section
(bench/report.py keeps it when the suite rewrites the rest). Not a bench_*.py: a profile is read
by a person, once in a while, and cProfile slows what it measures (the shares hold, the seconds
are longer than a trial's own).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tunelab.engine.run import threads

threads.quiet_openmp()  # before torch loads, as in a trial process

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (stage, [(path fragment, function name, the caller's function name or None)]): the first that
# the profile has is taken; a caller narrows an entry point that two stages share (the loss is
# computed by training steps and by evaluations alike).
STAGES: list[tuple[str, list[tuple[str, str, str | None]]]] = [
    ("data: reading and collating batches", [
        ("torch/utils/data/dataloader.py", "__next__", None)]),
    ("forward (the loss of a training step)", [
        ("trl/trainer/sft_trainer.py", "compute_loss", "training_step"),
        ("transformers/trainer.py", "compute_loss", "training_step")]),
    ("backward", [("accelerate/accelerator.py", "backward", None)]),
    ("optimizer step", [("accelerate/optimizer.py", "step", None),
                        ("torch/optim/optimizer.py", "wrapper", None)]),
    ("evaluation: validation loss each epoch", [
        ("trl/trainer/sft_trainer.py", "evaluate", "_evaluate"),  # TRL's own, around Trainer's
        ("transformers/trainer.py", "evaluate", "_evaluate")]),
    ("evaluation: the test split at the end", [("engine/train/evaluate.py", "evaluate_model", None)]),
    ("store writes (spool + ingest)", [("store/spool.py", "write", None),
                                       ("store/spool.py", "close", None)]),
    ("checkpoints (save)", [("transformers/trainer.py", "_save_checkpoint", None),
                            ("transformers/trainer.py", "save_model", None)]),
    # what the fork server's preload leaves to the trial (lazy imports inside transformers/TRL;
    # some of it falls inside the stages above too)
    ("imports not preloaded", [("<frozen importlib._bootstrap>", "_find_and_load", None)]),
]


def _find(stats: pstats.Stats, path: str, name: str, caller: str | None) -> float | None:
    total = None
    for (filename, _, function), (_, _, _, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if function != name or not filename.replace(os.sep, "/").endswith(path):
            continue
        if caller is None:
            seconds = cumulative
        else:
            seconds = sum(edge[3] for (_, _, f), edge in callers.items() if f == caller)
        total = (total or 0.0) + seconds
    return total


def stages(stats: pstats.Stats) -> list[tuple[str, float | None]]:
    found = []
    for stage, candidates in STAGES:
        seconds = None
        for path, name, caller in candidates:
            hit = _find(stats, path, name, caller)
            if hit is not None:
                seconds = (seconds or 0.0) + hit
                if stage.startswith(("forward", "optimizer", "evaluation: validation")):
                    break  # the first that exists: the others wrap or are wrapped by it
        found.append((stage, seconds))
    return found


def profile(epochs: int) -> tuple[float, list[tuple[str, float | None]], str]:
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train.sft import run_trial

    sets = [f"train.epochs={epochs}", "search.trials=1", "eval.samples=0", "success={}"]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)

    class Quiet:
        def event(self, event: object) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(spec, Path(tmp) / "tunelab.duckdb", Quiet())
        prepared, base = runner._prepare()
        runner.spool.close()
        job = runner._job(0, None, spec.experiment.model_dump(mode="json"), base, prepared,
                          Path(tmp) / "trial")
        threads.limit(threads.share(1))
        import tunelab.engine.run.preload  # noqa: F401 - what the fork server imports before a trial

        profiler = cProfile.Profile()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            profiler.enable()
            result = run_trial(job, lambda event, data: None)
            profiler.disable()
        wall = time.perf_counter() - started
    if result.state != "complete":
        raise SystemExit(f"the profiled trial did not complete: {result.fail_reason}\n{result.error}")
    stats = pstats.Stats(profiler)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return wall, stages(stats), text.getvalue()


def section(epochs: int, wall: float, found: list[tuple[str, float | None]]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["### Where a trial's time goes", "",
             f"One quickstart trial ({epochs} epochs, full fine-tuning, "
             f"{threads.share(1)} threads) under cProfile, `python bench/profile_trial.py "
             f"--write`, {when}, load average {os.getloadavg()[0]:.1f}. {wall:.1f} s in all "
             "(cProfile's own cost included: read the shares, not the seconds).", "",
             "| stage | seconds | share |", "|---|---|---|"]
    for stage, seconds in found:
        if seconds is None:
            lines.append(f"| {stage} | not found in this profile | — |")
        else:
            lines.append(f"| {stage} | {seconds:.2f} | {seconds / wall:.0%} |")
    rest = wall - sum(s for _, s in found if s is not None)
    lines.append(f"| everything else (model set-up, tokenising, the trainer's bookkeeping) | "
                 f"{rest:.2f} | {rest / wall:.0%} |")
    return "\n".join(lines)


def write(path: Path, body: str) -> None:
    from bench.report import PROFILE_BEGIN, PROFILE_END, replace_section

    replace_section(path, PROFILE_BEGIN, PROFILE_END, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--write", type=Path, metavar="REPORT",
                        help="put the table in this report's profiling section")
    parser.add_argument("--top", action="store_true", help="also print cProfile's top 30")
    args = parser.parse_args()
    wall, found, top = profile(args.epochs)
    body = section(args.epochs, wall, found)
    print(body)
    if args.top:
        print(top)
    if args.write:
        write(args.write, body)
        print(f"wrote the profile into {args.write}")


if __name__ == "__main__":
    main()
