"""The data of any preference stage, as `tunelab run` prepares it and `tunelab check` checks it:
pairs (dpo, reward, orpo, simpo: engine.data.preferences) or single answers (kto:
engine.data.kto_examples), and what is measured on the votes before the first trial: a dpo
stage's label smoothing from the raters' consistency (rater_noise). One function each, so the
check refuses exactly what a run would."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunelab.engine.data import kto_examples, preferences
from tunelab.engine.data.preferences import PreferenceData, PreferenceReport
from tunelab.engine.errors import SpecError
from tunelab.engine.review import rater_noise
from tunelab.engine.spec import LoadedSpec

# the file of a prepared stage's measured settings (one JSON row), read by its trials
MEASURED = "stage"


def _measured(spec: LoadedSpec, store: Path, report: PreferenceReport) -> dict[str, Any]:
    """What the trials read besides the rows (the label smoothing), said in the report."""
    if spec.experiment.method.stage != "dpo":
        return {}
    found = rater_noise.smoothing(spec.experiment, store)  # a SpecError says why it cannot
    if found.value or found.consistency is not None:
        report.notes.append(found.words())
    return {"label_smoothing": found.value, "label_smoothing_from": found.words()}


def check(spec: LoadedSpec, store: Path) -> tuple[PreferenceReport, str | None]:
    """The stage's report and why a run would refuse (None: it would run)."""
    report: PreferenceReport
    if spec.experiment.method.stage == "kto":
        _, _, report, refusal = kto_examples.checked_examples(spec, store)
    else:
        _, _, report, refusal = preferences.checked_pairs(spec, store)
    if refusal is None:
        try:
            _measured(spec, store, report)
        except SpecError as error:
            refusal = error.message
    return report, refusal


def prepare(spec: LoadedSpec, store: Path, folder: Path) -> PreferenceData:
    """The stage's rows and measured settings, written for its trials; a SpecError when a run
    must refuse (too few votes, no consistency to measure)."""
    if spec.experiment.method.stage == "kto":
        data = kto_examples.prepare(spec, store, folder)
    else:
        data = preferences.prepare(spec, store, folder)
    measured = _measured(spec, store, data.report)
    if not measured:
        return data
    path = data.folder / f"{MEASURED}.jsonl"
    path.write_text(json.dumps(measured, ensure_ascii=False) + "\n", encoding="utf-8")
    return replace(data, files={**data.files, MEASURED: path})
