"""Each training method trains for real on a tiny model: the loss goes down, the best
checkpoint is kept and reloads, and the evaluation lands in the store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

from conftest import sweep_toml, tunelab, tunelab_command

pytestmark = pytest.mark.slow  # each method trains


class Collect:
    def __init__(self) -> None:
        self.events: list[object] = []

    def event(self, event: object) -> None:
        self.events.append(event)


BODY = """
[method]
kind = "{kind}"
r = 8
num_virtual_tokens = 8
[train]
epochs = 2
batch_size = 16
learning_rate = {lr}
logging_steps = 2
[search]
trials = 1
[eval]
metrics = ["perplexity", "exact_match", "chrf", "rouge_l", "contains"]
samples = 5
max_examples = 20
max_new_tokens = 12
[success]
exact_match = ">= 0.99"
"""

RATES = {"full": 3e-3, "lora": 1e-2, "qlora": 1e-2, "prefix": 1e-2}


@pytest.mark.parametrize("kind", ["full", "lora", "qlora", "prefix"])
def test_each_method_trains_keeps_its_best_checkpoint_and_is_evaluated(
        kind: str, tmp_path: Path, small_experiment) -> None:
    body = BODY.format(kind=kind, lr=RATES[kind])
    if kind == "full":
        (tmp_path / "general.jsonl").write_text(
            '{"text": "A sentence of general text, held out from training."}\n'
            '{"text": "Another one: the weather was mild and the trains ran on time."}\n')
        body = body.replace("max_new_tokens = 12", 'max_new_tokens = 12\ngeneral = "general.jsonl"')
    path = small_experiment(body, rows=240, name=f"m-{kind}")
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(path), store, Collect()).run()
    name = f"m-{kind}"
    [trial] = st.list_trials(store, name)
    assert trial.state == "complete", trial.error

    losses = st.query(store, f"select value from metrics where experiment = '{name}' and "
                             "split = 'train' and name = 'loss' order by step").rows
    assert len(losses) >= 3 and losses[-1][0] < losses[0][0]

    evaluations = st.evaluations(store, name)
    for ref in ("base", "trial:0"):
        assert {"validation/loss", "test/loss", "test/perplexity", "test/exact_match",
                "test/chrf", "test/rouge_l", "test/contains"} <= evaluations[ref].keys()
    assert evaluations["trial:0"]["test/loss"] < evaluations["base"]["test/loss"]
    samples = st.query(store, f"select count(*) from samples where experiment = '{name}' "
                              "and model_ref = 'trial:0'").rows[0][0]
    assert samples == 5
    row = st.query(store, "select tokens, steps, micro_batch * accumulation, peak_memory_bytes, "
                          f"disk_bytes, device, success from trials where experiment = '{name}'").rows[0]
    assert row[0] > 0 and row[1] > 0 and row[2] == 16 and row[3] > 0 and row[4] > 0
    assert row[5] == "cpu" and row[6] is False  # exact match 0.99 is not reached in 2 epochs

    folder = Path(trial.artifact_dir)
    best = folder / "best"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["packages"]["torch"]
    assert (folder / "experiment.json").exists()
    assert not (folder / "checkpoints").exists()  # only the best is kept

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(best)
    if kind == "full":
        assert (best / "model.safetensors").exists()
        model = AutoModelForCausalLM.from_pretrained(best)
    else:
        from peft import PeftModel

        assert (best / "adapter_model.safetensors").exists()
        assert not (best / "model.safetensors").exists()  # the adapter alone
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(manifest["base"]),
                                          best)
    ids = tokenizer("What is 3 plus 4?\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]

    if kind == "full":  # the forgetting check ran on the held-out general text
        assert evaluations["trial:0"]["general/perplexity"] > 1
        assert evaluations["base"]["general/perplexity"] > 1
    if kind in {"lora", "full"}:
        _check_export(store, name, tmp_path, adapter=kind == "lora")


def _check_export(store: Path, name: str, tmp_path: Path, adapter: bool) -> None:
    from transformers import AutoModelForCausalLM

    shipped = tmp_path / "ship"
    done = tunelab("export", name, "best", "--out", str(shipped), "--store", str(store))
    assert done.returncode == 0, done.stderr
    card = (shipped / "README.md").read_text()
    assert name in card and "data fingerprint" in card and "test/loss" in card
    if adapter:
        from peft import AutoPeftModelForCausalLM

        assert AutoPeftModelForCausalLM.from_pretrained(shipped) is not None
        merged = tmp_path / "merged"
        done = tunelab("export", name, "0", "--out", str(merged), "--merge", "--store", str(store))
        assert done.returncode == 0, done.stderr
        assert not (merged / "adapter_config.json").exists()
        shipped = merged
    model = AutoModelForCausalLM.from_pretrained(shipped)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_out_of_memory_retries_at_half_the_micro_batch_with_the_same_effective_batch(
        tmp_path: Path, small_experiment) -> None:
    path = small_experiment(sweep_toml(train="logging_steps = 2"), rows=160, name="oom")
    store = tmp_path / "tunelab.duckdb"
    # the first two attempts "run out"; in a process of its own, whose trials' fork server
    # starts with the variable (one started earlier in this process would not have it)
    env = {**os.environ, "TUNELAB_FAULT_OOM_ATTEMPTS": "2"}
    done = subprocess.run([*tunelab_command(), "run", str(path), "--store", str(store)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    micro, accumulation, state = st.query(
        store, "select micro_batch, accumulation, state from trials").rows[0]
    assert state == "complete"
    assert (micro, accumulation) == (4, 4)  # 16 → 8 → 4, accumulation 1 → 2 → 4
    assert "out of memory at micro-batch 16; retrying at 8" in done.stdout
    assert "out of memory at micro-batch 8; retrying at 4" in done.stdout


def test_out_of_memory_at_micro_batch_one_fails_the_trial_with_reason_oom(
        tmp_path: Path, small_experiment) -> None:
    path = small_experiment(sweep_toml(batch_size=2, train="logging_steps = 2"), rows=160,
                            name="oom-fail")
    store = tmp_path / "tunelab.duckdb"
    env = {**os.environ, "TUNELAB_FAULT_OOM_ATTEMPTS": "9"}
    done = subprocess.run([*tunelab_command(), "run", str(path), "--store", str(store)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1  # every trial failed: the sweep stops and says why
    assert "oom" in done.stderr
    failed = st.query(store, "select distinct state, fail_reason from trials").rows
    assert failed == [("failed", "oom")]
