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


# bitsandbytes' CPU kernels repack a 4-bit layer's weight in blocks of 64 inputs: a layer of a
# scratch model narrower than that fails at its first evaluation (shape '[32, 0]' is invalid)
CPU_4BIT_BLOCK = 64


def fits_this_machine(exp: Experiment) -> None:
    """What would fail on this machine whatever the data, said before anything runs (by the
    runner and by `tunelab check` alike): more devices per trial than it has, and QLoRA on a CPU
    with a scratch model whose layers are narrower than bitsandbytes' CPU blocks."""
    from tunelab.engine.spec.conditions import choices
    from tunelab.engine.spec.space import candidates

    worker_slots(exp, None)
    scratch = exp.model.scratch if exp.model is not None else None
    kind = exp.search.space.get("method.kind")
    kinds = set(choices(kind) or []) if kind is not None else {exp.method.kind}
    if scratch is None or "qlora" not in kinds or visible_devices():
        return
    for key in ("hidden_size", "intermediate_size"):
        dotted = f"model.scratch.{key}"
        searched = exp.search.space.get(dotted)
        fixed = getattr(scratch, key) or 2 * scratch.hidden_size  # intermediate: 2 x hidden
        values = candidates(dotted, searched) if searched is not None else [fixed]
        narrow = [v for v in values if int(v) % CPU_4BIT_BLOCK]
        if narrow:
            raise SpecError(f"{dotted} {narrow[0]} is not a multiple of {CPU_4BIT_BLOCK}: QLoRA on a "
                            "CPU (bitsandbytes' 4-bit kernels) needs every layer's width to be one. "
                            f"Use a multiple of {CPU_4BIT_BLOCK} here, or lora", "not on this machine")
