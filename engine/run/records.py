"""The rows a run records of its experiment and of each trial."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tunelab.engine.objectives import succeeded
from tunelab.engine.run.jobs import TrialResult
from tunelab.engine.run.paths import trial_folder
from tunelab.engine.spec import Experiment, LoadedSpec
from tunelab.store import ExperimentRow, TrialRow


def trial_row(exp: Experiment, store: Path, trials: Path, number: int, state: str,
              params: dict[str, Any], started: float, result: TrialResult | None = None,
              finished: float | None = None) -> TrialRow:
    """A trial's row as it stands: running (no result yet) or ended with `result` (now, or at
    `finished` for a row recorded later from the study). `trials`: the study's folder of trial
    folders (paths.trials_folder)."""
    now = finished or time.time()
    kind = params.get("method.kind", exp.method.kind)
    info = result.info if result else {}
    values = info.get("values") or {}
    # judged on the trial's values; a row recorded from the study alone has none: unknown
    success = succeeded(exp.success, values) if state == "complete" and values else None
    extra = {key: info.get(key) for key in (
        "device", "micro_batch", "accumulation", "steps", "tokens", "disk_bytes", "cost")}
    extra.update({"params_total": info.get("params"), "params_trainable": info.get("trainable"),
                  "peak_memory_bytes": info.get("peak_memory"), "success": success})
    return TrialRow(**extra,
        experiment=exp.name, number=number, state=state, method_kind=kind,
        params=json.dumps(params), value=result.value if result else None,
        started_at=started, finished_at=now if result else None,
        duration_s=now - started if result else None,
        fail_reason=result.fail_reason if result else None,
        error=result.error if result else None,
        # relative to the store's folder: readers resolve it there (store.read), so the store
        # finds its trials from any working folder
        artifact_dir=os.path.relpath(trial_folder(trials, number), Path(store).absolute().parent),
        updated_at=now)


def experiment_row(spec: LoadedSpec) -> ExperimentRow:
    exp = spec.experiment
    now = time.time()
    return ExperimentRow(
        name=exp.name, description=exp.description,
        spec_path=str(spec.path), spec_hash=spec.spec_hash(),
        spec=json.dumps(exp.model_dump(mode="json")),
        objective=exp.search.objective, direction=exp.search.direction,
        created_at=now, updated_at=now)
