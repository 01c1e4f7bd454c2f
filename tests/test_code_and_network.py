"""Code and network (#17): remote code runs only when the file turns it on, and then the run
says so first; weights load only from safetensors; nothing a sweep starts listens on a port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.errors import TrainError
from tunelab.engine.spec import load_spec

from conftest import tunelab, tunelab_command

SWEEP = """
[method]
kind = "lora"
[train]
epochs = 2
batch_size = 16
logging_steps = 2
[eval]
samples = 0
[search]
trials = 1
"""


def test_remote_code_is_off_unless_the_file_turns_it_on(small_experiment) -> None:
    experiment = small_experiment(SWEEP)
    assert load_spec(experiment).experiment.base_model.trust_remote_code is False
    experiment.write_text(experiment.read_text().replace("[model]\n",
                                                         "[model]\ntrust_remote_code = true\n"))
    assert load_spec(experiment).experiment.base_model.trust_remote_code is True


def _pickled(folder: Path) -> Path:
    """A model folder with its weights only as a pickle (pytorch_model.bin)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunelab.engine.train.model import train_tokenizer

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    config.save_pretrained(folder)  # transformers no longer writes .bin files itself
    torch.save(LlamaForCausalLM(config).state_dict(), folder / "pytorch_model.bin")
    texts = [f"{a} + {b} = {a + b}" for a in range(20) for b in range(5)]
    train_tokenizer(texts, 60).save_pretrained(folder)
    return folder


def test_weights_load_only_from_safetensors(tmp_path: Path, small_experiment) -> None:
    """A folder with only a pickled pytorch_model.bin is refused (a pickle can run code), in
    words that say how to convert it (it was a raw OSError: no file named model.safetensors)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunelab.engine.train.model import load_model

    pickled = _pickled(tmp_path / "pickled")
    exp = load_spec(small_experiment(SWEEP)).experiment
    with pytest.raises(TrainError) as refused:
        load_model(str(pickled), exp)
    assert refused.value.title == "pickled weights"
    assert "pytorch_model.bin" in refused.value.message and "save_pretrained" in refused.value.message
    config = LlamaConfig.from_pretrained(pickled)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "safe")
    assert load_model(str(tmp_path / "safe"), exp) is not None


def test_custom_model_code_names_tunelabs_key(tmp_path: Path, small_experiment) -> None:
    """transformers' hint names its own argument (trust_remote_code=True), not the file's key."""
    from tunelab.engine.train.model import load_model

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(
        '{"model_type": "mytiny", "auto_map": {"AutoConfig": "configuration_mytiny.MyConfig", '
        '"AutoModelForCausalLM": "modeling_mytiny.MyModel"}}')
    (folder / "configuration_mytiny.py").write_text("raise SystemExit('this code must not run')\n")
    exp = load_spec(small_experiment(SWEEP)).experiment
    with pytest.raises(TrainError) as refused:
        load_model(str(folder), exp)
    assert refused.value.title == "custom model code"
    assert "trust_remote_code = true" in refused.value.message and "[model]" in refused.value.message


@pytest.mark.slow
def test_a_failed_baseline_stops_the_run_before_any_trial(tmp_path: Path, small_experiment) -> None:
    """The trials started anyway, each failing as the baseline had."""
    experiment = small_experiment(SWEEP, rows=120)
    pickled = _pickled(tmp_path / "pickled")
    text = experiment.read_text().replace(
        "scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 256 }",
        f'base = "{pickled}"')
    experiment.write_text(text.replace("[data]", "[data]\nmin_examples = 10"))
    store = tmp_path / "tunelab.duckdb"
    done = tunelab("run", str(experiment), "--store", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "baseline failed\nthe baseline evaluation failed, and every trial would: pickled " \
           "weights" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "trial 0" not in done.stdout
    assert st.list_trials(store, "tiny") == []


def _tree(root: int) -> set[int]:
    """root and every process below it, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _sockets(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue  # the process ended meanwhile
    return inodes


def _listening(inodes: set[str]) -> list[str]:
    """Internet sockets of these inodes that listen (TCP) or are bound (UDP)."""
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            listening = fields[3] == "0A" if table.startswith("tcp") else True
            if fields[9] in inodes and listening:
                found.append(f"{table} {fields[1]}")
    return found


@pytest.mark.slow
def test_remote_code_is_said_first_and_nothing_a_sweep_starts_listens(
        tmp_path: Path, small_experiment) -> None:
    experiment = small_experiment(SWEEP, rows=200)
    experiment.write_text(experiment.read_text().replace("[model]\n",
                                                         "[model]\ntrust_remote_code = true\n"))
    store = tmp_path / "tunelab.duckdb"
    run = subprocess.Popen([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None
    lines, checked, seen = [], 0, []
    for line in run.stdout:
        lines.append(line)
        if line.startswith("trial 0"):  # the runner, the fork server and a training trial
            tree = _tree(run.pid)
            seen.append(len(tree))
            assert _listening(_sockets(tree)) == [], line
            checked += 1
    out = "".join(lines)
    err = run.stderr.read() if run.stderr else ""
    assert run.wait(timeout=600) == 0, err
    assert checked >= 2 and max(seen) >= 3, (checked, seen, out)
    assert "model.trust_remote_code = true" in lines[0], out
    (trial,) = st.list_trials(store, "tiny")
    assert trial.state == "complete"
