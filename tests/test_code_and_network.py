"""Code and network (#17): remote code runs only when the file turns it on, and then the run
says so first; weights load only from safetensors; nothing a sweep starts listens on a port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.spec import load_spec

from conftest import tunelab_command

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


def test_weights_load_only_from_safetensors(tmp_path: Path, small_experiment) -> None:
    """A folder with only a pickled pytorch_model.bin is refused (a pickle can run code)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunelab.engine.train.model import load_model

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    pickled = tmp_path / "pickled"
    config.save_pretrained(pickled)  # transformers no longer writes .bin files itself
    torch.save(LlamaForCausalLM(config).state_dict(), pickled / "pytorch_model.bin")
    exp = load_spec(small_experiment(SWEEP)).experiment
    with pytest.raises(OSError, match="safetensors"):
        load_model(str(tmp_path / "pickled"), exp)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "safe")
    assert load_model(str(tmp_path / "safe"), exp) is not None


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
