"""Data preparation: load -> normalise -> check -> de-duplicate -> split -> fingerprint.

The prepared splits are cached by a fingerprint of the input bytes and the
settings that shape them, so trials never redo the work and a changed file is
never served stale. The split is by hash of each example's content: the same
file and seed always give the same split, and adding rows does not move
existing rows between splits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.engine.errors import DataError
from tunelab.engine.spec import LoadedSpec

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataReport:
    source: str
    rows_read: int
    rejected: dict[str, list[int]]  # reason -> line numbers (first few)
    duplicates_removed: int
    counts: dict[str, int]


@dataclass(frozen=True)
class PreparedData:
    fingerprint: str
    folder: Path
    report: DataReport
    files: dict[str, Path] = field(default_factory=dict)

    def rows(self, split: str) -> list[dict[str, str]]:
        return read_rows(self.files[split])


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a prepared split (JSON lines written by prepare)."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _read_prompt_completion(path: Path) -> tuple[list[tuple[int, dict[str, str]]], dict[str, list[int]]]:
    rows: list[tuple[int, dict[str, str]]] = []
    rejected: dict[str, list[int]] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                rejected.setdefault("not UTF-8", []).append(number)
                continue
            except json.JSONDecodeError:
                rejected.setdefault("not valid JSON", []).append(number)
                continue
            if not isinstance(record, dict) or not {"prompt", "completion"} <= record.keys():
                rejected.setdefault("no prompt/completion keys", []).append(number)
                continue
            prompt, completion = record["prompt"], record["completion"]
            if not isinstance(prompt, str) or not isinstance(completion, str):
                rejected.setdefault("prompt or completion is not text", []).append(number)
                continue
            if not completion.strip():
                rejected.setdefault("empty completion", []).append(number)
                continue
            rows.append((number, {"prompt": prompt, "completion": completion}))
    return rows, rejected


def _bucket(row: dict[str, str], seed: int) -> float:
    """A stable position in [0, 1) from the example's content."""
    digest = hashlib.sha256(f"{seed}\x00{row['prompt']}\x00{row['completion']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fingerprint(spec: LoadedSpec) -> str:
    data = spec.experiment.data
    h = hashlib.sha256()
    h.update(spec.data_path().read_bytes())
    settings = {"format": data.format, "split": data.split.model_dump(), "dedupe": data.dedupe,
                "seed": spec.experiment.train.seed, "version": 1}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def prepare(spec: LoadedSpec, cache_root: Path) -> PreparedData:
    """Prepares (or reuses) the splits of an experiment's data under cache_root/<fingerprint>/."""
    source = spec.data_path()
    if source.suffix not in {".jsonl", ".json"}:
        raise DataError(f"{source}: only JSON lines with prompt/completion are read for now")
    key = fingerprint(spec)
    folder = cache_root / key
    files = {s: folder / f"{s}.jsonl" for s in SPLITS}
    report_file = folder / "report.json"
    if report_file.exists() and all(f.exists() for f in files.values()):
        report = DataReport(**json.loads(report_file.read_text()))
        return PreparedData(key, folder, report, files)

    data = spec.experiment.data
    rows, rejected = _read_prompt_completion(source)
    read = len(rows) + sum(len(v) for v in rejected.values())
    if data.dedupe == "exact":
        seen: set[tuple[str, str]] = set()
        unique = []
        for _, row in rows:
            k = (row["prompt"].strip(), row["completion"].strip())
            if k not in seen:
                seen.add(k)
                unique.append(row)
    else:
        unique = [row for _, row in rows]
    removed = len(rows) - len(unique)
    if len(unique) < data.min_examples:
        raise DataError(
            f"{source}: {len(unique)} usable examples, fewer than {data.min_examples}; "
            "fine-tuning on so little data overfits. Add data or set data.min_examples lower."
        )
    seed = spec.experiment.train.seed
    cut_train = data.split.train
    cut_val = data.split.train + data.split.validation
    parts: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    for row in unique:
        b = _bucket(row, seed)
        parts["train" if b < cut_train else "validation" if b < cut_val else "test"].append(row)
    if not parts["validation"]:
        raise DataError(f"{source}: the validation split is empty; add data or enlarge it")

    folder.mkdir(parents=True, exist_ok=True)
    for split, part in parts.items():
        tmp = files[split].with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(files[split])
    report = DataReport(
        source=str(source),
        rows_read=read,
        rejected={k: v[:20] for k, v in rejected.items()},
        duplicates_removed=removed,
        counts={s: len(p) for s, p in parts.items()},
    )
    report_file.write_text(json.dumps(report.__dict__, indent=1))
    return PreparedData(key, folder, report, files)
