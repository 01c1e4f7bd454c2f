"""Makes a large OpenAI-chat JSONL file and a local ChatML model folder (tokenizer only) for the
data preparation benches, the way a person brings a hub model and their own conversations.

    python bench/make_chat_data.py --rows 100000 --out /tmp/chat100k

writes OUT/chat.jsonl (rows of {"messages": [system?, user, assistant, …]} with 2 % exact and
2 % near duplicates), OUT/model/ (a byte-level BPE tokenizer with a ChatML chat template, saved
with save_pretrained) and OUT/experiment.toml, so that `tunelab data OUT/experiment.toml` runs
the whole preparation on it. With --weights the model folder also gets a tiny Llama (random
weights, two layers) saved with save_pretrained, so that `tunelab run` can train it as a local
`model.base`:

    python bench/make_chat_data.py --rows 2000 --out /tmp/chat2k --weights
    tunelab run /tmp/chat2k/experiment.toml
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "ba", "do")
         for b in ("rin", "tal", "mos", "ven", "dak", "lum", "pix", "sor", "gat", "hel", "jun", "wex",
                   "bri", "cal", "fen", "gor", "hax", "ilk", "jor", "kep")] + \
        "the a of to and in is it you that for on with as I can do not be this have".split()
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def conversation(rng: random.Random, i: int) -> dict:
    messages = []
    if i % 4 == 0:
        messages.append({"role": "system", "content": "You are a helpful support agent."})
    messages.append({"role": "user", "content": _words(rng, 8, 40) + "?"})
    messages.append({"role": "assistant", "content": _words(rng, 10, 80) + "."})
    if i % 5 == 0:
        messages.append({"role": "user", "content": _words(rng, 4, 20) + "?"})
        messages.append({"role": "assistant", "content": _words(rng, 5, 40) + "."})
    return {"messages": messages}


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """n rows; every 50th is an exact copy of an earlier row and every 50th (offset 25) a near
    copy (one word of an answer changed)."""
    rng = random.Random(seed)
    kept: list[dict] = []  # a window of earlier rows to copy from (memory stays flat at 1M rows)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            if i % 50 == 0 and kept:
                row = rng.choice(kept)
            elif i % 50 == 25 and kept:
                row = json.loads(json.dumps(rng.choice(kept)))
                words = row["messages"][-1]["content"].split()
                words[rng.randrange(len(words))] = "changed"
                row["messages"][-1]["content"] = " ".join(words)
            else:
                row = conversation(rng, i)
                if len(kept) < 5000:
                    kept.append(row)
                else:
                    kept[rng.randrange(5000)] = row
            f.write(json.dumps(row) + "\n")


def write_model(folder: Path, seed: int = 0) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    texts = [_words(rng, 20, 60) for _ in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(folder)


def write_weights(folder: Path) -> None:
    """A tiny Llama for the tokenizer in folder (random weights): enough to run trials on a CPU."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/chat100k"))
    parser.add_argument("--weights", action="store_true",
                        help="also a tiny Llama in the model folder, and a two-trial search in the file")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_rows(args.out / "chat.jsonl", args.rows)
    write_model(args.out / "model")
    text = (f'# tunelab data {args.out / "experiment.toml"}\n'
            f'name = "chat-bench"\n[model]\nbase = "{args.out / "model"}"\n'
            '[data]\ntrain = "chat.jsonl"\ndedupe = "near"\n')
    if args.weights:
        write_weights(args.out / "model")
        text = (f'# tunelab run {args.out / "experiment.toml"}\n' + text.split("\n", 1)[1] +
                '[method]\nkind = "full"\n[train]\nepochs = 1\nbatch_size = 16\nmax_length = 256\n'
                '[eval]\nmax_examples = 8\nmax_new_tokens = 16\n'
                '[search]\ntrials = 2\n[search.space]\n'
                '"train.learning_rate" = { low = 1e-4, high = 1e-3, log = true }\n')
    (args.out / "experiment.toml").write_text(text, encoding="utf-8")
    print(args.out / "experiment.toml")


if __name__ == "__main__":
    main()
