"""Chat generation: tunelab's streaming against plain `model.generate`, and the memory of
adapters on one shared base against separate loads.

Run: python bench/bench_chat.py [--hidden 640 --layers 8 --tokens 96 --repeats 3 --threads 1]

Everything is built here, offline: a Llama of the given size with random weights (from a
config, as the tests do) and a tokenizer trained on the quickstart's data, saved to a temporary
folder, plus three LoRA adapters (r 16, all linear layers) saved as a trial keeps them.

1. Speed, same model, same rendered prompt, greedy, exactly --tokens new tokens (min = max):
   - plain: `model.generate` with a streamer that only notes the time of each token;
   - tunelab: `engine.chat.stream_reply` (TextIteratorStreamer, decoding, stop check), timed
     from the call to its first non-empty piece of text;
   - arena: `engine.side_by_side.stream_pair` on two adapters of one base (one batch of two),
     against plain `generate` of that same batch (peft's mixed adapters, `adapter_names`).
   Time to first token and tokens per second (after the first), medians of --repeats runs.
   With --json PATH (the suite) these are also written as rows; --quick: a smaller model and
   no memory part.
   torch runs on --threads threads (default 1). On a loaded CPU (this project's machine is
   shared) two OpenMP threads in the main thread spin against other processes and make plain
   `generate` there several times slower than the same call in a worker thread, as tunelab
   makes it; one thread puts both on the same footing.
2. Memory, each case in a fresh process: the growth of the process's resident memory (RSS)
   from after the imports to after loading and one short generation per model (so every
   weight is touched), and the bytes of the distinct parameter tensors held.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from measure import Row, write_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASK = [{"role": "user", "content": "What is 12 plus 30?"}]


def build(folder: Path, hidden: int, layers: int) -> None:
    """The base model and three LoRA adapters, saved as tunelab's trials keep them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tunelab.engine.train.model import train_tokenizer

    rows = [json.loads(x) for x in (ROOT / "experiments/data/arithmetic.jsonl").open()]
    tokenizer = train_tokenizer([r["prompt"] + "\n" + r["completion"] for r in rows], 1024)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    for k in range(3):
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(folder / "base"),
                              LoraConfig(r=16, target_modules="all-linear",
                                         init_lora_weights=False))
        peft.save_pretrained(folder / f"adapter{k}")
        tokenizer.save_pretrained(folder / f"adapter{k}")


def experiment() -> Any:
    from tunelab.engine.spec import load_spec

    return load_spec(ROOT / "experiments" / "quickstart.toml").experiment


def sources(folder: Path) -> list[Any]:
    from tunelab.engine.serve.refs import ModelSource

    exp = experiment()
    return [ModelSource(f"trial:{k}", str(folder / "base"), str(folder / f"adapter{k}"), True, exp)
            for k in range(3)]


class Clock:
    """A streamer that only notes when each new token arrives (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def speed(folder: Path, tokens: int, repeats: int) -> dict[str, tuple[float, float]]:
    """{case: (first token s, tokens/s)}, medians; on the model's device (a GPU if any)."""
    import torch

    from tunelab.engine.serve.chat import Settings, prompt_for, stream_reply
    from tunelab.engine.serve.side_by_side import load_pair, stream_pair
    from tunelab.engine.train import model as models

    exp = experiment()
    model = models.load_model(str(folder / "base"), exp).eval()
    tokenizer = models.load_tokenizer(str(folder / "base"), exp)
    settings = Settings(temperature=0, max_new_tokens=tokens, min_new_tokens=tokens)
    inputs = tokenizer(prompt_for(ASK, tokenizer), return_tensors="pt",
                       add_special_tokens=False).to(model.device)

    def plain() -> tuple[float, float]:
        clock = Clock()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 streamer=clock)
        assert out.shape[1] - inputs["input_ids"].shape[1] == tokens
        first, last = clock.times[1], clock.times[-1]
        return first - start, (tokens - 1) / (last - first)

    def streamed(run: Any, count: int) -> tuple[float, float]:
        start = time.perf_counter()
        first = None
        for piece in run():
            if first is None and any(piece):
                first = time.perf_counter()
        end = time.perf_counter()
        assert first is not None
        return first - start, (count - 1) / (end - first)

    def ours() -> tuple[float, float]:
        return streamed(lambda: stream_reply(model, tokenizer, ASK, settings, threading.Event()),
                        tokens)

    pair = load_pair(*sources(folder)[:2])

    def arena() -> tuple[float, float]:
        return streamed(lambda: stream_pair(pair, (ASK, ASK), settings, threading.Event()),
                        2 * tokens)

    def plain_pair() -> tuple[float, float]:
        """The arena's work done by peft and generate alone: the same two rows, each with its
        adapter, in one mixed-adapter batch (both sides' tokens per second)."""
        holder = pair.sides[0].model
        ids = inputs["input_ids"].repeat(2, 1)
        clock = Clock()
        start = time.perf_counter()
        with torch.no_grad():
            out = holder.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                  pad_token_id=tokenizer.pad_token_id, streamer=clock,
                                  adapter_names=[s.adapter for s in pair.sides])
        assert out.shape[1] - ids.shape[1] == tokens
        first, last = clock.times[1], clock.times[-1]
        return first - start, 2 * (tokens - 1) / (last - first)

    params = sum(p.numel() for p in model.parameters())
    threads = torch.get_num_threads()
    print(f"model: Llama, {params / 1e6:.1f}M parameters, {model.dtype}, {model.device} "
          f"({threads} thread{'s' if threads > 1 else ''}); "
          f"prompt {inputs['input_ids'].shape[1]} tokens, "
          f"{tokens} new tokens, greedy; median of {repeats} runs after a warm-up")
    print(f"{'':44}{'first token':>12}{'tokens/s':>10}")  # arena: both sides' tokens
    cases = {"plain model.generate": plain, "tunelab stream_reply (first text shown)": ours,
             "plain generate, 2 adapters, 1 batch": plain_pair,
             "tunelab arena, A+B: 2 adapters, 1 batch": arena}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
    for run in cases.values():
        run()  # warm-up
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits all alike
        for label, run in cases.items():
            results[label].append(run())
    medians = {}
    for label, found in results.items():
        ttft = statistics.median(r[0] for r in found)
        rate = statistics.median(r[1] for r in found)
        print(f"{label:44}{ttft * 1000:>10.0f}ms{rate:>10.1f}")
        medians[label] = (ttft, rate)
    return medians


