"""The report of a data preparation: what was read, kept, removed and why; and its store row."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tunelab.engine.data.checks import Finding
from tunelab.engine.errors import DataError
from tunelab.store import DataReportRow

if TYPE_CHECKING:
    from tunelab.engine.data.prepare import PreparedData


@dataclass(frozen=True)
class DataReport:
    source: str  # the first training source (kept for older readers)
    rows_read: int
    counts: dict[str, int]
    duplicates_removed: int  # within splits
    leaked_removed: int = 0  # validation/test rows that duplicated a training row
    rows_rejected: int = 0  # unreadable rows and rows that broke a rule
    sources: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # source -> format
    template: str = ""
    tokenizer: str = ""
    max_length: int = 0
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> percentiles
    mixed: dict[str, int] = field(default_factory=dict)  # mixed-in source -> rows in train
    order: str = "shuffle"
    findings: list[Finding] = field(default_factory=list)
    # rows where the tokenizer would merge the answer's first characters into the prompt's last
    # token; their answers are tokenized on their own (see render), so nothing is lost
    answers_split: int = 0
    # rows not tokenized once but turn by turn: every prefix of the text alone (a merge across a
    # turn's boundary, or a tokenizer whose pieces cannot be tokenized apart; engine.data.render)
    turn_by_turn: int = 0

    @property
    def rejected(self) -> dict[str, list[str]]:
        """Reason -> the first places of the rows removed for it (duplicates not included)."""
        return {f.message: f.examples for f in self.findings
                if f.removed and not f.check.startswith(("duplicate", "leakage"))}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> DataReport:
        raw = json.loads(text)
        raw["findings"] = [Finding(**f) for f in raw.get("findings", [])]
        return cls(**raw)


class DataRejected(DataError):
    """The data failed a check that stops the preparation; carries the report to show."""

    def __init__(self, message: str, report: DataReport) -> None:
        super().__init__(message)
        self.report = report



def report_event(experiment: str, prepared: PreparedData) -> DataReportRow:
    """The data_reports row of a preparation."""
    r = prepared.report
    return DataReportRow(
        experiment=experiment, fingerprint=prepared.fingerprint, created_at=time.time(),
        sources=json.dumps(r.sources), formats=json.dumps(r.formats),
        template=r.template, tokenizer=r.tokenizer, rows_read=r.rows_read,
        rows_rejected=r.rows_rejected, duplicates_removed=r.duplicates_removed,
        leaked_removed=r.leaked_removed, train_rows=r.counts.get("train"),
        validation_rows=r.counts.get("validation"), test_rows=r.counts.get("test"),
        tokens_p50=r.tokens.get("train", {}).get("p50"),
        tokens_p99=r.tokens.get("train", {}).get("p99"),
        tokens_max=r.tokens.get("train", {}).get("max"),
        findings=json.dumps([asdict(f) for f in r.findings], ensure_ascii=False),
        report=r.to_json())
