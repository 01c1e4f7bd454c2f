"""What a trial leaves beside its result so that it can be re-run exactly and costed: the
resolved experiment and the versions it ran with (manifest.json), its peak memory and the disk
its result takes."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import time
from pathlib import Path

from tunelab.engine.run.jobs import TrialJob
from tunelab.engine.spec import Experiment

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "optuna", "bitsandbytes", "tunelab")


def write_manifest(job: TrialJob, exp: Experiment, out: Path, device: str) -> None:
    """The resolved experiment and what it ran with, so the trial can be re-run exactly."""
    import importlib.metadata as meta

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = meta.version(package)
        except meta.PackageNotFoundError:
            continue
    spec_path = job.spec_path
    manifest = {
        "experiment": exp.name, "trial": job.number, "seed": exp.train.seed, "base": job.base,
        "data_fingerprint": Path(job.data["train"]).parent.name, "data": job.data,
        # a dpo stage: the trial it started from (its adapter, when it goes on training one)
        "parent": {"trial": exp.method.from_, "adapter": job.parent} if exp.method.from_ else None,
        "device": device, "python": platform.python_version(), "packages": versions,
        "git_commit": _git_commit(Path(spec_path).parent) if spec_path else None,
        "created": time.time(),
    }
    (out / "experiment.json").write_text(json.dumps(exp.model_dump(mode="json"), indent=1))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def peak_memory(device: str) -> int:
    """The most memory this process held: the GPU's allocations, or the process's resident set."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
