"""train.packing: examples packed into one row train exactly as they do alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunelab.engine.spec import load_spec, with_overrides

LENGTHS = [5, 11, 3, 17, 8]


def _model(attention: str):  # noqa: ANN202
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         attn_implementation=attention)
    return LlamaForCausalLM(config).eval()


def _losses(model, batch: dict) -> torch.Tensor:  # noqa: ANN001
    """The loss of each trained token (next-token cross-entropy), in order. Without a cache, as
    SFTTrainer.compute_loss calls the model: the attention then reads the example boundaries
    from the position ids."""
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits
    shifted = labels[..., 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[..., :-1, :].reshape(-1, logits.size(-1)), shifted.reshape(-1), reduction="none")
    return per_token[shifted.reshape(-1) != -100]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_examples_have_the_losses_they_have_alone(attention: str) -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    generator = torch.Generator().manual_seed(1)
    examples = [{"input_ids": torch.randint(4, 64, (n,), generator=generator).tolist()}
                for n in LENGTHS]
    model = _model(attention)
    alone = torch.cat([_losses(model, {"input_ids": torch.tensor([e["input_ids"]]),
                                       "labels": torch.tensor([e["input_ids"]])})
                       for e in examples])
    packed_batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    assert packed_batch["input_ids"].shape == (1, sum(LENGTHS))  # one row, no padding
    packed = _losses(model, dict(packed_batch))
    assert torch.allclose(packed, alone, atol=1e-5), (packed - alone).abs().max()

    # the check can fail: the same row without the example boundaries lets examples attend to
    # the ones before them, and their losses change
    joined = {"input_ids": packed_batch["input_ids"],
              "position_ids": torch.arange(sum(LENGTHS)).unsqueeze(0),
              "labels": packed_batch["labels"]}
    assert not torch.allclose(_losses(model, joined), alone, atol=1e-3)


def test_packing_is_a_train_key_and_searchable(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'
                    "[train]\npacking = true\n"
                    '[search.space]\n"train.packing" = [true, false]\n')
    spec = load_spec(path)
    assert spec.experiment.train.packing is True
    assert with_overrides(spec, {"train.packing": False}).train.packing is False
    assert load_spec(path, ["train.packing=false"]).experiment.train.packing is False


@pytest.mark.slow
def test_a_packed_trial_trains_on_fewer_fuller_rows(tmp_path: Path, small_experiment) -> None:
    from tunelab import store as st
    from tunelab.engine.run.runner import Runner

    from conftest import Quiet

    body = ("[train]\nepochs = 1\nbatch_size = 8\nlearning_rate = 3e-3\nmax_length = 128\n"
            "packing = true\n[search]\ntrials = 1\n[eval]\nsamples = 0\nbaseline = false\n")
    store = tmp_path / "s.duckdb"
    summary = Runner(load_spec(small_experiment(body, rows=240)), store, Quiet()).run()
    result = summary.trials[0].result
    assert result.state == "complete", result.error
    # 20-30 tokens a row: the 192 training rows fill a few dozen rows of 128 tokens (one row a
    # micro-step), so an epoch takes well under half the 24 optimizer steps it takes unpacked
    assert result.info["micro_batch"] == 1
    assert 1 <= result.info["steps"] <= 192 // 8 // 2
    assert any("loss" in key for key in st.evaluations(store, "tiny")["trial:0"])
