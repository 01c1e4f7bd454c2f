"""A tunelab trial against plain TRL SFTTrainer: same model, data, settings and steps.

Run: python bench/bench_trial.py [--epochs 2] [--method full|lora]

Prints tokens per second for both and their ratio. The tunelab trial runs as it does in a
sweep: a fresh process forked from the preloaded server, its spool writing every logged
number to the store, the evaluation each epoch, the best checkpoint saved. The plain run is
SFTTrainer alone in this process with the same arguments and no store.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Quiet:
    def event(self, name: str, **data: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--method", default="full", choices=["full", "lora"])
    args = parser.parse_args()

    from tunelab.engine.run.runner import Runner, run_child
    from tunelab.engine.spec import load_spec

    sets = [f"train.epochs={args.epochs}", f"method.kind={args.method}", "search.trials=1",
            'eval.metrics=["perplexity"]', "eval.samples=0", "train.early_stopping_patience=10", "success={}"]
    spec = load_spec(ROOT / "experiments" / "quickstart.toml", sets)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "tunelab.duckdb"
        runner = Runner(spec, store, Quiet())
        prepared, base = runner._prepare()
        exp = spec.experiment
        job = runner._job(0, None, exp.model_dump(mode="json"), base, prepared,
                          Path(tmp) / "trial")
        run_child("trial", job)  # starts the fork server: not part of either measurement

        job = runner._job(1, None, exp.model_dump(mode="json"), base, prepared,
                          Path(tmp) / "trial-1")
        started = time.perf_counter()
        result = run_child("trial", job)
        ours = time.perf_counter() - started
        runner.spool.close()
        tokens = result.info["tokens"]

        from tunelab.engine.data.prepare import read_rows
        from tunelab.engine.train import model as models
        from tunelab.engine.train.sft import build_trainer, first_micro_batch

        def plain_run(folder: str) -> tuple[float, float, int]:
            plain_job = runner._job(2, None, exp.model_dump(mode="json"), base, prepared,
                                    Path(tmp) / folder)
            started = time.perf_counter()
            tokenizer = models.load_tokenizer(base, exp)
            model = models.load_model(base, exp)
            trainer = build_trainer(plain_job, exp, model, tokenizer, [],
                                    read_rows(prepared.files["train"]),
                                    read_rows(prepared.files["validation"]),
                                    first_micro_batch(exp, "cpu"))
            output = trainer.train()
            trainer.save_model(str(Path(tmp) / folder / "best"))
            return (time.perf_counter() - started, output.metrics["train_runtime"],
                    int(trainer.state.num_input_tokens_seen))

        plain_run("warm")  # this process imports and initialises once, as the fork server did
        plain, plain_train, plain_tokens = plain_run("plain")

    ours_train = result.info["train_seconds"]
    print(f"quickstart model, {args.method}, {args.epochs} epochs, {tokens:,} training tokens")
    print(f"{'':24}{'wall s':>8}{'tokens/s (wall)':>17}{'train s':>9}{'tokens/s (train)':>18}")
    print(f"{'tunelab trial':24}{ours:>8.2f}{tokens / ours:>17,.0f}{ours_train:>9.2f}"
          f"{tokens / ours_train:>18,.0f}")
    print(f"{'plain TRL SFTTrainer':24}{plain:>8.2f}{plain_tokens / plain:>17,.0f}"
          f"{plain_train:>9.2f}{plain_tokens / plain_train:>18,.0f}")
    print(f"ratio tunelab / plain: wall {(tokens / ours) / (plain_tokens / plain):.2f}, "
          f"training {(tokens / ours_train) / (plain_tokens / plain_train):.2f}")
    print("(tunelab's wall time includes the fresh process, the store writes and the test-split "
          "evaluation; the plain run has none of these)")


if __name__ == "__main__":
    main()