def speed_rows(found: dict[str, tuple[float, float]], tokens: int) -> list[Row]:
    plain = found["plain model.generate"]
    ours = found["tunelab stream_reply (first text shown)"]
    arena = found["tunelab arena, A+B: 2 adapters, 1 batch"]
    pair = found["plain generate, 2 adapters, 1 batch"]
    return [Row(f"chat first token ({tokens} new tokens, greedy)", ours[0] * 1000,
                plain[0] * 1000, "ms"),
            Row("chat tokens/s after the first, vs plain generate", ours[1], plain[1], "tokens/s"),
            Row("arena: two adapters in one batch (both sides' tokens/s) vs plain generate of "
                "the same batch", arena[1], pair[1], "tokens/s")]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(folder: Path, case: str) -> None:
    """In a fresh process: load three adapters one way, print the RSS growth and the bytes."""
    import torch  # noqa: F401 - the imports are not part of the measurement
    import transformers  # noqa: F401
    from peft import PeftModel  # noqa: F401

    from tunelab.engine.serve.chat import Settings, stream_reply
    from tunelab.engine.serve.refs import ModelPool

    found = sources(folder)
    before = _rss()
    held = []
    pool = ModelPool()
    for source in found:
        # shared: one pool, the adapters join one base; separate: a pool (a full load) each
        model, tokenizer = (pool if case == "shared" else ModelPool()).get(source)
        list(stream_reply(model, tokenizer, ASK, Settings(temperature=0, max_new_tokens=2),
                          threading.Event()))
        held.append(model)
    seen, size = set(), 0
    for model in held:
        for p in model.parameters():
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                size += p.numel() * p.element_size()
    print(json.dumps({"rss": _rss() - before, "params": size}))


def memory(folder: Path) -> None:
    def run(case: str) -> dict[str, int]:
        done = subprocess.run([sys.executable, __file__, "--memory-child", case,
                               "--folder", str(folder)], capture_output=True, text=True,
                              check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    shared, separate = run("shared"), run("separate")
    gib = 1024 ** 2
    print("three LoRA adapters (r 16), each loaded and asked one question:")
    print(f"{'':40}{'RSS growth':>12}{'parameters':>12}")
    print(f"{'on one base (ModelPool)':40}{shared['rss'] / gib:>9.0f}MiB"
          f"{shared['params'] / gib:>9.0f}MiB")
    print(f"{'three separate full loads':40}{separate['rss'] / gib:>9.0f}MiB"
          f"{separate['params'] / gib:>9.0f}MiB")
    print(f"shared / separate: RSS {shared['rss'] / separate['rss']:.2f}, "
          f"parameters {shared['params'] / separate['params']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-child", choices=["shared", "separate"])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--quick", action="store_true", help="a small model, no memory part")
    parser.add_argument("--json", type=Path, help="also write the figures as rows here")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.tokens = 256, 4, 48
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.folder, args.memory_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.hidden, args.layers)
        rows = speed_rows(speed(folder, args.tokens, args.repeats), args.tokens)
        if not args.quick:
            print()
            memory(folder)
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
