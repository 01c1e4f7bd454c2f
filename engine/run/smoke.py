"""A smoke run's data (`tunelab run --smoke`): a few dozen rows of each split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tunelab.engine.data import prepare as data_prep
from tunelab.engine.run.outcomes import P


def smoke_data(prepared: P, folder: Path) -> P:
    """A few dozen rows of each split: enough to run every stage once, in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    limits = {"train": 48, "validation": 16, "test": 16, "heldout": 16}
    files = {}
    for split, path in prepared.files.items():
        rows = data_prep.read_rows(path)[: limits.get(split, 16)]
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return dataclasses.replace(prepared, folder=folder, files=files)
