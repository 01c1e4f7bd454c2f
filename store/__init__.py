"""tunelab's store: one DuckDB file, written through spools, read with short connections."""

from __future__ import annotations

from tunelab.store.connection import DEFAULT_STORE, SCHEMA_VERSION, reading, writing
from tunelab.store.errors import StoreError, StoreLocked, TunelabError
from tunelab.store.read import (
    ExperimentRecord,
    QueryResult,
    TrialRecord,
    evaluations,
    experiment_source,
    experiment_spec,
    get_experiment,
    list_experiments,
    list_trials,
    query,
)
from tunelab.store.reviews import (
    ReviewItem,
    ReviewRecord,
    VoteRecord,
    find_review,
    list_reviews,
    review_items,
    review_votes,
    vote_event,
)
from tunelab.store.spool import Spool, flush_orphans, spool_dir

__all__ = [
    "ReviewItem",
    "ReviewRecord",
    "VoteRecord",
    "find_review",
    "list_reviews",
    "review_items",
    "review_votes",
    "vote_event",
    "DEFAULT_STORE",
    "SCHEMA_VERSION",
    "ExperimentRecord",
    "QueryResult",
    "Spool",
    "StoreError",
    "StoreLocked",
    "TrialRecord",
    "TunelabError",
    "evaluations",
    "experiment_source",
    "experiment_spec",
    "flush_orphans",
    "get_experiment",
    "list_experiments",
    "list_trials",
    "query",
    "reading",
    "spool_dir",
    "writing",
]
