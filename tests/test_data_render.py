"""Examples rendered as the model sees them: the template, the trained tokens, the EOS check."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import finding, jsonl, pc_rows, prepared

from tunelab.engine.data import render as chat_render
from tunelab.engine.train.model import render, train_tokenizer

CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 plus 3?"},
        {"role": "assistant", "content": "6"}]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [r["prompt"] + "\n" + r["completion"] for r in pc_rows(200)]
    texts += ["What is 2 plus 2? 4 And 3 plus 3? 6 Be brief."] * 5
    return train_tokenizer(texts, 300)


def _trained_text(row, tokenizer, name: str) -> list[str]:
    r = chat_render.render_tokens(row, tokenizer, chat_render.template_text(name, tokenizer))
    pieces, current = [], ""
    for (start, end), mask in zip(r.offsets, r.trained, strict=True):
        if mask:
            current += r.text[start:end]
        elif current:
            pieces.append(current)
            current = ""
    return [*pieces, current] if current else pieces


def test_plain_template_trains_the_answer_and_eos_only(tokenizer) -> None:
    row = {"messages": CHAT[1:3]}
    r = chat_render.render_tokens(row, tokenizer, chat_render.template_text("auto", tokenizer))
    assert r.text == "What is 2 plus 2?\n4</s>"
    assert _trained_text(row, tokenizer, "auto") == ["4</s>"]
    assert chat_render.eos_trained(r, tokenizer) == (True, True)


@pytest.mark.parametrize("name", ["plain", "chatml", "alpaca"])
def test_every_assistant_turn_of_a_conversation_is_trained_and_nothing_else(tokenizer, name) -> None:
    trained = _trained_text({"messages": CHAT}, tokenizer, name)
    assert len(trained) == 2
    assert trained[0].startswith("4") and trained[1].startswith("6")
    assert all("</s>" in t for t in trained)
    assert not any("plus" in t or "brief" in t for t in trained)


def test_an_assistant_turn_with_weight_zero_is_shown_but_not_trained(tokenizer) -> None:
    messages = [dict(m) for m in CHAT]
    messages[2]["weight"] = 0
    trained = _trained_text({"messages": messages}, tokenizer, "plain")
    assert len(trained) == 1 and trained[0].startswith("6")


def test_plain_text_is_trained_whole(tokenizer) -> None:
    r = chat_render.render_tokens({"text": "What is 2 plus 2"}, tokenizer, "")
    assert all(r.trained) and r.input_ids[-1] == tokenizer.eos_token_id


def test_render_gives_the_trainer_ids_and_a_completion_mask(tokenizer) -> None:
    rows = [{"messages": CHAT[1:3], "prompt": "What is 2 plus 2?", "completion": "4"},
            {"prompt": "What is 2 plus 2?", "completion": "4"}]  # a bare row of older caches
    out = render(rows, tokenizer)
    assert out[0] == out[1]
    assert set(out[0]) == {"input_ids", "completion_mask"}
    assert len(out[0]["input_ids"]) == len(out[0]["completion_mask"])
    assert out[0]["completion_mask"][-1] == 1 and out[0]["completion_mask"][0] == 0


def test_a_template_named_in_the_file_reaches_the_trainer(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"\ntemplate = "chatml"', {"d.jsonl": jsonl(pc_rows(120))})
    rows = p.rows("train")
    assert rows[0]["template"] == "chatml" and p.report.template == "chatml"
    tokenizer = train_tokenizer([r["prompt"] for r in rows], 300)
    assert render(rows[:3], tokenizer) == render(rows[:3], tokenizer, "chatml")
    assert render(rows[:3], tokenizer) != render(rows[:3], tokenizer, "plain")


def _tokenizer_folder(tmp_path: Path, template: str) -> Path:
    tok = train_tokenizer([r["prompt"] + "\n" + r["completion"] for r in pc_rows(200)], 300)
    tok.chat_template = template
    folder = tmp_path / "model"
    tok.save_pretrained(folder)
    return folder


def test_the_models_own_chat_template_is_used(tmp_path: Path) -> None:
    folder = _tokenizer_folder(tmp_path, "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                                         "{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}"
                                         "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    (tmp_path / "d.jsonl").write_text(jsonl(pc_rows(120)))
    spec = tmp_path / "m.toml"
    spec.write_text(f'name = "m"\n[model]\nbase = "{folder}"\n[data]\ntrain = "d.jsonl"\n')
    from tunelab.engine.data.prepare import prepare, tokenizer_for
    from tunelab.engine.spec import load_spec

    loaded = load_spec(spec)
    p = prepare(loaded, tmp_path / "cache")
    assert p.report.template == "the model's chat template"
    assert not [f for f in p.report.findings if f.check == "eos"]
    tok = tokenizer_for(loaded, p.rows("train"))
    text = chat_render.render_tokens(p.rows("train")[0], tok, tok.chat_template).text
    assert text.startswith("<user>") and text.endswith("</s>")


def test_a_template_that_drops_eos_is_reported(tmp_path: Path) -> None:
    folder = _tokenizer_folder(tmp_path, "{% for m in messages %}{{ m.role }}: {{ m.content }}\n"
                                         "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    (tmp_path / "d.jsonl").write_text(jsonl(pc_rows(120)))
    spec = tmp_path / "m.toml"
    spec.write_text(f'name = "m"\n[model]\nbase = "{folder}"\n[data]\ntrain = "d.jsonl"\n')
    from tunelab.engine.data.prepare import prepare
    from tunelab.engine.spec import load_spec

    eos = finding(prepare(load_spec(spec), tmp_path / "cache").report, "eos")
    assert "missing" in eos.message and "endless" in eos.message and eos.count == 20


def test_the_trainer_computes_the_loss_on_the_assistant_turns_only(tokenizer, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, LlamaConfig
    from trl import SFTConfig, SFTTrainer

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = AutoModelForCausalLM.from_config(config)
    rows = render([{"messages": CHAT}], tokenizer)
    args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=512,
                     report_to=[], use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    labels = trainer.train_dataset[0]["labels"]
    ids = rows[0]["input_ids"]
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert trained == [i for i, m in zip(ids, rows[0]["completion_mask"], strict=True) if m]
    assert tokenizer.decode(trained).replace(" ", "") == "4</s>6</s>"


def test_rows_the_models_template_refuses_are_dropped_and_reported(tmp_path: Path) -> None:
    folder = _tokenizer_folder(tmp_path, "{% for m in messages %}{% if m.role == 'system' %}"
                                         "{{ raise_exception('no system turns here') }}{% endif %}"
                                         "{{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}"
                                         "{% endif %}{% endfor %}")
    rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]} for r in pc_rows(120)]
    rows[7]["messages"].insert(0, {"role": "system", "content": "Be nice."})
    (tmp_path / "d.jsonl").write_text(jsonl(rows))
    spec = tmp_path / "m.toml"
    spec.write_text(f'name = "m"\n[model]\nbase = "{folder}"\n[data]\ntrain = "d.jsonl"\n')
    from tunelab.engine.data.prepare import prepare
    from tunelab.engine.spec import load_spec

    p = prepare(load_spec(spec), tmp_path / "cache")
    failed = finding(p.report, "template_error")
    assert failed.examples == ["d.jsonl:8"] and "no system turns here" in failed.message
    assert sum(p.report.counts.values()) == 119
