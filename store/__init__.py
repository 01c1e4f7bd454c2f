"""tunelab's store: one DuckDB file, written through spools, read with short connections."""

from __future__ import annotations

from tunelab.store.connection import (
    DEFAULT_STORE,
    SCHEMA_VERSION,
    reading,
    reading_many,
    writing,
)
from tunelab.store.errors import StoreError, StoreLocked, TunelabError
from tunelab.store.read import (
    CurveSeries,
    ExperimentRecord,
    ExportedTable,
    QueryResult,
    TrialCurve,
    TrialRecord,
    check_read_only,
    evaluations,
    experiment_source,
    experiment_spec,
    export_store,
    get_experiment,
    list_experiments,
    list_trials,
    query,
    query_to_parquet,
    trial_curve,
)
from tunelab.store.retention import GcPlan, apply_gc, plan_gc
from tunelab.store.spool import Spool, flush_orphans, spool_dir

__all__ = [
    "DEFAULT_STORE",
    "SCHEMA_VERSION",
    "CurveSeries",
    "ExperimentRecord",
    "ExportedTable",
    "GcPlan",
    "QueryResult",
    "Spool",
    "StoreError",
    "StoreLocked",
    "TrialCurve",
    "TrialRecord",
    "TunelabError",
    "apply_gc",
    "check_read_only",
    "evaluations",
    "experiment_source",
    "experiment_spec",
    "export_store",
    "flush_orphans",
    "get_experiment",
    "list_experiments",
    "list_trials",
    "plan_gc",
    "query",
    "query_to_parquet",
    "reading",
    "reading_many",
    "spool_dir",
    "trial_curve",
    "writing",
]
