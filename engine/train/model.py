"""Models and tokenizers: a hub model or folder, or a scratch model built from a config.

A scratch model gets a tokenizer trained on the training split and random
weights drawn once with the experiment's seed; both are saved to a folder, so
the baseline and every trial start from exactly the same weights. Heavy
imports stay inside functions: the runner imports this module without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunelab.engine.errors import TrainError
from tunelab.engine.spec import Experiment

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def base_folder(exp: Experiment, fingerprint: str, runs: Path) -> Path | None:
    """Where a scratch base model is kept; None for hub models (they load by id)."""
    if exp.base_model.scratch is None:
        return None
    shape = json.dumps(exp.base_model.scratch.model_dump(), sort_keys=True) + f"|{exp.train.seed}"
    key = hashlib.sha256(shape.encode()).hexdigest()[:10]
    return runs / "base" / f"scratch-{fingerprint}-{key}"


def base_ref(exp: Experiment, fingerprint: str, runs: Path) -> str:
    folder = base_folder(exp, fingerprint, runs)
    if folder is not None:
        return str(folder)
    assert exp.base_model.base is not None
    base = Path(exp.base_model.base).expanduser()
    return str(base) if base.exists() else exp.base_model.base


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-pair tokenizer trained on the texts; digits split one by one (arithmetic stays learnable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK],
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )


PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@contextmanager
def loading(ref: str) -> Iterator[None]:
    """A model's load errors that a person can act on, in tunelab's words: custom model code
    the file has not allowed (transformers' hint names its own argument, not tunelab's key),
    and a folder of pickled weights only (refused on purpose: a pickle can run code)."""
    try:
        yield
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise TrainError(
            f"{ref} comes with its own Python code (a custom model), which tunelab runs only "
            "when the experiment allows it: read that code, then add trust_remote_code = true "
            "to [model] (model.trust_remote_code)", "custom model code") from None
    except OSError:
        folder = Path(ref).expanduser()
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLES) \
            if folder.is_dir() else []
        if not pickled or any(folder.glob("*.safetensors")):
            raise
        raise TrainError(
            f"{ref} holds pickled weights only ({', '.join(pickled)}); tunelab loads safetensors "
            "and never unpickles (a pickle can run code when loaded). Convert them once, where "
            "you trust the file: python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}-st')\" "
            "(copy the tokenizer files too), then set model.base to the new folder",
            "pickled weights") from None


def _shrunk_config(like: str, scratch: Any, trust_remote_code: bool) -> Any:
    """The config of `like` (same architecture family) at the scratch model's small size."""
    from transformers import AutoConfig

    with loading(like):
        config = AutoConfig.from_pretrained(like, trust_remote_code=trust_remote_code)
    heads = scratch.heads
    sizes = {"hidden_size": scratch.hidden_size, "num_hidden_layers": scratch.layers,
             "num_attention_heads": heads, "num_key_value_heads": heads,
             "intermediate_size": scratch.intermediate_size or 2 * scratch.hidden_size,
             "head_dim": scratch.hidden_size // heads, "max_position_embeddings": scratch.max_position}
    for key, value in sizes.items():
        if hasattr(config, key):
            setattr(config, key, value)
    return config


def build_scratch_base(exp: Experiment, train_rows: list[dict[str, str]], folder: Path) -> Path:
    """Builds the tokenizer and draws the random weights, saves both; reuses a finished folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    if (folder / "config.json").exists():
        return folder
    scratch = exp.base_model.scratch
    assert scratch is not None
    if scratch.like:
        with loading(scratch.like):
            tokenizer = AutoTokenizer.from_pretrained(
                scratch.like, trust_remote_code=exp.base_model.trust_remote_code)
        config = _shrunk_config(scratch.like, scratch, exp.base_model.trust_remote_code)
    else:
        texts = [r["prompt"] + "\n" + r["completion"] for r in train_rows]
        tokenizer = train_tokenizer(texts, scratch.vocab_size)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=scratch.hidden_size,
            intermediate_size=scratch.intermediate_size or 2 * scratch.hidden_size,
            num_hidden_layers=scratch.layers,
            num_attention_heads=scratch.heads,
            num_key_value_heads=scratch.heads,
            max_position_embeddings=scratch.max_position,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
    torch.manual_seed(exp.train.seed)
    model = AutoModelForCausalLM.from_config(config)
    # a folder of this process's own: two runs started at once in one folder both build it
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    try:
        tmp.replace(folder)  # whole or absent: a killed run never leaves half a base model
    except OSError:
        if not (folder / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # the other run's, the same seed and data: same
    return folder


def device_and_dtype(exp: Experiment) -> tuple[str, Any]:
    import torch

    if torch.cuda.is_available():
        if exp.base_model.dtype == "auto":
            return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", getattr(torch, exp.base_model.dtype)
    # CPU: fp32 unless the file insists; half precision on CPU is slow and lossy
    return "cpu", torch.float32 if exp.base_model.dtype == "auto" else getattr(torch, exp.base_model.dtype)


def load_tokenizer(ref: str, exp: Experiment) -> Any:
    from transformers import AutoTokenizer

    with loading(ref):
        tokenizer = AutoTokenizer.from_pretrained(
            ref, trust_remote_code=exp.base_model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = exp.base_model.chat_template
    if template:
        path = Path(template).expanduser()
        tokenizer.chat_template = path.read_text() if "{" not in template and path.exists() else template
    return tokenizer


def load_model(ref: str, exp: Experiment) -> Any:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # "Loading weights" bars are noise in a terminal UI and logs

    _, dtype = device_and_dtype(exp)
    with loading(ref):
        return AutoModelForCausalLM.from_pretrained(
            ref, dtype=dtype, trust_remote_code=exp.base_model.trust_remote_code,
            use_safetensors=True,  # never unpickle a .bin: a pickle can run code when loaded
        )


def render(rows: list[dict[str, Any]], tokenizer: Any, template: str | None = None) -> list[dict[str, Any]]:
    """Rows as the trainer reads them: token ids and a mask of the trained tokens (the assistant
    turns, their end-of-turn and end-of-sequence tokens; all of a plain text).

    The text comes from the template named in the rows (data.template) or, by default, the
    model's chat template, else the plain one: the prompt, a newline, the answer and the
    end-of-sequence token. See chat_render; `tunelab data FILE --show N` prints the result."""
    from tunelab.engine.data import render as chat_render

    name = template or (rows[0].get("template", "auto") if rows else "auto")
    text = chat_render.template_text(name, tokenizer)
    rows = [row if "messages" in row or "text" in row  # else a bare prompt/completion row
            else {"messages": [{"role": "user", "content": row["prompt"]},
                               {"role": "assistant", "content": row["completion"]}]} for row in rows]
    out = []
    for rendered in chat_render.render_many(rows, tokenizer, text, strict=True, offsets=False):
        assert isinstance(rendered, chat_render.Rendered)
        out.append({"input_ids": rendered.input_ids, "completion_mask": rendered.trained})
    return out


def count_parameters(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
