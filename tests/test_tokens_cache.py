"""The rendered rows kept for a sweep's trials (engine/train/tokens.py): what is read back is what
rendering gives, anything that changes the ids changes the key, and a damaged copy is rendered
again; a real sweep's second trial reads the first one's copy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_data_prompt_tokens import _build, _conversations

from tunelab.engine.train import model as models
from tunelab.engine.train import tokens

from conftest import tunelab_command


def _columns(dataset: object) -> list[dict]:
    return [{"input_ids": r["input_ids"], "completion_mask": r["completion_mask"]}
            for r in dataset]  # type: ignore[attr-defined]


def test_kept_rows_read_back_as_rendered(tmp_path: Path) -> None:
    tokenizer = _build("chatml")
    rows = _conversations(60, seed=5)
    expected = models.render(rows, tokenizer)
    first = tokens.rendered(rows, tokenizer, tmp_path)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("tokens-")]
    assert len(kept) == 1 and (kept[0] / "dataset_info.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half copy left
    again = tokens.rendered(rows, tokenizer, tmp_path)
    assert _columns(first) == _columns(again) == expected
    # read back from the kept files, not rendered again
    assert again.cache_files and Path(again.cache_files[0]["filename"]).parent == kept[0]


def test_what_changes_the_ids_changes_the_key() -> None:
    rows = _conversations(20, seed=6)
    chatml, scratch = _build("chatml"), _build("scratch")
    edited = json.loads(json.dumps(rows))
    edited[7]["messages"][-1]["content"] += " more"
    assert tokens.key(rows, chatml) == tokens.key(json.loads(json.dumps(rows)), chatml)
    assert tokens.key(edited, chatml) != tokens.key(rows, chatml)
    assert tokens.key(rows, scratch) != tokens.key(rows, chatml)
    templated = _build("chatml")
    templated.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert tokens.key(rows, templated) != tokens.key(rows, chatml)


def test_a_damaged_copy_is_rendered_again(tmp_path: Path) -> None:
    tokenizer = _build("chatml")
    rows = _conversations(30, seed=7)
    tokens.rendered(rows, tokenizer, tmp_path)
    kept = next(p for p in tmp_path.iterdir() if p.name.startswith("tokens-"))
    for arrow in kept.glob("*.arrow"):
        arrow.write_bytes(b"not arrow")  # a disk that filled up while it was written
    again = tokens.rendered(rows, tokenizer, tmp_path)
    assert _columns(again) == models.render(rows, tokenizer)
    assert tokens.rendered(rows, tokenizer, tmp_path).num_rows == len(rows)


@pytest.mark.slow
def test_a_sweeps_trials_render_the_rows_once(small_experiment) -> None:  # noqa: ANN001
    path = small_experiment("[search]\ntrials = 2\npruner = \"none\"\n[train]\nepochs = 1\n", rows=160)
    store = path.parent / "s.duckdb"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*tunelab_command(), "run", str(path), "--store", str(store)],
                          capture_output=True, text=True, env=env, cwd=path.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    data = next(path.parent.glob("s-runs/*/data/*/train.jsonl")).parent
    kept = sorted(p.name for p in data.iterdir() if p.name.startswith("tokens-"))
    # the training, validation and test rows (the test loss after training), for both trials
    assert len(kept) == 3
