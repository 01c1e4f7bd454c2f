"""A tunelab trial against plain TRL SFTTrainer: same model, data, settings and steps.

Run: python bench/bench_trial.py [--epochs 12] [--repeats 3] [--method full|lora]

Prints training tokens per second (the trainer's own train_runtime) and wall tokens per second
of both, as the median and spread over alternating repetitions (a tunelab trial, then a plain
run, then the other way round), and the median of the per-pair ratios. The tunelab trial runs
as it does in a sweep: a fresh process forked from the preloaded server, its spool writing
every logged number to the store, the evaluation each epoch, the best checkpoint saved, the
test-split evaluation. The plain run is SFTTrainer alone in this process with the same
arguments, the same number of threads and no store. Aim for >= 30 s of training per run (the
table says); on a noisy machine add repetitions rather than trusting one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from tunelab.engine.run import threads

threads.quiet_openmp()  # the plain run waits as a trial process does (before torch loads)

ROOT = Path(__file__).resolve().parents[1]


class Quiet:
    def event(self, event: object) -> None:
        pass


def _row(name: str, values: list[float]) -> str:
    spread = f"{min(values):,.0f} – {max(values):,.0f}"
    return f"{name:34}{statistics.median(values):>12,.0f}{spread:>22}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", default="full", choices=["full", "lora"])
    parser.add_argument("--quick", action="store_true", help="2 epochs, one pair (for the suite)")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here (the suite)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.repeats = 2, 1

    from tunelab.engine.data.prepare import read_rows
    from tunelab.engine.run.runner import Runner, run_child
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train import model as models
    from tunelab.engine.train.builders import first_micro_batch
    from tunelab.engine.train.sft import build_trainer

    # the same work as the plain run: no generated samples, no per-example scoring after
    # training (its cost is bench_watch's figure)
    sets = [f"train.epochs={args.epochs}", f"method.kind={args.method}", "search.trials=1",
            'eval.metrics=["perplexity"]', "eval.samples=0", "eval.example_losses=false",
            "train.early_stopping_patience=1000", "success={}"]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)
    exp = spec.experiment
    runs: dict[str, dict[str, list[float]]] = {
        arm: {"train": [], "wall": [], "seconds": []} for arm in ("tunelab", "plain")}
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(spec, Path(tmp) / "tunelab.duckdb", Quiet())
        prepared, base = runner._prepare()
        runner.spool.close()
        train_rows = read_rows(prepared.files["train"])
        val_rows = read_rows(prepared.files["validation"])

        def job(folder: str):  # noqa: ANN202
            return runner._job(0, None, exp.model_dump(mode="json"), base, prepared,
                               Path(tmp) / folder)

        taken: list[int] = []  # the threads each trial process took (its share of the cores)

        def ours(folder: str) -> tuple[float, float, int]:
            started = time.perf_counter()
            result = run_child("trial", job(folder))
            assert result.state == "complete", result.error
            taken.append(result.info["threads"])
            threads.limit(result.info["threads"])  # the plain run gets as many
            return (time.perf_counter() - started, result.info["train_seconds"],
                    result.info["tokens"])

        def plain(folder: str) -> tuple[float, float, int]:
            started = time.perf_counter()
            tokenizer = models.load_tokenizer(base, exp)
            model = models.load_model(base, exp)
            trainer = build_trainer(job(folder), exp, model, tokenizer, [], train_rows, val_rows,
                                    first_micro_batch(exp, "cpu"))
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints each log
                output = trainer.train()
            trainer.save_model(str(Path(tmp) / folder / "best"))
            return (time.perf_counter() - started, output.metrics["train_runtime"],
                    int(trainer.state.num_input_tokens_seen))

        ours("warm-tunelab")  # starts the fork server: not part of either measurement
        plain("warm-plain")  # this process imports and initialises once, as the server did
        arms = {"tunelab": ours, "plain": plain}
        for i in range(args.repeats):
            order = ["tunelab", "plain"] if i % 2 == 0 else ["plain", "tunelab"]
            for arm in order:
                wall, train, tokens = arms[arm](f"{arm}-{i}")
                runs[arm]["train"].append(tokens / train)
                runs[arm]["wall"].append(tokens / wall)
                runs[arm]["seconds"].append(train)

    ratios = {kind: [o / p for o, p in zip(runs["tunelab"][kind], runs["plain"][kind], strict=True)]
              for kind in ("train", "wall")}
    print(f"quickstart model, {args.method}, {args.epochs} epochs, {args.repeats} alternating "
          f"repetitions, threads per trial {sorted(set(taken))}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; training "
          f"{statistics.median(runs['plain']['seconds']):.0f} s per plain run")
    print(f"{'tokens/s':34}{'median':>12}{'min – max':>22}")
    for arm, name in (("tunelab", "tunelab trial"), ("plain", "plain TRL SFTTrainer")):
        print(_row(f"{name}, training", runs[arm]["train"]))
        print(_row(f"{name}, wall", runs[arm]["wall"]))
    for kind in ("train", "wall"):
        values = ratios[kind]
        print(f"ratio tunelab / plain, {'training' if kind == 'train' else 'wall':8}  median "
              f"{statistics.median(values):.3f}  (pairs {min(values):.3f} – {max(values):.3f})")
    print("(tunelab's wall time includes the fresh process, the store writes and the test-split "
          "evaluation; the plain run has none of these)")
    if args.json:
        from measure import Row, write_rows

        seconds = statistics.median(runs["plain"]["seconds"])
        note = f"{args.method}, {args.epochs} epochs, {args.repeats} pairs, {seconds:.0f} s of training"
        rows = []
        for kind, word, target in (("train", "training", 0.98), ("wall", "wall", 0.95)):
            ours_rate = statistics.median(runs["tunelab"][kind])
            plain_rate = statistics.median(runs["plain"][kind])
            rows.append(Row(f"trial vs plain TRL SFTTrainer, {word} tokens/s", ours_rate, plain_rate,
                            "tokens/s", f"ratio >= {target} (on >= 30 s of training)",
                            ours_rate / plain_rate >= target, note=note))
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
