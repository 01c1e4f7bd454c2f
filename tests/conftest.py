from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

# Nothing may come from a model hub in tests: models are built from a config.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SHARED_DATA = ROOT.parent / "shared" / "data"


def tunelab_command() -> list[str]:
    """The installed console script, run with this interpreter: for the tests where the process
    itself is under test (signals, Ctrl-C, kill -9, a terminal, what a fresh process imports).
    Any other test runs the command in this process (`tunelab`, below)."""
    return [sys.executable, "-m", "tunelab.tui.cli"]


@dataclass(frozen=True)
class Ran:
    """What `tunelab …` did, named as subprocess.CompletedProcess names it: its exit status and
    what it wrote to stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def tunelab(*args: str, input: str | None = None, cwd: Path | None = None,
            env: dict[str, str | None] | None = None) -> Ran:
    """`tunelab ARGS` in this process, through typer's CliRunner: the real command, its words
    and exit status (a user's mistake is said by the `tunelab` group itself), without a fresh
    interpreter and its imports. `cwd` is the folder it runs in; `env` changes the environment
    while it runs (None removes a variable). An exception that escapes the command is written
    to stderr as the interpreter writes it, so a test that reads stderr for a traceback still
    finds one. What a command sets up for its process (the `tunelab` logger's handlers, warning
    filters) is put back after it, so the next test starts as it would have."""
    import logging
    import warnings

    from typer.testing import CliRunner

    from tunelab.engine.run import quiet
    from tunelab.tui.cli import app

    logger = logging.getLogger("tunelab")
    handlers = list(logger.handlers)
    with warnings.catch_warnings(), contextlib.chdir(cwd or Path.cwd()):
        quiet.install()  # as main() sets up the command's process
        result = CliRunner().invoke(app, list(args), input=input, env=env)
    logger.handlers = handlers
    # the bytes as written: click's Result.stdout would turn "\r\n" into "\n"
    stdout, stderr = (out.decode("utf-8", "replace")
                      for out in (result.stdout_bytes, result.stderr_bytes))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, stdout, stderr)


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


TRAINED_FIXTURES = {"trained_store", "documented_store"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads a store trained for the session is `slow` as one that trains itself:
    `pytest -m "not slow"` trains nothing (CONTRIBUTING.md, the fast loop). A module that
    trains says so itself (`pytestmark = pytest.mark.slow`)."""
    for item in items:
        if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def sweep_toml(method: str = "full", *, epochs: int = 1, trials: int = 1, batch_size: int = 16,
               train: str = "", search: str = "", eval: str = "", space: str = "",
               baseline: bool = False, samples: int = 0) -> str:
    """The body of a small sweep's file ([method] on, for `small_experiment`) with cheap
    defaults: one epoch, one trial, a random sampler without a pruner, and neither the baseline
    nor the 20 generated samples a run makes by default (ask for them where a test reads them).
    `train`, `search` and `eval` are more lines for that section; `space` the searched keys."""
    return (f'[method]\nkind = "{method}"\n'
            f"[train]\nepochs = {epochs}\nbatch_size = {batch_size}\nlearning_rate = 3e-3\n{train}\n"
            f'[search]\ntrials = {trials}\nsampler = "random"\npruner = "none"\n{search}\n'
            f"[eval]\nbaseline = {str(baseline).lower()}\nsamples = {samples}\n{eval}\n"
            + (f"[search.space]\n{space}\n" if space else ""))



@contextlib.contextmanager
def mounted_tmpfs(tmp_path: Path, size: str):  # noqa: ANN201
    """A real tmpfs of `size` (e.g. "3m") at tmp_path/disk for the block, to be filled by a
    test; the test is skipped where mounting is not allowed (it needs root)."""
    import subprocess

    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)

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

    def event(self, event: object) -> None:
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


DOCUMENTED_SWEEP = """
name = "quickstart"
[model]
scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 256 }
[data]
train = "data.jsonl"
[train]
epochs = 2
batch_size = 16
logging_steps = 5
[search]
trials = 3
sampler = "random"
seed = 1
pruner = "none"
[search.space]
"train.learning_rate" = [5e-3, 3e-3]
"method.kind" = ["full", "lora"]
[eval]
samples = 6
max_new_tokens = 8
watch = 1
example_losses = true
metrics = ["perplexity", "exact_match"]  # and so a few-shot baseline (base+3shot)
[eval.forgetting]
max_texts = 8
"""


@pytest.fixture(scope="session")
def documented_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store as the docs' example queries assume one (read it, don't change it): a real
    three-trial sweep named `quickstart` (full and LoRA, watched prompts, example losses), a
    blind review of the base against the best trial with votes from two raters, and its ratings
    fitted by `tunelab review stats`; the few-shot baseline and forgetting measured."""
    from typer.testing import CliRunner

    from tunelab import store as st
    from tunelab.engine.review import reviews
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec
    from tunelab.tui.cli import app

    folder = tmp_path_factory.mktemp("documented")
    rows = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:400]
    (folder / "data.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "quickstart.toml").write_text(DOCUMENTED_SWEEP)
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / "quickstart.toml"), store, Quiet()).run()

    prompts = reviews.prompts_for(store, "quickstart", "test", 6)
    review = reviews.create(store, "quickstart", "first look", ["base", "best"], prompts, "test",
                            max_new_tokens=8)
    items = st.review_items(store, review.id)
    # the trained trial wins most votes, the base one, and one is a tie; sides are random per
    # item, so each verdict names the side its model was shown on
    verdicts = {"ana": ["trained", "trained", "base", "trained"], "bo": ["trained", "tie"]}
    with st.Spool(store) as spool:
        for rater, winners in verdicts.items():
            for item, winner in zip(items, winners, strict=False):
                base_side = "a" if item.model_a == "base" else "b"
                choice = {"tie": "tie", "base": base_side}.get(
                    winner, "b" if base_side == "a" else "a")
                spool.write([st.vote_row(review.id, item.item, rater, choice, 2.5)])
    fitted = CliRunner().invoke(app, ["review", "stats", "first look", "--store", str(store)])
    assert fitted.exit_code == 0, fitted.exception
    return store
