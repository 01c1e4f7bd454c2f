"""What watching a trial (eval.watch) and scoring every example (eval.example_losses) cost,
as shares of the trial's training time, on the quickstart model.

Run: python bench/bench_watch.py [--epochs 3] [--watch 4] [--method full|lora]

One training in this process, as a trial trains (the trainer of engine.train.sft, the watch
callback spooling to a throwaway store), then the example losses of the best checkpoint. Both
costs and the training are timed in the same process within the same minute, so the shares are
steadier under load than the seconds, but not steady: run it a few times on a busy machine.
The watch costs a share of each evaluation, so its share does not depend on the epochs; the
example losses are one forward pass over the train and validation splits, once: their share
falls as the epochs grow (the table gives it per epoch of training, which is what the
`eval.example_losses = "auto"` rule rests on: it scores from 4 epochs on).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

from tunelab.engine.run import threads

threads.quiet_openmp()

ROOT = Path(__file__).resolve().parents[1]


class Quiet:
    def event(self, event: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--watch", type=int, default=4)
    parser.add_argument("--method", default="full", choices=["full", "lora"])
    parser.add_argument("--quick", action="store_true", help="2 epochs (for the suite)")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here (the suite)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2

    from tunelab.engine.data.prepare import read_rows
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train import model as models
    from tunelab.engine.train.builders import first_micro_batch
    from tunelab.engine.train.example_losses import example_loss_events
    from tunelab.engine.train.sft import build_trainer
    from tunelab.engine.train.watch import watch_callback, watched_prompts
    from tunelab.store import Spool

    sets = [f"train.epochs={args.epochs}", f"method.kind={args.method}", "search.trials=1",
            "eval.samples=0", "train.early_stopping_patience=1000", f"eval.watch={args.watch}",
            "success={}"]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)
    exp = spec.experiment
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "tunelab.duckdb"
        runner = Runner(spec, store, Quiet())
        prepared, base = runner._prepare()
        runner.spool.close()
        train_rows = read_rows(prepared.files["train"])
        val_rows = read_rows(prepared.files["validation"])
        threads.limit(os.cpu_count() or 1)
        job = runner._job(0, None, exp.model_dump(mode="json"), base, prepared, Path(tmp) / "t")
        tokenizer = models.load_tokenizer(base, exp)
        model = models.load_model(base, exp)
        cost: dict[str, float] = {}
        with Spool(store, tag="bench") as spool:
            prompts = watched_prompts(exp, tokenizer, val_rows)
            callback = watch_callback(exp, 0, tokenizer, prompts, spool, cost)
            trainer = build_trainer(job, exp, model, tokenizer, [callback], train_rows, val_rows,
                                    first_micro_batch(exp, "cpu"))
            with contextlib.redirect_stdout(io.StringIO()):
                output = trainer.train()
            started = time.perf_counter()
            events = example_loss_events(exp, 0, trainer.model, tokenizer,
                                         {"train": train_rows, "validation": val_rows},
                                         trainer.args.per_device_eval_batch_size)
            scoring = time.perf_counter() - started
            spool.write(events)
    watching = cost.get("watch_seconds", 0.0)
    training = output.metrics["train_runtime"] - watching  # the callback ran inside train()
    evaluations = trainer.state.global_step and len(
        [h for h in trainer.state.log_history if "eval_loss" in h])
    per_epoch = training / args.epochs
    print(f"quickstart model, {args.method}, {args.epochs} epochs, {len(train_rows)} train + "
          f"{len(val_rows)} validation examples, {evaluations} evaluations, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (seconds under load; the shares hold)")
    print(f"training (without the watch)          {training:8.2f} s")
    print(f"eval.watch = {args.watch}, all evaluations      {watching:8.2f} s  "
          f"{watching / training:6.1%} of training")
    print(f"example_losses ({len(events)} examples)   {scoring:8.2f} s  "
          f"{scoring / training:6.1%} of training, {scoring / per_epoch:6.1%} of one epoch")
    if args.json:
        from measure import Row, write_rows

        note = f"{args.method}, {args.epochs} epochs, {training:.0f} s of training"
        write_rows(args.json, [
            Row(f"eval.watch = {args.watch}: share of the trial's training time",
                100 * watching / training, None, "%", "<= 10 %", watching / training <= 0.10,
                note=note),
            # "auto" scores from 4 epochs: within 10 % of the trial while this stays <= 40 %
            Row("example_losses: share of one epoch of training", 100 * scoring / per_epoch, None,
                "%", "<= 40 %", scoring / per_epoch <= 0.40, note=note),
            Row("example_losses: share of the trial's training time", 100 * scoring / training,
                None, "%", note=note),
        ])

if __name__ == "__main__":
    main()
