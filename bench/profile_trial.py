"""Where a trial's time goes: one quickstart trial under cProfile, in this process.

    python bench/profile_trial.py [--epochs 2] [--write docs/benchmarks.md]
    python bench/profile_trial.py --dpo [--pairs 400]   # a DPO trial of bench_dpo.py's stage

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
from typing import Any

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


# The stages of a DPO trial (bench/bench_dpo.py's stage: the quickstart's LoRA trial as parent),
# measured in its second trial: the baseline has run, as in a sweep.
DPO_STAGES: list[tuple[str, list[tuple[str, str, str | None]]]] = [
    ("pairs: read and tokenized", [("engine/train/pairs.py", "pair_sets", None),
                                   ("engine/train/dpo.py", "_pair_sets", None)]),
    ("the parent's log-probabilities before training", [
        ("engine/train/reference.py", "reference_logps", None),
        ("engine/train/pairs.py", "sequence_logps", "<dictcomp>")]),
    ("training steps: forward (the policy; and the reference, unless precomputed)", [
        ("trl/trainer/dpo_trainer.py", "compute_loss", "training_step")]),
    ("backward", [("accelerate/accelerator.py", "backward", None)]),
    ("optimizer step", [("accelerate/optimizer.py", "step", None),
                        ("torch/optim/optimizer.py", "wrapper", None)]),
    ("evaluation: held-out pairs each epoch", [("transformers/trainer.py", "_evaluate", None)]),
    ("the best checkpoint's log-probabilities after training", [
        ("engine/train/policy.py", "pair_values", None),
        ("engine/train/pairs.py", "sequence_logps", "train_once")]),
    ("the parent's splits: losses, generations, samples", [
        ("engine/train/policy.py", "supervised_values", None),
        ("engine/train/dpo.py", "_supervised_values", None)]),
    ("store writes (spool + ingest)", [("store/spool.py", "write", None),
                                       ("store/spool.py", "close", None)]),
    ("checkpoints (save)", [("transformers/trainer.py", "_save_checkpoint", None),
                            ("transformers/trainer.py", "save_model", None)]),
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


def stages(stats: pstats.Stats, table: list[tuple[str, list[tuple[str, str, str | None]]]] = STAGES
           ) -> list[tuple[str, float | None]]:
    found = []
    for stage, candidates in table:
        seconds = None
        for path, name, caller in candidates:
            hit = _find(stats, path, name, caller)
            if hit is not None:
                seconds = (seconds or 0.0) + hit
                if stage.startswith(("forward", "optimizer", "evaluation: validation", "pairs",
                                     "the parent's log", "the best")):
                    break  # the first that exists: the others wrap or are wrapped by it
        found.append((stage, seconds))
    return found


class Quiet:
    """A runner reporter that shows nothing (the profile is the output)."""

    def event(self, event: object) -> None:
        pass


def _profiled(run_trial: Any, job: Any) -> tuple[float, cProfile.Profile]:
    """The trial under the profiler, its output kept out of the way; (seconds, profile)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        profiler.enable()
        result = run_trial(job, lambda event, data: None)
        profiler.disable()
    if result.state != "complete":
        raise SystemExit(f"the profiled trial did not complete: {result.fail_reason}\n{result.error}")
    return time.perf_counter() - started, profiler


def profile(epochs: int) -> tuple[float, list[tuple[str, float | None]], str]:
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train.sft import run_trial

    sets = [f"train.epochs={epochs}", "search.trials=1", "eval.samples=0", "success={}"]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)

    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(spec, Path(tmp) / "tunelab.duckdb", Quiet())
        prepared, base = runner._prepare()
        runner.spool.close()
        job = runner._job(0, None, spec.experiment.model_dump(mode="json"), base, prepared,
                          Path(tmp) / "trial")
        threads.limit(threads.share(1))
        import tunelab.engine.run.preload  # noqa: F401 - what the fork server imports before a trial

        wall, profiler = _profiled(run_trial, job)
    stats = pstats.Stats(profiler)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return wall, stages(stats), text.getvalue()


def profile_dpo(pairs: int, epochs: int) -> tuple[float, list[tuple[str, float | None]], str, int]:
    """A DPO trial of bench_dpo.py's stage, after its baseline (as the second trial of a sweep);
    also the number of forward passes of the model."""
    import json

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_dpo import make_pairs

    from tunelab.engine.run.runner import Runner, run_child
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train.dpo import run_trial

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "tunelab.duckdb"
        Runner(load_spec(ROOT / "experiments" / "quickstart.toml", [
            "search.trials=1", "method.kind=lora", "train.epochs=1", "search.space={}",
            'eval.metrics=["perplexity"]', "eval.samples=0", "success={}"]), store, Quiet()).run()
        rows = [json.loads(line) for line in (ROOT / "experiments/data/arithmetic.jsonl").open()]
        (folder / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n"
                                                    for p in make_pairs(rows, pairs, "worked")))
        (folder / "dpo.toml").write_text(
            'name = "bench-dpo"\n[method]\nstage = "dpo"\nfrom = "quickstart:best"\n'
            'preferences = "pairs.jsonl"\nbeta = 0.1\nmin_pairs = 10\n'
            f"[train]\nepochs = {epochs}\nbatch_size = 16\nlearning_rate = 2e-4\n"
            "early_stopping_patience = 10\n[search]\ntrials = 1\n"
            "[eval]\nsamples = 0\nmax_examples = 8\n")
        spec = load_spec(folder / "dpo.toml", store=store)
        runner = Runner(spec, store, Quiet())
        prepared, base = runner._prepare()
        experiment = spec.experiment.model_dump(mode="json")
        runner._baseline(base, prepared, experiment)
        job = runner._job(0, None, experiment, base, prepared, folder / "t0")
        threads.limit(threads.share(1))
        import tunelab.engine.run.preload  # noqa: F401 - what the fork server imports before a trial

        run_child("trial", job)  # the first trial, in its own process (as in a sweep)
        job = runner._job(1, None, experiment, base, prepared, folder / "t1")
        wall, profiler = _profiled(run_trial, job)
        runner.spool.close()
    stats = pstats.Stats(profiler)
    found = stages(stats, DPO_STAGES)
    import inspect

    from transformers.models.llama import modeling_llama

    code = inspect.unwrap(modeling_llama.LlamaForCausalLM.forward).__code__
    key = (code.co_filename, code.co_firstlineno, code.co_name)
    forwards = stats.stats.get(key, (0, 0))[1]  # type: ignore[attr-defined]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return wall, found, text.getvalue(), forwards


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
    parser.add_argument("--dpo", action="store_true", help="a DPO trial (bench_dpo.py's stage)")
    parser.add_argument("--pairs", type=int, default=400, help="with --dpo: preference pairs")
    args = parser.parse_args()
    if args.dpo:
        wall, found, top, forwards = profile_dpo(args.pairs, args.epochs)
        print(f"A DPO trial ({args.pairs} pairs, {args.epochs} epochs) under cProfile: {wall:.1f} s "
              f"(read the shares, not the seconds); {forwards:,} forward passes of the model")
        for stage, seconds in found:
            print(f"{seconds / wall if seconds else 0:>6.0%}  {stage}" if seconds is not None
                  else f"{'—':>6}  {stage} (not in this profile)")
        if args.top:
            print(top)
        return
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
