"""The reference's log-probabilities of each pair set, measured once per sweep.

Every trial of a preference stage starts from the same parent and compares the same pairs, so
the parent's summed log-probability of each chosen and each rejected answer is the same number
in every trial: the baseline measures it first and keeps it beside the prepared pairs, and each
trial reads it back. A trial hands it to TRL as precomputed reference log-probabilities, so the
trainer does not run the reference model again at every step (plain DPOTrainer does), and
measures its reward margins against it after training.

The key is a hash of the pairs' token ids, the parent's weights (each file's name, size and
modification time), the device and dtype and the batch they are measured in: a change to any of
them measures again, and nothing stale is read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from tunelab.engine.run.jobs import TrialJob
from tunelab.engine.spec import Experiment
from tunelab.engine.train import model as models
from tunelab.engine.train.pairs import sequence_logps

VERSION = 2  # of how the log-probabilities are measured (pairs.sequence_logps)
BATCH = 8  # pairs a forward pass: one batch size for the baseline and every trial, so one number

Logps = tuple[list[float], list[float]]  # (chosen, rejected), pair by pair


def _weights(folder: str | None) -> list[tuple[str, int, int]]:
    if folder is None or not Path(folder).is_dir():
        return [(str(folder), 0, 0)]  # a hub id: its revision does not change under a sweep
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).iterdir()
                  if p.is_file())


def _key(job: TrialJob, exp: Experiment, pairs: dict[str, list[dict[str, list[int]]]]) -> str:
    device, dtype = models.device_and_dtype(exp)
    h = hashlib.sha256(orjson.dumps([VERSION, BATCH, device, str(dtype), job.base, job.parent,
                                     _weights(job.base), _weights(job.parent)]))
    for name in sorted(pairs):
        h.update(name.encode())
        h.update(orjson.dumps(pairs[name]))
    return h.hexdigest()[:20]


def reference_logps(job: TrialJob, exp: Experiment, model: Any, pairs: dict[str, list[dict]],
                    pad_id: int) -> dict[str, Logps]:
    """The parent's log-probabilities of every pair set (`model` is the parent, untrained): read
    from the sweep's cache beside the prepared pairs, or measured and kept there."""
    path = Path(job.data["train"]).parent / f"reference-{_key(job, exp, pairs)}.json"
    if path.exists():
        try:
            found = orjson.loads(path.read_bytes())
            return {name: (chosen, rejected) for name, (chosen, rejected) in found.items()}
        except (OSError, ValueError):  # damaged (a disk that filled up): measured again below
            path.unlink(missing_ok=True)
    measured = {name: sequence_logps(model, found, pad_id, BATCH) for name, found in pairs.items()}
    # written aside and renamed: a trial killed while writing leaves no half file
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(orjson.dumps(measured))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # no room: the next trial measures again
    return measured
