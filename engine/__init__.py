"""tunelab's engine: the experiment file, data, search, training, evaluation and the runner."""

from __future__ import annotations

from tunelab.engine.errors import DataError, SpecError, TrainError, TunelabError
from tunelab.engine.spec import Experiment, LoadedSpec, load_spec

__all__ = ["DataError", "Experiment", "LoadedSpec", "SpecError", "TrainError", "TunelabError",
           "load_spec"]
