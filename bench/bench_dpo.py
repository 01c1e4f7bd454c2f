"""A tunelab dpo trial against plain TRL DPOTrainer: same parent, pairs, settings and steps.

Run: python bench/bench_dpo.py [--pairs 400] [--epochs 2] [--lr 2e-4] [--kind worked|wrong]

The parent is a LoRA trial of the quickstart (one short epoch). The pairs are made from the
quickstart's data (see make_pairs): by default raters prefer the worked answer to the bare
number, which the weak parent finds likelier, so DPO has a preference to learn.

Prints pairs per second for both and their ratio, and what the tunelab trial measured: the
preference and reward accuracy on held-out pairs, against the parent. The tunelab trial runs
as the second trial of a sweep: a fresh process from the preloaded server, the pairs tokenized as
in training, the parent's log-probabilities read from what the baseline measured (once a sweep;
TRL gets them as precomputed reference log-probabilities, so it does not run the reference at
every step) and the trained model's measured after, the parent's validation and test splits
evaluated, every number spooled to the store. The plain run is DPOTrainer alone in this
process, tokenizing the same rendered text itself, with no store (and the reference run at
every step, as DPOTrainer does by default).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from measure import Row, write_rows  # noqa: E402

TARGET_TRAINING, TARGET_WALL = 0.95, 0.8  # tunelab / plain TRL, pairs/s (issue 28)


class Quiet:
    def event(self, event: object) -> None:
        pass


def make_pairs(rows: list[dict], n: int, kind: str, seed: int = 0) -> list[dict]:
    """worked: raters prefer the worked answer ("28 - 24 = 4") to the bare number ("4"), which
    a weak parent finds likelier (fewer tokens): a style DPO can learn. wrong: the right worked
    answer against the same with its number off by 1-9 (arithmetic the parent barely knows)."""
    rng = random.Random(seed)
    pairs = []
    for row in rows:
        numbers = list(re.finditer(r"-?\d+", row["completion"]))
        if not numbers:
            continue
        last = numbers[-1]
        if kind == "worked":
            chosen, rejected = row["completion"], last.group()
        else:
            wrong = str(int(last.group()) + rng.choice([-1, 1]) * rng.randint(1, 9))
            chosen = row["completion"]
            rejected = row["completion"][:last.start()] + wrong + row["completion"][last.end():]
        if chosen != rejected:
            pairs.append({"prompt": row["prompt"], "chosen": chosen, "rejected": rejected})
        if len(pairs) == n:
            break
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--kind", default="worked", choices=["worked", "wrong"])
    parser.add_argument("--quick", action="store_true", help="64 pairs, one epoch (the suite)")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.epochs = 64, 1

    from tunelab.engine.run.runner import Runner, run_child
    from tunelab.engine.spec import load_spec
    from tunelab.store import evaluations

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "tunelab.duckdb"
        parent = load_spec(ROOT / "experiments" / "quickstart.toml", [
            "search.trials=1", "method.kind=lora", "train.epochs=1", "search.space={}",
            'eval.metrics=["perplexity"]', "eval.samples=0", "success={}"])
        Runner(parent, store, Quiet()).run()

        source = ROOT / "experiments" / "data" / "arithmetic.jsonl"
        rows = [json.loads(line) for line in source.read_text().splitlines()]
        pairs = make_pairs(rows, args.pairs, args.kind)
        (folder / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
        (folder / "dpo.toml").write_text(
            'name = "bench-dpo"\n[method]\nstage = "dpo"\nfrom = "quickstart:best"\n'
            'preferences = "pairs.jsonl"\nbeta = 0.1\nmin_pairs = 10\n'
            f"[train]\nepochs = {args.epochs}\nbatch_size = 16\nlearning_rate = {args.lr}\n"
            "early_stopping_patience = 10\n[search]\ntrials = 1\n"
            "[eval]\nsamples = 0\nmax_examples = 8\n")
        spec = load_spec(folder / "dpo.toml", store=store)
        exp = spec.experiment
        runner = Runner(spec, store, Quiet())
        prepared, base = runner._prepare()
        runner._baseline(base, prepared, exp.model_dump(mode="json"))
        job = runner._job(0, None, exp.model_dump(mode="json"), base, prepared, folder / "t0")
        run_child("trial", job)  # starts the fork server: not part of either measurement
        job = runner._job(1, None, exp.model_dump(mode="json"), base, prepared, folder / "t1")
        started = time.perf_counter()
        result = run_child("trial", job)
        ours = time.perf_counter() - started
        runner.spool.close()
        assert result.state == "complete", result.error
        values = result.info["values"]
        baseline = evaluations(store, "bench-dpo").get("base", {})

        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        from tunelab.engine.data import render as chat_render
        from tunelab.engine.data.prepare import read_rows
        from tunelab.engine.train.builders import first_micro_batch, trainer_arguments
        from tunelab.engine.train.dpo import load_policy

        def plain_run(name: str) -> tuple[float, float, int]:
            plain_job = runner._job(2, None, exp.model_dump(mode="json"), base, prepared,
                                    folder / name)
            started = time.perf_counter()
            model, tokenizer, _ = load_policy(plain_job, exp, trainable=True)
            template = chat_render.template_text(exp.dataset.template, tokenizer)

            def text(split: str) -> Dataset:  # the same rendered prompt; TRL tokenizes
                out = []
                for p in read_rows(prepared.files[split]):
                    conversation = {"messages": [{"role": "user", "content": p["prompt"]},
                                                 {"role": "assistant", "content": ""}]}
                    prompt, _ = chat_render.generation_prompt(conversation, tokenizer, template)
                    out.append({"prompt": prompt, "chosen": p["chosen"],
                                "rejected": p["rejected"]})
                return Dataset.from_list(out)

            train = text("train")
            micro = first_micro_batch(exp, "cpu")
            config = DPOConfig(**trainer_arguments(plain_job, exp, len(train), micro),
                               beta=exp.method.beta, loss_type=[exp.method.loss_type])
            trainer = DPOTrainer(model=model, args=config, train_dataset=train,
                                 eval_dataset=text("heldout"), processing_class=tokenizer)
            output = trainer.train()
            trainer.save_model(str(folder / name / "best"))
            return time.perf_counter() - started, output.metrics["train_runtime"], len(train)

        plain_run("warm")  # this process imports and initialises once, as the fork server did
        plain, plain_train, train_pairs = plain_run("plain")

    seen = train_pairs * args.epochs
    ours_train = result.info["train_seconds"]
    print(f"quickstart LoRA parent, {args.kind} pairs: {train_pairs} to train on "
          f"({prepared.report.heldout} held out), {args.epochs} epochs, {result.info['steps']} "
          "steps")
    print(f"{'':26}{'wall s':>8}{'pairs/s (wall)':>16}{'train s':>9}{'pairs/s (train)':>17}")
    print(f"{'tunelab dpo trial':26}{ours:>8.2f}{seen / ours:>16.1f}{ours_train:>9.2f}"
          f"{seen / ours_train:>17.1f}")
    print(f"{'plain TRL DPOTrainer':26}{plain:>8.2f}{seen / plain:>16.1f}{plain_train:>9.2f}"
          f"{seen / plain_train:>17.1f}")
    print(f"ratio tunelab / plain: wall {plain / ours:.2f}, training {plain_train / ours_train:.2f}")
    full = not args.quick  # the targets are set at the bench's full size
    write_rows(args.json, [
        Row(f"dpo pairs/s, training ({train_pairs} pairs × {args.epochs} epochs)",
            seen / ours_train, seen / plain_train, "pairs/s", f"ratio >= {TARGET_TRAINING}",
            plain_train / ours_train >= TARGET_TRAINING if full else None),
        Row("dpo pairs/s, wall (tunelab: fresh process, log-probabilities after, evaluation, store)",
            seen / ours, seen / plain, "pairs/s", f"ratio >= {TARGET_WALL}",
            plain / ours >= TARGET_WALL if full else None)])
    print("(tunelab's wall time includes the fresh process, the log-probabilities after training "
          "(before: read, measured once a sweep by the baseline), the evaluation on the parent's "
          "splits and the store writes)")
    for split in ("preferences", "preferences_train"):
        print(f"{split:18} preference accuracy {baseline.get(split + '/preference_accuracy', 0):.2f}"
              f" (parent) → {values[split + '/preference_accuracy']:.2f}"
              f" · reward accuracy {values[split + '/reward_accuracy']:.2f}"
              f" · margin {values[split + '/reward_margin']:.3f}")


if __name__ == "__main__":
    main()
