"""tunelab's engine: the experiment file, data, search, training, evaluation and the runner.

May import: tunelab.store (never textual, never tunelab.tui).

Subpackages, each lower one importing only those above it (each `__init__` states its own
rule, which tests/test_layers.py checks): spec (the experiment file), data (preparing it),
train (a trial process), serve (trained models in use), review (human judgement), run (the
sweep). Light modules any of them may use: errors, objectives (directions, metric keys,
verdicts), format (numbers for people), refs (a model reference: base, best, trial:N).
"""

from __future__ import annotations

from tunelab.engine.errors import DataError, SpecError, TrainError, TunelabError
from tunelab.engine.spec import Experiment, LoadedSpec, load_spec

__all__ = ["DataError", "Experiment", "LoadedSpec", "SpecError", "TrainError", "TunelabError",
           "load_spec"]
