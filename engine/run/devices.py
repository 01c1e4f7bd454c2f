"""Which devices a sweep's workers use: one worker per group of `gpus_per_trial` GPUs, found
without importing torch; one worker (or `--workers`) on a CPU machine."""

from __future__ import annotations

import os
from pathlib import Path

from tunelab.engine.errors import SpecError
from tunelab.engine.spec import Experiment


def visible_devices() -> list[str]:
    """The GPUs this machine shows, without importing torch: CUDA_VISIBLE_DEVICES if set, else
    the NVIDIA driver's list. Empty on a CPU machine."""
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        return [d for d in pinned.split(",") if d.strip() and d.strip() != "-1"]
    folder = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(folder.iterdir())))] if folder.is_dir() else []


def worker_slots(exp: Experiment, workers: int | None) -> list[str | None]:
    """One entry per worker: the CUDA_VISIBLE_DEVICES it is pinned to (None on a CPU machine).
    By default one worker per group of `gpus_per_trial` devices; `workers` overrides."""
    res = exp.resources
    devices = [str(d) for d in res.devices] if isinstance(res.devices, list) else visible_devices()
    per = res.gpus_per_trial
    groups = [",".join(devices[i:i + per]) for i in range(0, len(devices) - per + 1, per)]
    if devices and not groups:
        raise SpecError(f"resources.gpus_per_trial is {per} but only {len(devices)} device(s) "
                        f"are available ({','.join(devices)})", "not enough devices")
    count = workers or exp.search.workers or max(1, len(groups))
    if not groups:
        return [None] * count
    return [groups[i % len(groups)] for i in range(count)]
