"""The rows the store accepts, one frozen dataclass per table: the only place a table or column
of the store is spelled outside SQL.

Other layers build a row (`MetricRow(experiment=…, trial=…, …)`) and hand it to
`Spool.write`; `event()` gives the spool line (`{"table": …, "row": {…}}`). So a renamed or
added column is changed here and in a migration, and mypy finds every caller.

Conventions the spool depends on:
- Times are seconds since the epoch (`time.time()`); ingest makes them TIMESTAMPTZ.
- A JSON column takes text already encoded or any JSON-able value, encoded here.
- A field left at None is left out of the event, so it does not blank a value an earlier
  ingest wrote for the same key (the SQL ingest path already ignores a column that is null in
  every row of a file; now the per-row path does the same). Within one ingested file the newest
  row of a key wins whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar


class Row:
    """Base of the row types: the table name, its key, how ingest treats a key seen again, and
    which columns are JSON. Ingest's rules (store/ingest.py RULES) are read from these."""

    TABLE: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]]  # the table's primary key: an event with a key seen before
    # is the same row. Upserted tables name the column that orders their versions (the newer
    # row wins, whatever order spools are ingested in); the others keep the first row of a key.
    NEWEST_BY: ClassVar[str | None] = None
    KEEP_ON_UPDATE: ClassVar[tuple[str, ...]] = ()  # columns an upsert leaves as they were
    # nearly every event is a new key (a step is logged once): ingest tries a plain INSERT first
    MOSTLY_NEW: ClassVar[bool] = False
    # a row in the state FINAL_STATE is changed only by an event with the same SAME_RUN value
    # (the same run of the same trial), so a trial of another study that reuses its number (a
    # journal lost and started again) never overwrites a finished row
    FINAL_STATE: ClassVar[str | None] = None
    SAME_RUN: ClassVar[str | None] = None
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ()

    def event(self) -> dict[str, Any]:
        """The spool event for this row."""
        row: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self.JSON_COLUMNS and not isinstance(value, str):
                value = json.dumps(value)
            row[f.name] = value
        return {"table": self.TABLE, "row": row}


@dataclass(frozen=True)
class ExperimentRow(Row):
    TABLE: ClassVar[str] = "experiments"
    KEY: ClassVar[tuple[str, ...]] = ("name",)
    NEWEST_BY: ClassVar[str | None] = "updated_at"
    KEEP_ON_UPDATE: ClassVar[tuple[str, ...]] = ("created_at",)
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("spec",)
    name: str
    description: str | None = None
    spec_path: str | None = None
    spec_hash: str | None = None
    spec: Any = None
    objective: str | None = None
    direction: str | None = None
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class TrialRow(Row):
    TABLE: ClassVar[str] = "trials"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "number")
    NEWEST_BY: ClassVar[str | None] = "updated_at"
    FINAL_STATE: ClassVar[str | None] = "complete"
    SAME_RUN: ClassVar[str | None] = "started_at"
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("params",)
    experiment: str
    number: int
    state: str  # running | complete | pruned | failed
    method_kind: str | None = None
    params: Any = None
    value: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    fail_reason: str | None = None
    error: str | None = None
    artifact_dir: str | None = None
    updated_at: float | None = None
    device: str | None = None
    micro_batch: int | None = None
    accumulation: int | None = None
    steps: int | None = None
    tokens: int | None = None
    params_total: int | None = None
    params_trainable: int | None = None
    peak_memory_bytes: int | None = None
    disk_bytes: int | None = None
    cost: float | None = None
    success: bool | None = None


@dataclass(frozen=True)
class TrialParamRow(Row):
    TABLE: ClassVar[str] = "trial_params"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "number", "name")
    experiment: str
    number: int
    name: str  # dotted path, e.g. train.learning_rate
    value_num: float | None = None
    value_text: str | None = None


@dataclass(frozen=True)
class MetricRow(Row):
    TABLE: ClassVar[str] = "metrics"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "trial", "split", "name", "step")
    # a trial retried after out-of-memory logs the same steps again: the newer value wins
    NEWEST_BY: ClassVar[str | None] = "time"
    MOSTLY_NEW: ClassVar[bool] = True
    experiment: str
    trial: int
    step: int
    split: str  # train | validation
    name: str
    value: float | None = None
    epoch: float | None = None
    tokens: int | None = None
    time: float | None = None


@dataclass(frozen=True)
class EvaluationRow(Row):
    TABLE: ClassVar[str] = "evaluations"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "model_ref", "split", "name")
    NEWEST_BY: ClassVar[str | None] = "time"
    experiment: str
    model_ref: str  # base | trial:N
    split: str
    name: str
    value: float | None = None
    time: float | None = None


@dataclass(frozen=True)
class SampleRow(Row):
    TABLE: ClassVar[str] = "samples"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "model_ref", "prompt_id")
    NEWEST_BY: ClassVar[str | None] = "time"
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("settings",)
    experiment: str
    model_ref: str
    prompt_id: str
    position: int | None = None
    prompt: str | None = None
    output: str | None = None
    reference: str | None = None
    settings: Any = None
    time: float | None = None


@dataclass(frozen=True)
class DataReportRow(Row):
    TABLE: ClassVar[str] = "data_reports"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "fingerprint")
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("sources", "formats", "findings", "report")
    experiment: str
    fingerprint: str
    created_at: float | None = None
    sources: Any = None
    formats: Any = None
    template: str | None = None
    tokenizer: str | None = None
    rows_read: int | None = None
    rows_rejected: int | None = None
    duplicates_removed: int | None = None
    leaked_removed: int | None = None
    train_rows: int | None = None
    validation_rows: int | None = None
    test_rows: int | None = None
    tokens_p50: float | None = None
    tokens_p99: float | None = None
    tokens_max: float | None = None
    findings: Any = None
    report: Any = None


