"""Sequence packing on a length-skewed data set: real (non-padding) tokens per second, packed
(`train.packing = true`) against unpacked, same model, data and epochs.

Run: python bench/bench_packing.py [--rows 400] [--epochs 2] [--repeats 2] [--quick] [--json PATH]

The data: plain-text rows whose lengths are drawn log-uniformly from 20 to 1,000 tokens (most
short, a few long: padding each micro-batch to its longest row wastes most of the compute).
The model: the quickstart's scratch Llama with max_length 1,024. Each arm trains in this
process with tunelab's own trainer builder; the arms alternate. Real tokens are counted from
the data (every row once per epoch, capped at max_length), so the two arms' figures mean the
same thing; the validation loss (unpacked in both) says the packed training learned as much.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tunelab.engine.run import threads

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, summarise, write_rows  # noqa: E402

threads.quiet_openmp()  # before torch loads, as in a trial process

WORDS = ("the model reads a long text and a short one side by side while the trainer counts "
         "every token that reaches it and none that is padding").split()


def skewed_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Texts of about 20 to 1,000 tokens (log-uniform)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = int(round(10 ** rng.uniform(1.2, 2.95)))
        rows.append({"text": " ".join(rng.choice(WORDS) for _ in range(words))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="400 (120 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="2 (1 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="2 (1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for the suite")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    # --quick: about 40 s of CPU, a share of the suite's five minutes on 2 cores
    args.rows = args.rows or (120 if args.quick else 400)  # under 100 the data check refuses
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.epochs = args.epochs or (1 if args.quick else 2)

    from tunelab.engine.data.prepare import read_rows
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec
    from tunelab.engine.train import model as models
    from tunelab.engine.train.builders import first_micro_batch
    from tunelab.engine.train.sft import build_trainer

    results: dict[bool, dict[str, list[float]]] = {
        packed: {"tokens/s": [], "eval_loss": [], "seconds": []} for packed in (False, True)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "skewed.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in skewed_rows(args.rows)))
        (folder / "bench.toml").write_text(
            'name = "packing-bench"\n[model]\n'
            "scratch = { hidden_size = 128, layers = 4, heads = 4, vocab_size = 512, "
            "max_position = 1024 }\n"
            '[data]\ntrain = "skewed.jsonl"\nformat = "text"\ndedupe = "none"\n'
            "split = { train = 0.9, validation = 0.1, test = 0.0 }\n"
            f"[train]\nepochs = {args.epochs}\nbatch_size = 16\nlearning_rate = 1e-3\n"
            "max_length = 1024\nearly_stopping_patience = 1000\nlogging_steps = 1000\n"
            '[eval]\nmetrics = ["perplexity"]\nsamples = 0\nbaseline = false\n')
        spec = load_spec(folder / "bench.toml")
        runner = Runner(spec, folder / "s.duckdb", type("Quiet", (), {"event": lambda *a, **k: None})())
        prepared, base = runner._prepare()
        runner.spool.close()
        train_rows = read_rows(prepared.files["train"])
        val_rows = read_rows(prepared.files["validation"])
        threads.limit(threads.share(1))

        tokenizer = models.load_tokenizer(base, spec.experiment)
        lengths = [min(len(r["input_ids"]), spec.experiment.train.max_length)
                   for r in models.render(train_rows, tokenizer)]
        # packed, batch_size counts rows of max_length: as many as hold the tokens of 16
        # examples, so both arms take optimizer steps of about the same number of tokens
        rows = max(1, round(16 * statistics.mean(lengths) / spec.experiment.train.max_length))

        def once(packed: bool, name: str, record: bool = True) -> None:
            sets = ["train.packing=true", f"train.batch_size={rows}"] if packed else []
            exp = load_spec(folder / "bench.toml", sets).experiment
            job = runner._job(0, None, exp.model_dump(mode="json"), base, prepared, folder / name)
            trainer = build_trainer(job, exp, models.load_model(base, exp), tokenizer, [],
                                    train_rows, val_rows, first_micro_batch(exp, "cpu"))
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints each log
                seconds = trainer.train().metrics["train_runtime"]
            if record:
                results[packed]["tokens/s"].append(sum(lengths) * args.epochs / seconds)
                results[packed]["seconds"].append(seconds)
                results[packed]["eval_loss"].append(trainer.evaluate()["eval_loss"])

        once(False, "warm", record=False)  # imports and first-call costs, in neither measurement
        for i in range(args.repeats):
            for packed in ((False, True) if i % 2 == 0 else (True, False)):
                once(packed, f"{'packed' if packed else 'unpacked'}-{i}")

    print(f"{len(lengths)} training rows of {min(lengths)}–{max(lengths)} tokens (median "
          f"{statistics.median(lengths):.0f}), {args.epochs} epoch(s), batch 16 examples unpacked, "
          f"{rows} rows of 1,024 tokens packed, {args.repeats} alternating "
          f"repetitions, {threads.share(1)} threads, load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%H:%M')}")
    print(f"{'':12}{'real tokens/s':>16}{'min – max':>20}{'train s':>9}{'eval_loss':>11}")
    for packed in (False, True):
        r = results[packed]
        spread = f"{min(r['tokens/s']):,.0f} – {max(r['tokens/s']):,.0f}"
        print(f"{'packed' if packed else 'unpacked':12}{statistics.median(r['tokens/s']):>16,.0f}"
              f"{spread:>20}{statistics.median(r['seconds']):>9.1f}"
              f"{statistics.median(r['eval_loss']):>11.3f}")
    ratio = statistics.median(results[True]["tokens/s"]) / statistics.median(results[False]["tokens/s"])
    print(f"packed / unpacked, real tokens/s: {ratio:.2f}x (target >= 1.3x)")
    packed, unpacked = summarise(results[True]["tokens/s"]), summarise(results[False]["tokens/s"])
    losses = (statistics.median(results[True]["eval_loss"]),
              statistics.median(results[False]["eval_loss"]))
    write_rows(args.json, [
        Row(f"packed vs unpacked real tokens/s, length-skewed set ({len(lengths)} rows of "
            f"{min(lengths)}–{max(lengths)} tokens, {args.epochs} epoch(s))", packed.median,
            unpacked.median, "tokens/s", "≥ 1.3× unpacked", ratio >= 1.3, packed.spread,
            unpacked.spread, f"eval_loss {losses[0]:.3f} packed vs {losses[1]:.3f}")])


if __name__ == "__main__":
    main()
