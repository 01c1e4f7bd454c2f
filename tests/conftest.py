from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Nothing may come from a model hub in tests: models are built from a config.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SHARED_DATA = ROOT.parent / "shared" / "data"


def tunelab_command() -> list[str]:
    """The installed console script, run with this interpreter."""
    return [sys.executable, "-m", "tunelab.tui.cli"]


def write_small_experiment(folder: Path, body: str, rows: int = 400, name: str = "tiny") -> Path:
    """A small, fast variant of the quickstart in `folder` (its file, returned, and its data):
    a tiny scratch model on arithmetic rows; `body` is the rest of the file ([method] on)."""
    source = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:rows]
    data = folder / "data.jsonl"
    data.write_text("\n".join(source) + "\n")
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n'
        "[model]\n"
        "scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 256 }\n"
        f'[data]\ntrain = "{data.name}"\n' + body
    )
    return path


@pytest.fixture
def small_experiment(tmp_path: Path):
    """Writes a small, fast variant of the quickstart into tmp_path and returns a maker."""

    def make(body: str, rows: int = 400, name: str = "tiny") -> Path:
        return write_small_experiment(tmp_path, body, rows, name)

    return make


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Quiet:
    """A runner reporter that keeps nothing (the tests read the store)."""

    def event(self, name: str, **data: object) -> None:
        pass


def train_tiny(folder: Path, name: str, method: str) -> Path:
    """One trial of a tiny scratch model on 240 arithmetic rows, one epoch, in folder's store
    (returned); `method` is the [method] section's body, e.g. 'kind = "full"'."""
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    source = EXPERIMENTS / "data" / "arithmetic.jsonl"
    (folder / "data.jsonl").write_text("\n".join(source.read_text().splitlines()[:240]) + "\n")
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\n[model]\nscratch = {{ hidden_size = 64, layers = 2, heads = 4, '
        'vocab_size = 256 }\n[data]\ntrain = "data.jsonl"\n'
        f'[method]\n{method}\n[train]\nepochs = 1\nbatch_size = 16\nlearning_rate = 3e-3\n'
        '[search]\ntrials = 1\n[eval]\nsamples = 0\n')
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / f"{name}.toml"), store, Quiet()).run()
    return store


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one trained tiny model ('tiny', trial 0) and its baseline."""
    return train_tiny(tmp_path_factory.mktemp("trained"), "tiny", 'kind = "full"')