@dataclass(frozen=True)
class ReviewRow(Row):
    TABLE: ClassVar[str] = "reviews"
    KEY: ClassVar[tuple[str, ...]] = ("id",)
    NEWEST_BY: ClassVar[str | None] = "updated_at"
    KEEP_ON_UPDATE: ClassVar[tuple[str, ...]] = ("created_at",)
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("models",)
    id: str
    experiment: str
    name: str | None = None
    models: Any = None
    prompt_set: str | None = None
    status: str | None = None  # generating | open | closed
    kind: str | None = None  # review | arena
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class ReviewItemRow(Row):
    TABLE: ClassVar[str] = "review_items"
    KEY: ClassVar[tuple[str, ...]] = ("review_id", "item")
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("messages",)
    review_id: str
    item: int
    model_a: str
    model_b: str
    prompt_id: str | None = None
    prompt: str | None = None
    output_a: str | None = None
    output_b: str | None = None
    repeat_of: int | None = None
    messages: Any = None  # the turns before the answers, for a conversation
    created_at: float | None = None


@dataclass(frozen=True)
class VoteRow(Row):
    TABLE: ClassVar[str] = "votes"
    KEY: ClassVar[tuple[str, ...]] = ("id",)
    NEWEST_BY: ClassVar[str | None] = "updated_at"
    KEEP_ON_UPDATE: ClassVar[tuple[str, ...]] = ("created_at",)
    id: str
    review_id: str
    item: int
    rater: str
    choice: str  # a | b | tie | both_bad | both_good | skip
    seconds: float | None = None
    undone: bool | None = None
    comment: str | None = None
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class JudgementRow(Row):
    """One order of an LLM judge's verdict on an item (its vote combines both orders)."""

    TABLE: ClassVar[str] = "judgements"
    KEY: ClassVar[tuple[str, ...]] = ("review_id", "item", "rater", "shown")
    NEWEST_BY: ClassVar[str | None] = "created_at"  # a judge run again replaces its verdicts
    review_id: str
    item: int
    rater: str  # judge:NAME
    shown: str  # as shown | swapped
    verdict: str | None = None  # a | b | tie in the item's own sides; None: the answer said none
    answer: str | None = None
    model: str | None = None
    prompt_sha: str | None = None
    created_at: float | None = None


@dataclass(frozen=True)
class ChatRow(Row):
    TABLE: ClassVar[str] = "chats"
    KEY: ClassVar[tuple[str, ...]] = ("id",)
    NEWEST_BY: ClassVar[str | None] = "updated_at"
    KEEP_ON_UPDATE: ClassVar[tuple[str, ...]] = ("created_at",)
    JSON_COLUMNS: ClassVar[tuple[str, ...]] = ("messages", "settings")
    id: str
    experiment: str
    model_ref: str
    system: str | None = None
    messages: Any = None
    settings: Any = None
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class RatingRow(Row):
    TABLE: ClassVar[str] = "review_ratings"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "scope", "model_ref")
    NEWEST_BY: ClassVar[str | None] = "fitted_at"
    experiment: str
    scope: str  # a review id, or 'all'
    model_ref: str
    rating: float | None = None
    rating_low: float | None = None
    rating_high: float | None = None
    rank: int | None = None
    votes: int | None = None
    fitted_at: float | None = None
    rank_worst: int | None = None
    rating_is: str | None = None  # fitted | at least | at most | between | no bound | ties only
    ties: str | None = None  # half | ignore
    position: int | None = None


@dataclass(frozen=True)
class WatchSampleRow(Row):
    """What a trial answered to one watched prompt at one evaluation (eval.watch)."""

    TABLE: ClassVar[str] = "watch_samples"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "trial", "step", "position")
    # a trial retried after out-of-memory watches again: the newer row wins
    NEWEST_BY: ClassVar[str | None] = "time"
    experiment: str
    trial: int
    step: int
    position: int  # which watched prompt (the first N of the validation split)
    epoch: float | None = None
    prompt_id: str | None = None
    prompt: str | None = None
    output: str | None = None
    reference: str | None = None
    time: float | None = None


@dataclass(frozen=True)
class ExampleLossRow(Row):
    """The loss of one training or validation example under a trial's best checkpoint."""

    TABLE: ClassVar[str] = "example_losses"
    KEY: ClassVar[tuple[str, ...]] = ("experiment", "trial", "split", "position")
    # a trial retried after out-of-memory scores again: the newer row wins
    NEWEST_BY: ClassVar[str | None] = "time"
    experiment: str
    trial: int
    split: str  # train | validation
    position: int  # the example's place in the prepared split
    origin: str | None = None  # "data.jsonl:17"
    source_row: int | None = None  # 17: the line (or parquet row) in the user's file
    tokens: int | None = None
    loss: float | None = None
    time: float | None = None


# Parents before children: the order ingest writes the events of one batch in.
ROW_TYPES: tuple[type[Row], ...] = (
    ExperimentRow, TrialRow, TrialParamRow, MetricRow, EvaluationRow, SampleRow, DataReportRow,
    ReviewRow, ReviewItemRow, VoteRow, JudgementRow, ChatRow, RatingRow, WatchSampleRow,
    ExampleLossRow,
)
