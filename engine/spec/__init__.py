"""The experiment file: parsed with tomllib, validated once by strict pydantic models, then frozen.
May import: tunelab.engine.errors, tunelab.engine.objectives, tunelab.engine.format,
tunelab.store (a dpo stage's parent is looked up there).

Every mistake is reported with the file, the line, the dotted key, what was found and what is
expected; misspelled keys get the closest valid key. All mistakes of a file are collected in
one pass. The modules: `sections` (one model per table; `search` holds [search], `strict` their
base), `experiment` (the whole file, a loaded file), `load` (reading and error text), `lines`
(where a key is), `overrides` (`--set` and dotted keys), `schema` (questions by dotted key),
`parent` (a dpo stage's parent trial), `explain` (`tunelab check`'s view), `conditions` (which
searched keys a trial samples), `space` (every value a trial can take, checked as the run will
use it), `trial` (a queued configuration, the configuration a re-run runs).
"""

from __future__ import annotations

from tunelab.engine.objectives import (
    EXTRA_OBJECTIVES,
    LOSS_METRICS,
    PREFERENCE_METRICS,
    PREFERENCE_STAGES,
)
from tunelab.engine.spec.experiment import Experiment, LoadedSpec, with_overrides
from tunelab.engine.spec.load import load_spec
from tunelab.engine.spec.overrides import parse_override, set_path
from tunelab.engine.spec.parent import resolve_parent
from tunelab.engine.spec.schema import field_is_int, path_exists
from tunelab.engine.spec.sections import (
    ADAPTER_KINDS,
    DEFAULT_LEARNING_RATE,
    DPO_LEARNING_RATE,
    DPO_LOSSES,
    GENERATION_METRICS,
    METHOD_KEYS_OF_KIND,
    MULTI_OBJECTIVE_SAMPLERS,
    PARENT,
    REWARD_LEARNING_RATE,
    SAMPLERS,
    ChoiceSpec,
    ColumnsSpec,
    DataSpec,
    EvalSpec,
    MethodSpec,
    MixSpec,
    ModelSpec,
    PrunerSpec,
    RangeSpec,
    ResourcesSpec,
    RulesSpec,
    ScratchModel,
    SearchSpec,
    SplitSpec,
    TrainSpec,
)

__all__ = [
    "ADAPTER_KINDS", "DEFAULT_LEARNING_RATE", "DPO_LEARNING_RATE", "DPO_LOSSES",
    "EXTRA_OBJECTIVES", "GENERATION_METRICS", "LOSS_METRICS", "METHOD_KEYS_OF_KIND",
    "MULTI_OBJECTIVE_SAMPLERS", "PARENT", "PREFERENCE_METRICS", "PREFERENCE_STAGES",
    "REWARD_LEARNING_RATE", "SAMPLERS", "ChoiceSpec", "ColumnsSpec",
    "DataSpec", "EvalSpec", "Experiment", "LoadedSpec", "MethodSpec", "MixSpec", "ModelSpec",
    "PrunerSpec", "RangeSpec", "ResourcesSpec", "RulesSpec", "ScratchModel", "SearchSpec",
    "SplitSpec", "TrainSpec", "field_is_int", "load_spec", "parse_override", "path_exists",
    "resolve_parent", "set_path", "with_overrides",
]
