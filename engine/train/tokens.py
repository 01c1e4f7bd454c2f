"""A split's rows as the trainer reads them (token ids and the trained-token mask), rendered once
per sweep and kept beside the prepared data.

Every trial of a sweep renders the same rows with the same tokenizer: at 100,000 conversations
that was 15-25 s of one core before each trial's first step (the chat template and the tokenizer
over every row). The first trial keeps the result as Arrow files (datasets' own format, read back
memory-mapped in milliseconds); the others load it. The key is a hash of the rows, the tokenizer
(its whole definition, special tokens and chat template) and the rendering's version, so a change
to any of them renders again and nothing stale is ever read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tunelab.engine.train import model as models

VERSION = 1  # of the rendering (engine.data.render): a change there changes every key


def key(rows: list[dict[str, Any]], tokenizer: Any) -> str:
    """A hash of what decides the rendered ids: the rows, the tokenizer and the template."""
    h = hashlib.sha256(f"v{VERSION}\n".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else repr(tokenizer).encode())
    h.update(orjson.dumps([str(getattr(tokenizer, "chat_template", None) or ""),
                           {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
                           getattr(tokenizer, "name_or_path", "")]))
    for row in rows:
        h.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()[:20]


def rendered(rows: list[dict[str, Any]], tokenizer: Any, cache: Path | None = None,
             on_render: Callable[[int], None] | None = None) -> Any:
    """models.render of the rows as a datasets.Dataset; with a cache folder, kept there (or read
    from there) under the rows' key. on_render hears the number of rows before they are
    rendered (not when they are read back): at a large data set, the seconds a person waits."""
    import datasets
    from datasets import Dataset

    if cache is None:
        if on_render is not None:
            on_render(len(rows))
        return Dataset.from_list(models.render(rows, tokenizer))
    folder = cache / f"tokens-{key(rows, tokenizer)}"
    if (folder / "dataset_info.json").exists():
        try:
            return Dataset.load_from_disk(str(folder))
        except (OSError, ValueError):  # damaged (a disk that filled up): rendered again below
            shutil.rmtree(folder, ignore_errors=True)
    if on_render is not None:
        on_render(len(rows))
    dataset = Dataset.from_list(models.render(rows, tokenizer))
    datasets.disable_progress_bars()  # "Saving the dataset" bars in every trial's log are noise
    # written aside and renamed: a trial killed while saving leaves no half folder, and when
    # two trials render at once the first rename wins and the second's copy is dropped
    tmp = cache / f".{folder.name}.{os.getpid()}"
    try:
        dataset.save_to_disk(str(tmp))
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # no room, or another trial was first: not needed
    return dataset
