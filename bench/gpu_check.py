"""The GPU check: every GPU path of tunelab, measured against the plain libraries, in one run.

    python bench/gpu_check.py            # on a GPU machine, from a fresh clone: about 5 minutes
    python bench/gpu_check.py --cpu      # the same code paths at tiny sizes on the CPU (fp32)

Needs nothing from a model hub: the SmolLM2-135M-shaped and Qwen2-0.5B-shaped models are built
from their configs with random weights, with a tokenizer trained here on the quickstart's data.
The paths, each reported and any failure making the exit status non-zero:

1. the device's bf16 matmul peak (what model FLOPs utilisation is measured against);
2. full / LoRA / QLoRA (4-bit, paged 8-bit AdamW) of each model shape, a tunelab trial (a fresh
   process from the preloaded server, the store written) against plain TRL SFTTrainer with the
   same arguments: tokens/s, ratio, peak memory, MFU (6·N·tokens/s for full, 4·N for adapters);
3. packed against unpacked real (non-padding) tokens/s on a length-skewed set;
4. a real CUDA out-of-memory (the process's memory capped) and the back-off to half the
   micro-batch with the same effective batch;
5. two workers of one sweep, each pinned to its device (two trials on one device when only one
   is visible), read back from each trial's manifest;
6. a streamed chat reply and a two-adapter arena batch against plain `generate`.

Writes its section of docs/benchmarks.md (between the markers bench/report.py keeps). `--cpu`
exercises the same code with QLoRA and the capped-memory OOM replaced: QLoRA is reported as
skipped (bitsandbytes' 4-bit path needs CUDA) and the OOM is injected by the engine's own fault
hook, so the back-off path is the real one but the out-of-memory is not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

# name: (config class, config) at full size; --cpu shrinks every one to the same tiny shape
SHAPES: dict[str, tuple[str, dict[str, int]]] = {
    "SmolLM2-135M": ("LlamaConfig", dict(hidden_size=576, intermediate_size=1536,
                                         num_hidden_layers=30, num_attention_heads=9,
                                         num_key_value_heads=3, vocab_size=49152)),
    "Qwen2-0.5B": ("Qwen2Config", dict(hidden_size=896, intermediate_size=4864,
                                       num_hidden_layers=24, num_attention_heads=14,
                                       num_key_value_heads=2, vocab_size=151936)),
}
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=512)


class Quiet:
    def event(self, event: object) -> None:
        pass


@dataclass
class Check:
    """The results of one run: lines of the report and the paths that failed."""

    cpu: bool
    lines: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def path(self, name: str, fn: Callable[[], None]) -> None:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - every path runs; the exit status tells
            traceback.print_exc()
            self.failed.append(name)
            self.lines.append(f"- **{name}: FAILED** ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''})")
        print(f"   {time.perf_counter() - started:.0f}s", flush=True)


# ---------------------------------------------------------------- models, data, peak


def build_base(folder: Path, shape: str, cpu: bool) -> tuple[Path, int]:
    """A random-weight model of the shape, saved with a locally trained tokenizer."""
    import torch
    import transformers

    from tunelab.engine.train.model import train_tokenizer

    rows = [json.loads(x) for x in (ROOT / "experiments/data/arithmetic.jsonl").open()]
    tokenizer = train_tokenizer([r["prompt"] + "\n" + r["completion"] for r in rows], 512)
    kind, sizes = SHAPES[shape]
    sizes = {**sizes, **(TINY if cpu else {})}
    # the embedding keeps the shape's vocabulary: its memory and FLOPs are part of the shape
    config = getattr(transformers, kind)(
        **sizes, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
        max_position_embeddings=2048)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    target = folder / shape
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target, params


def skewed_data(folder: Path, rows: int) -> Path:
    """Arithmetic prompts whose answers are mostly short and sometimes long (a long tail)."""
    import random

    rng = random.Random(0)
    path = folder / "skewed.jsonl"
    with path.open("w") as f:
        for _ in range(rows):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            work = " ".join(f"{a}+{k}={a + k}" for k in range(rng.choice([1, 1, 1, 2, 4, 24])))
            f.write(json.dumps({"prompt": f"{a} + {b} =", "completion": f" {a + b}. {work}"})
                    + "\n")
    return path


def matmul_peak(device: str, dtype: Any) -> float:
    """FLOP/s of a large square matmul on the device: the ceiling MFU is measured against."""
    import torch

    n = 8192 if device == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()  # a sync point: the timing must include the kernels
    runs = 20 if device == "cuda" else 5
    start = time.perf_counter()
    for _ in range(runs):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * runs / (time.perf_counter() - start)


# ---------------------------------------------------------------- training: tunelab vs TRL


def sets_for(base: Path, data: Path, method: str, cpu: bool, extra: list[str]) -> list[str]:
    sets = [f'model.base="{base}"', f'data.train="{data}"',
            f'method.kind="{method}"', "train.epochs=1", "train.batch_size=16",
            "train.micro_batch_size=16" if not cpu else "train.micro_batch_size=8",
            "train.max_length=256", "train.logging_steps=5", "search.trials=1",
            'search.pruner="none"', 'eval.metrics=["perplexity"]', "eval.samples=0", "data.force=true",
            "eval.baseline=false", "success={}", "train.early_stopping_patience=10"]
    # QLoRA's paged 8-bit AdamW is the engine's own choice on CUDA (engine/train/builders.py)
    return sets + extra


def experiment_file(base: Path) -> Path:
    """The quickstart with the built model as its base (a scratch model cannot be unset by
    --set, so the file is written beside the model)."""
    text = (ROOT / "experiments" / "quickstart.toml").read_text()
    lines = [f'base = "{base}"' if line.startswith("scratch =") else line
             for line in text.splitlines()]
    path = base.parent / f"{base.name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(sets: list[str]) -> Any:
    from tunelab.engine.spec import load_spec

    base = next(s.split("=", 1)[1].strip('"') for s in sets if s.startswith("model.base="))
    return load_spec(experiment_file(Path(base)), [s for s in sets
                                                   if not s.startswith("model.base=")])


def tunelab_trial(sets: list[str], tmp: Path, name: str) -> dict[str, Any]:
    from tunelab.engine.run.runner import Runner, run_child

    spec = load(sets)
    runner = Runner(spec, tmp / f"{name}.duckdb", Quiet())
    prepared, base = runner._prepare()
    job = runner._job(0, None, spec.experiment.model_dump(mode="json"), base, prepared,
                      tmp / name)
    started = time.perf_counter()
    result = run_child("trial", job)
    wall = time.perf_counter() - started
    runner.spool.close()
    if result.state != "complete":
        raise RuntimeError(f"tunelab trial {result.state}: {result.error or result.fail_reason}")
    info = result.info
    return {"tokens_s": info["tokens"] / info["train_seconds"], "seconds": info["train_seconds"],
            "peak": info.get("peak_memory"),
            "wall": wall, "prepared": prepared, "spec": spec, "base": base}


def plain_trl(base: str, prepared: Any, spec: Any, method: str, device: str) -> dict[str, Any]:
    """TRL SFTTrainer with the same arguments, written from the libraries' documentation only."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from tunelab.engine.data.prepare import read_rows

    exp = spec.experiment
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=dtype) if method == "qlora" else None
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, quantization_config=quant)
    rows = read_rows(prepared.files["train"])
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                              for r in rows])
    micro = int(exp.train.micro_batch_size)
    args = SFTConfig(output_dir=str(Path(tempfile.mkdtemp()) / "plain"), num_train_epochs=1,
                     per_device_train_batch_size=micro,
                     gradient_accumulation_steps=exp.train.batch_size // micro,
                     learning_rate=exp.learning_rate, max_length=exp.train.max_length,
                     logging_steps=exp.train.logging_steps, bf16=device == "cuda",
                     use_cpu=device == "cpu", report_to=[], save_strategy="no",
                     optim="paged_adamw_8bit" if method == "qlora" else "adamw_torch",
                     include_num_input_tokens_seen=True)
    lora = LoraConfig(r=exp.method.r, lora_alpha=int(round(exp.method.r * exp.method.alpha_ratio)),
                      target_modules=exp.method.target_modules, task_type="CAUSAL_LM") \
        if method in ("lora", "qlora") else None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora)
    out = trainer.train()
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return {"tokens_s": trainer.state.num_input_tokens_seen / out.metrics["train_runtime"],
            "peak": peak}


