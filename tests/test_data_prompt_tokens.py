"""Exact prompt tokens: for every assistant turn, the tokens before its answer in training are the
tokens the model gets at inference (`generation_prompt`, tokenized as generate and chat do), and
the answer's first token is trained; for four kinds of tokenizer, each saved into a folder and
used as model.base, the way a downloaded model is used."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from data_helpers import WORDS, jsonl

from tunelab.engine.data import render as chat_render
from tunelab.engine.data.prepare import prepare, tokenizer_for
from tunelab.engine.spec import load_spec
from tunelab.engine.train.model import render, train_tokenizer

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{% for m in messages %}{% set content = '<|start_header_id|>' + m.role + '<|end_header_id|>"
          "\\n\\n' + m.content | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
          "{% endif %}")


def _conversations(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """OpenAI-format rows whose answers start right after a newline with words the prompts also
    use, so a tokenizer without a split there learns merges across the prompt/answer boundary."""
    rng = random.Random(seed)

    def words(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    rows = []
    for i in range(n):
        messages = [{"role": "user", "content": f"What can I do with {words(6)} {i}?"},
                    {"role": "assistant", "content": f"I'm sorry, {words(8)}."}]
        if i % 3 == 0:
            messages.insert(0, {"role": "system", "content": " Be brief. "})
        if i % 4 == 1:  # a second exchange, its answer with whitespace a `| trim` template drops
            messages += [{"role": "user", "content": f"And {words(4)}?"},
                         {"role": "assistant", "content": f" I'm {words(5)} \n"}]
        rows.append({"messages": messages})
    return rows


def _training_texts() -> list[str]:
    texts = []
    for row in _conversations(300, seed=1):
        texts.append("\n".join(m["content"] for m in row["messages"]))
    return texts + ["What can I do?\nI'm sorry"] * 200


def _byte_level(specials: list[str], bos: str | None, eos: str, pad: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_training_texts(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    if bos is not None:  # as Llama 3: the tokenizer adds its BOS by itself
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)


def _metaspace() -> Any:
    """A SentencePiece-like tokenizer (Metaspace, its own BOS) without a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    tok.train_from_iterator(_training_texts(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>")


def _build(kind: str) -> Any:
    if kind == "chatml":
        tok = _byte_level(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>",
                          "<|endoftext|>")
        tok.chat_template = CHATML
    elif kind == "llama3":
        tok = _byte_level(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"], "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>")
        tok.chat_template = LLAMA3
    elif kind == "metaspace":
        tok = _metaspace()
    else:
        tok = train_tokenizer(_training_texts(), 300)
    return tok


KINDS = ["chatml", "llama3", "metaspace", "scratch"]


@pytest.fixture(scope="module", params=KINDS)
def prepared_kind(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp(request.param)
    _build(request.param).save_pretrained(tmp / "model")
    (tmp / "d.jsonl").write_text(jsonl(_conversations(160)), encoding="utf-8")
    (tmp / "x.toml").write_text(f'name = "x"\n[model]\nbase = "{tmp / "model"}"\n'
                                '[data]\ntrain = "d.jsonl"\nmin_examples = 10\n', encoding="utf-8")
    spec = load_spec(tmp / "x.toml")
    p = prepare(spec, tmp / "cache")
    return request.param, p, tokenizer_for(spec, p.rows("train"))


def _inference_ids(messages: list[dict[str, Any]], tokenizer: Any, template: str) -> list[int]:
    """The prompt ids of the last assistant turn as generate and chat feed them to the model."""
    found = chat_render.generation_prompt({"messages": messages}, tokenizer, template)
    assert found is not None
    return list(tokenizer(found[0], add_special_tokens=False)["input_ids"])


def test_every_prompt_is_the_inference_prompt_and_every_answer_starts_trained(prepared_kind) -> None:
    kind, p, tokenizer = prepared_kind
    template = chat_render.template_text("auto", tokenizer)
    rows = [r for s in ("train", "validation") for r in p.rows(s)]
    checked = 0
    for row, fed in zip(rows, render(rows, tokenizer), strict=True):
        ids, mask = fed["input_ids"], fed["completion_mask"]
        turns = [i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]
        for turn in turns:
            prompt = _inference_ids(row["messages"][:turn + 1], tokenizer, template)
            if turn != turns[0] and ids[:len(prompt)] != prompt:
                continue  # told in the report (checked below)
            assert ids[:len(prompt)] == prompt, (kind, row["origin"])
            assert mask[len(prompt) - 1] == 0 and mask[len(prompt)] == 1, (kind, row["origin"])
            first = tokenizer.decode([ids[len(prompt)]]).strip()
            assert first and row["messages"][turn]["content"].strip().startswith(first), (kind, first)
            checked += 1
    assert checked >= len(rows)
    # a row whose later prompt could not be made exact is counted and named in the report
    everything = rows + p.rows("test")
    inexact = [r["origin"] for r in everything
               if chat_render.render_tokens(r, tokenizer, template).inexact_prompts]
    told = [f for f in p.report.findings if f.check == "prompt_tokens"]
    if inexact:
        assert told[0].count == len(inexact) and set(told[0].examples) <= set(inexact)
    else:
        assert not told


def test_the_trained_tokens_are_the_answers_and_their_end_markers(prepared_kind) -> None:
    kind, p, tokenizer = prepared_kind
    rows = p.rows("train")[:40]
    for row, fed in zip(rows, render(rows, tokenizer), strict=True):
        trained = tokenizer.decode([i for i, m in zip(fed["input_ids"], fed["completion_mask"],
                                                       strict=True) if m])
        answers = [m["content"].strip() for m in row["messages"] if m["role"] == "assistant"]
        squeezed = trained.replace(" ", "")
        for answer in answers:
            assert answer.replace(" ", "") in squeezed, (kind, answer, trained)
        assert tokenizer.eos_token in trained
        assert "What can I do" not in trained


def test_a_tokenizer_that_merges_across_the_boundary_gets_the_answer_on_its_own(prepared_kind) -> None:
    kind, p, tokenizer = prepared_kind
    if kind in ("chatml", "llama3"):
        # byte-level BPE splits before a word after a newline: nothing to split there
        assert p.report.answers_split == 0
        assert not [f for f in p.report.findings if f.check == "prompt_tokens"]
    else:
        # the plain template puts the answer right after "?\n"; these tokenizers merge "?\nI"
        assert p.report.answers_split > 0


def test_the_old_whole_text_tokenization_lost_the_first_word_here(tmp_path: Path) -> None:
    """The failure this guards against: tokenized whole, "?\\nI" is one token, which starts in
    the prompt, so the character spans left "I" untrained."""
    tokenizer = _build("scratch")
    text = "What can I do?\nI'm sorry</s>"
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert any("\n" in piece and "I" in piece for piece in pieces), pieces
    rendered = chat_render.render_tokens(
        {"messages": [{"role": "user", "content": "What can I do?"},
                      {"role": "assistant", "content": "I'm sorry"}]},
        tokenizer, chat_render.template_text("auto", tokenizer))
    start = rendered.trained.index(1)
    assert tokenizer.decode(rendered.input_ids[start:]).startswith("I'm")
    assert rendered.split_answers == 1 and rendered.inexact_prompts == 0


def test_an_earlier_answer_shown_but_not_trained_is_read_as_part_of_the_prompt() -> None:
    """With weight 0 an earlier answer is context, so nothing is split there: the later prompt is
    exactly the inference prompt even for a tokenizer that merges across the boundary."""
    tokenizer = _build("scratch")
    template = chat_render.template_text("auto", tokenizer)
    messages = [{"role": "user", "content": "What can I do?"},
                {"role": "assistant", "content": "I'm sorry", "weight": 0},
                {"role": "user", "content": "What can I do?"},
                {"role": "assistant", "content": "I'm here"}]
    rendered = chat_render.render_tokens({"messages": messages}, tokenizer, template)
    prompt = _inference_ids(messages, tokenizer, template)
    assert rendered.input_ids[:len(prompt)] == prompt and rendered.inexact_prompts == 0
    assert rendered.trained.index(1) == len(prompt)
    assert tokenizer.decode(rendered.input_ids[len(prompt):]).startswith("I'm here")