def gib(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) and value else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true",
                        help="simulated: tiny shapes, fp32, no 4-bit, an injected OOM")
    parser.add_argument("--rows", type=int, default=None, help="training rows (800; 192 --cpu)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging

    logging.set_verbosity_error()
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("no GPU visible: run with --cpu for the simulated check", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    check = Check(cpu=not cuda)
    tmp = Path(tempfile.mkdtemp(prefix="tunelab-gpu-check-"))
    rows = args.rows or (800 if cuda else 192)
    data = skewed_data(tmp, rows)
    peak = {"flops": 0.0}
    bases: dict[str, tuple[Path, int]] = {}

    def measure_peak() -> None:
        peak["flops"] = matmul_peak(device, dtype)
        check.lines.append(f"- {str(dtype).removeprefix('torch.')} matmul peak on {device}: "
                           f"{peak['flops'] / 1e12:.3g} TFLOP/s")

    check.path("matmul peak", measure_peak)
    table = ["| model | method | tunelab tokens/s | TRL tokens/s | ratio | tunelab peak | "
             "TRL peak | MFU tunelab |", "|---|---|---|---|---|---|---|---|"]
    for shape in SHAPES:
        check.path(f"build {shape}", lambda s=shape: bases.__setitem__(s, build_base(tmp, s, not cuda)))
        for method in ("full", "lora", "qlora"):
            name = f"train {shape} {method}"
            if method == "qlora" and not cuda:
                check.skipped.append(f"{name} (4-bit needs CUDA)")
                continue
            if shape not in bases:
                continue

            def train(shape: str = shape, method: str = method) -> None:
                base, params = bases[shape]
                ours = tunelab_trial(sets_for(base, data, method, not cuda, []), tmp,
                                     f"{shape}-{method}")
                plain = plain_trl(ours["base"], ours["prepared"], ours["spec"], method, device)
                flops_per_token = (6 if method == "full" else 4) * params
                mfu = ours["tokens_s"] * flops_per_token / peak["flops"] if peak["flops"] else 0
                table.append(f"| {shape} | {method} | {ours['tokens_s']:,.0f} | "
                             f"{plain['tokens_s']:,.0f} | {ours['tokens_s'] / plain['tokens_s']:.2f}× "
                             f"| {gib(ours['peak'])} | {gib(plain['peak'])} | {mfu:.1%} |")

            check.path(name, train)

    def packing() -> None:
        """Real (non-padding) tokens/s, packed against unpacked, as bench/bench_packing.py: the
        packed batch holds as many rows of max_length as hold the tokens of 16 examples, so both
        take optimizer steps of about the same number of tokens."""
        from tunelab.engine.data.prepare import read_rows
        from tunelab.engine.train import model as models

        base, _ = bases["SmolLM2-135M"]
        extra = ["train.epochs=2"]
        unpacked = tunelab_trial(sets_for(base, data, "full", not cuda, extra), tmp, "unpacked")
        exp = unpacked["spec"].experiment
        tokenizer = models.load_tokenizer(unpacked["base"], exp)
        lengths = [min(len(r["input_ids"]), exp.train.max_length) for r in
                   models.render(read_rows(unpacked["prepared"].files["train"]), tokenizer)]
        rows = max(1, round(16 * statistics.mean(lengths) / exp.train.max_length))
        packed = tunelab_trial(sets_for(base, data, "full", not cuda, [
            *extra, "train.packing=true", f"train.batch_size={rows}",
            f"train.micro_batch_size={rows}"]), tmp, "packed")
        real = {name: sum(lengths) * exp.train.epochs / run["seconds"]
                for name, run in (("packed", packed), ("unpacked", unpacked))}
        check.lines.append(f"- packing on a length-skewed set ({len(lengths)} rows of "
                           f"{min(lengths)}–{max(lengths)} tokens, {rows} packed rows of "
                           f"{exp.train.max_length} a step against 16 examples): "
                           f"{real['packed']:,.0f} real tokens/s packed vs "
                           f"{real['unpacked']:,.0f} unpacked ({real['packed'] / real['unpacked']:.2f}×)")

    check.path("packed vs unpacked", packing)
    check.path("out-of-memory back-off", lambda: oom_backoff(check, bases, data, tmp, cuda))
    check.path("two workers pinned", lambda: two_workers(check, bases, data, tmp, cuda))
    check.path("chat and arena streaming", lambda: chat(check, tmp))

    section = render(check, table, device)
    from bench import report

    report.replace_gpu_section(args.out, section)
    print(section)
    print(f"wrote the GPU section of {args.out}")
    return 1 if check.failed else 0


def oom_backoff(check: Check, bases: dict[str, tuple[Path, int]], data: Path, tmp: Path,
                cuda: bool) -> None:
    """A trial in this process, its first micro-batch too big for the memory it may use."""
    import torch

    from tunelab.engine.run.runner import Runner
    from tunelab.engine.train.sft import run_trial
    from tunelab.engine.train.trial import FAULT_OOM

    base, _ = bases["Qwen2-0.5B"]
    # every halving allowed (8): whatever the device, some micro-batch down to 1 fits
    sets = sets_for(base, data, "full", not cuda, ["train.batch_size=64",
                                                   "train.micro_batch_size=64",
                                                   "train.max_oom_retries=8"])
    spec = load(sets)
    runner = Runner(spec, tmp / "oom.duckdb", Quiet())
    prepared, ref = runner._prepare()
    job = runner._job(0, None, spec.experiment.model_dump(mode="json"), ref, prepared,
                      tmp / "oom")
    events: list[tuple[str, dict[str, Any]]] = []
    if cuda:
        # A real CUDA OOM: this process may use 12 GiB of the device; micro-batch 64 of a 0.5B
        # model with a 152k vocabulary (logits of 64 × ~200 tokens × 152k, in bf16 and again in
        # fp32 for the loss: about 12 GB) cannot fit, and the allocator raises.
        _, total = torch.cuda.mem_get_info()
        torch.cuda.set_per_process_memory_fraction(min(1.0, 12 * 2**30 / total))
    else:
        os.environ[FAULT_OOM] = "1"  # the engine's hook: the first attempt fails as OOM would
    try:
        result = run_trial(job, lambda name, info=None: events.append((name, info or {})))
    finally:
        os.environ.pop(FAULT_OOM, None)
        if cuda:
            torch.cuda.set_per_process_memory_fraction(1.0)
        runner.spool.close()
    backs = [info for name, info in events if name == "oom"]
    if not backs:
        raise RuntimeError(f"no out-of-memory happened (trial {result.state})")
    if result.state != "complete":
        raise RuntimeError(f"the trial did not recover: {result.state} {result.error}")
    steps = " → ".join([str(backs[0]["micro_batch"])] + [str(b["next"]) for b in backs])
    effective = spec.experiment.train.batch_size
    final = backs[-1]["next"]
    check.lines.append(
        f"- out-of-memory ({'real, memory capped at 12 GiB' if cuda else 'injected: --cpu'}): "
        f"micro-batch {steps}, accumulation {effective // backs[0]['micro_batch']} → "
        f"{effective // final}, effective batch {effective} throughout; the trial completed")


def two_workers(check: Check, bases: dict[str, tuple[Path, int]], data: Path, tmp: Path,
                cuda: bool) -> None:
    from tunelab.engine.run.devices import visible_devices, worker_slots
    from tunelab.engine.run.runner import Runner

    base, _ = bases["SmolLM2-135M"]
    devices = visible_devices() if cuda else []
    extra = ["search.trials=2", "search.workers=2"]
    if len(devices) == 1:  # one device: two trials share it, each worker pinned to it
        extra.append(f"resources.devices=[{devices[0]}, {devices[0]}]")
    sets = [s for s in sets_for(base, data, "lora", not cuda, extra) if s != "search.trials=1"]
    spec = load(sets)
    store = tmp / "workers.duckdb"
    Runner(spec, store, Quiet(), workers=2).run()
    from tunelab import store as st

    st.flush_orphans(store)
    states = st.query(store, "select number, state, artifact_dir from trials order by 1").rows
    seen = []
    for number, state, folder in states:
        manifest = Path(folder or "") / "manifest.json"
        where = json.loads(manifest.read_text()).get("device") if manifest.exists() else "?"
        seen.append(f"trial {number} {state} on {where}")
    if len(states) != 2 or any(s[1] != "complete" for s in states):
        raise RuntimeError("; ".join(seen) or "no trials")
    # The pin is each worker's CUDA_VISIBLE_DEVICES (engine/run/child.py); the trial's manifest
    # does not record it yet, so what is shown is the slots the runner gave its two workers.
    slots = worker_slots(spec.experiment, 2)
    check.lines.append(f"- two workers, pinned to CUDA_VISIBLE_DEVICES {slots} "
                       "(None: a CPU machine): " + "; ".join(seen))


def chat(check: Check, tmp: Path) -> None:
    from bench_chat import build, speed, speed_rows

    folder = tmp / "chat"
    folder.mkdir()
    build(folder, 256 if check.cpu else 896, 2 if check.cpu else 24)
    rows = speed_rows(speed(folder, 32 if check.cpu else 96, 3), 32)
    for row in rows:
        check.lines.append(f"- {row.figure}: tunelab {row.tunelab:,.1f} vs plain "
                           f"{row.plain:,.1f} {row.unit}")


def render(check: Check, table: list[str], device: str) -> str:
    import torch

    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (simulated, --cpu)"
    lines = ["## GPU check", "",
             f"`python bench/gpu_check.py{' --cpu' if check.cpu else ''}` on {where}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."]
    if check.cpu:
        lines += ["", "**The GPU numbers are still to be measured.** This run used the simulated "
                  "mode: tiny shapes in fp32 on the CPU, QLoRA skipped, the out-of-memory "
                  "injected; it shows the script and its paths work, not how fast a GPU is."]
    lines += ["", *table, "", *check.lines]
    if check.skipped:
        lines += ["", "Skipped: " + "; ".join(check.skipped) + "."]
    lines += ["", ("All paths passed." if not check.failed
                   else "**Failed paths:** " + ", ".join(check.failed) + ".")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
