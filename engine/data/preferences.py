"""The data of a dpo stage: its parent trial, and preference pairs from a review or a file.

A dpo stage starts from a trial of a supervised experiment (`method.from`). Its model and data
sections are that trial's, and `EXPERIMENT:best` is pinned to a trial number when the file is
loaded, so a later, better parent starts a new study instead of mixing into this one.

The pairs come from the votes of a blind review or an arena (`review:NAME`: a decisive vote is
one pair; ties, "both bad", "both good" and skips are not) or from a JSON-lines file of prompt, chosen and
rejected. They are checked like any data: broken rows are reported by line and left out, an
identical chosen and rejected is dropped, duplicates are kept once, and a pair that another
vote contradicts is dropped with its contradiction. The held-out share is chosen by a hash of
the prompt, so a pair never changes side as votes are added and a prompt is never on both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.spec import LoadedSpec
from tunelab.engine.spec.parent import parent_trial
from tunelab.store import DataReportRow, find_review, review_items, review_votes


def plain(turns: list[dict[str, Any]]) -> bool:
    """A single user message: a plain prompt, nothing more to keep than its text."""
    return len(turns) == 1 and turns[0]["role"] == "user"


def readable(turns: list[dict[str, Any]]) -> str:
    """A conversation as a person reads it (no template markup): one turn per paragraph, the
    roles named except for a single user message. Reviews and samples show prompts this way."""
    if plain(turns):
        return str(turns[0]["content"])
    return "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)


@dataclass(frozen=True)
class Pair:
    prompt: str  # as a person reads it
    chosen: str
    rejected: str
    messages: list[dict[str, str]] | None = None  # the turns before the answer, when known
    origin: str = ""  # where it came from: "review qs, item 4 (ana)" or "pairs.jsonl:12"


@dataclass
class PreferenceReport:
    source: str
    rows_read: int = 0  # votes or file rows
    left_out: dict[str, int] = field(default_factory=dict)  # tie / both_bad / skip: not pairs
    broken: list[str] = field(default_factory=list)  # "pairs.jsonl:7: no 'rejected'"
    identical: int = 0  # chosen and rejected the same text
    duplicates: int = 0
    conflicting: int = 0  # pairs dropped because another vote said the opposite
    train: int = 0
    heldout: int = 0
    stage: str = "dpo"  # the stage the pairs are for (kto reads them as single answers)
    notes: list[str] = field(default_factory=list)  # said after the counts (label smoothing…)

    @property
    def usable(self) -> int:
        return self.train + self.heldout

    def dropped(self) -> list[str]:
        """What did not become a pair, in words: "4 ties", "1 contradicted by another vote"."""
        names = {"tie": "ties", "both_bad": "both bad", "both_good": "both good", "skip": "skips"}
        parts = [f"{n} {names[k]}" for k, n in self.left_out.items() if n]
        return parts + [f"{n} {what}" for n, what in (
            (self.identical, "with chosen = rejected"),
            (self.conflicting, "contradicted by another vote"),
            (len(self.broken), "broken rows")) if n]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "usable": self.usable}, ensure_ascii=False)


def _text(value: Any) -> str | None:
    """A completion as text: a string, or TRL's conversational [{"role": "assistant", …}]."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        content = value[0].get("content")
        return content if isinstance(content, str) else None
    return None


def json_rows(path: Path, report: PreferenceReport) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line, row) for each JSON object of a JSON-lines file, counted in the report; a
    line that is not one is reported as broken."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        report.rows_read += 1
        where = f"{path.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            report.broken.append(f"{where}: not JSON ({error.msg})")
            continue
        if not isinstance(row, dict):
            report.broken.append(f"{where}: not an object")
            continue
        yield where, row


def _file_pairs(path: Path, report: PreferenceReport) -> list[Pair]:
    pairs = []
    for where, row in json_rows(path, report):
        prompt, messages = row.get("prompt"), row.get("messages")
        if isinstance(prompt, list):  # conversational: the turns before the answer
            messages = [m for m in prompt if isinstance(m, dict) and "role" in m]
            prompt = next((m.get("content") for m in reversed(messages)
                           if m["role"] == "user"), None)
        chosen, rejected = _text(row.get("chosen")), _text(row.get("rejected"))
        # an empty answer can be the one a rater picked (or rejected); an empty prompt is broken
        missing = [k for k, v in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected))
                   if not isinstance(v, str) or (k == "prompt" and not v.strip())]
        if missing:
            report.broken.append(f"{where}: no {', '.join(repr(m) for m in missing)}")
            continue
        if messages is not None and not (isinstance(messages, list) and all(
                isinstance(m, dict) and "role" in m and "content" in m for m in messages)):
            report.broken.append(f"{where}: 'messages' is not a list of role/content turns")
            continue
        pairs.append(Pair(str(prompt), str(chosen), str(rejected), messages, where))
    return pairs


def dpo_pairs(store: Path, name: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """prompt/chosen/rejected rows from the decisive votes of a review or an arena; ties,
    both-bad, both-good and skips are counted and left out."""
    review = find_review(store, name)
    if review is None:
        raise TrainError(f"no review {name!r} in {store}")
    by_item = {i.item: i for i in review_items(store, review.id)}
    rows: list[dict[str, Any]] = []
    left_out = {"tie": 0, "both_bad": 0, "both_good": 0, "skip": 0}
    for v in review_votes(store, review.id):
        item = by_item.get(v.item)
        if item is None:
            continue
        if v.choice in left_out:
            left_out[v.choice] += 1
            continue
        chosen, rejected = ((item.output_a, item.output_b) if v.choice == "a"
                            else (item.output_b, item.output_a))
        rows.append({"prompt": item.prompt, "chosen": chosen, "rejected": rejected,
                     "rater": v.rater, "review": review.name,
                     **({"messages": item.messages} if item.messages else {})})
    return rows, left_out


def _review_pairs(store: Path, name: str, report: PreferenceReport) -> list[Pair]:
    try:
        rows, left_out = dpo_pairs(store, name)
    except TrainError as error:
        raise SpecError(f"method.preferences: {error}") from error
    report.left_out = left_out
    report.rows_read = len(rows) + sum(left_out.values())
    return [Pair(r["prompt"], r["chosen"], r["rejected"], r.get("messages"),
                 f"review {r['review']} ({r['rater']})") for r in rows]


def load_pairs(source: str, store: Path) -> tuple[list[Pair], PreferenceReport]:
    """Every pair of `review:NAME` (or `arena:NAME`) or a JSON-lines file, checked."""
    report = PreferenceReport(source)
    if source.startswith(("review:", "arena:")):
        pairs = _review_pairs(store, source.split(":", 1)[1], report)
    else:
        pairs = _file_pairs(Path(source), report)
    kept: dict[tuple[str, str, str], Pair] = {}
    for pair in pairs:
        if pair.chosen.strip() == pair.rejected.strip():
            report.identical += 1
        elif (pair.prompt, pair.chosen, pair.rejected) in kept:
            report.duplicates += 1
        else:
            kept[(pair.prompt, pair.chosen, pair.rejected)] = pair
    contradicted = {k for k in kept if (k[0], k[2], k[1]) in kept}
    report.conflicting = len(contradicted)
    return [p for k, p in kept.items() if k not in contradicted], report


def _position(prompt: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}\x00preferences\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Prompted(Protocol):
    @property
    def prompt(self) -> str: ...


T = TypeVar("T", bound=Prompted)


def split_pairs(pairs: list[T], heldout: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, held out) by a hash of each prompt; at least one prompt is held out. Pairs, or
    anything with a prompt (a kto stage's single answers)."""
    held = [p for p in pairs if _position(p.prompt, seed) < heldout]
    if not held and len({p.prompt for p in pairs}) > 1:
        first = min(pairs, key=lambda p: _position(p.prompt, seed)).prompt
        held = [p for p in pairs if p.prompt == first]
    return [p for p in pairs if p not in held], held


def too_few(report: PreferenceReport, needed: int) -> str:
    """Why a run refuses, and what to do: how many more decisive votes (or rows) it takes."""
    parts = report.dropped()
    if report.broken:
        parts[-1] += f" (first: {report.broken[0]})"
    why = f" ({', '.join(parts)} do not count)" if parts else ""
    more = needed - report.usable
    if report.source.startswith(("review:", "arena:")):
        name = report.source.split(":", 1)[1]
        todo = (f"vote on at least {more} more items with a clear winner "
                f"(`tunelab review {name}`)")
    else:
        todo = f"add at least {more} more pairs to the file"
    return (f"{report.source} gives {report.usable} usable preference pairs{why}; a dpo stage "
            f"needs at least {needed} (method.min_pairs): {todo}, or lower method.min_pairs")


@dataclass(frozen=True)
class PreferenceData:
    """What every trial of a dpo stage reads: the pairs, the parent's validation and test
    splits, the base model and the parent's adapter (None when the parent is full weights)."""

    fingerprint: str
    folder: Path
    report: PreferenceReport
    files: dict[str, Path]
    base: str
    parent_adapter: str | None


def pair_row(pair: Pair) -> dict[str, Any]:
    """A pair as the prepared files hold it."""
    return {"prompt": pair.prompt, "messages": pair.messages, "chosen": pair.chosen,
            "rejected": pair.rejected, "origin": pair.origin}


def checked_pairs(spec: LoadedSpec, store: Path) -> tuple[list[Pair], list[Pair],
                                                          PreferenceReport, str | None]:
    """(training pairs, held-out pairs, the report, why a run must refuse or None)."""
    exp = spec.experiment
    method = exp.method
    pairs, report = load_pairs(str(method.preferences), store)
    report.stage = method.stage
    train, held = split_pairs(pairs, method.heldout, exp.train.seed)
    report.train, report.heldout = len(train), len(held)
    enough = report.usable >= method.min_pairs and train and held
    return train, held, report, None if enough else too_few(report, max(method.min_pairs, 2))


def prepare(spec: LoadedSpec, store: Path, folder: Path) -> PreferenceData:
    """Checks and splits the pairs, writes them beside the parent's splits; refuses with too few."""
    train, held, report, refusal = checked_pairs(spec, store)
    if refusal:
        raise SpecError(refusal, "too few preference pairs")
    return write_prepared(spec, store, folder, report, {"train": [pair_row(p) for p in train],
                                                        "heldout": [pair_row(p) for p in held]})


def write_prepared(spec: LoadedSpec, store: Path, folder: Path, report: PreferenceReport,
                   rows: dict[str, list[dict[str, Any]]], prefix: str = "prefs") -> PreferenceData:
    """The stage's rows (split -> rows) written in a folder named by their fingerprint (and
    the parent's), beside the parent's validation and test splits."""
    method = spec.experiment.method
    name, number = method.parent
    _, parent_folder = parent_trial(store, name, number)
    manifest = json.loads((parent_folder / "manifest.json").read_text())
    best = parent_folder / "best"
    adapter = (best / "adapter_config.json").exists()
    content = json.dumps([*rows.values(), method.from_, manifest["data"]], sort_keys=True,
                         ensure_ascii=False)
    fingerprint = f"{prefix}-" + hashlib.sha256(content.encode()).hexdigest()[:12]
    out = folder / fingerprint
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, found in rows.items():
        files[split] = out / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in found),
                                encoding="utf-8")
    for split in ("validation", "test"):  # the parent's: does preference tuning cost accuracy?
        if manifest["data"].get(split) and Path(manifest["data"][split]).exists():
            files[split] = Path(manifest["data"][split])
    return PreferenceData(fingerprint, out, report, files,
                          base=manifest["base"] if adapter else str(best),
                          parent_adapter=str(best) if adapter else None)


def report_event(experiment: str, data: PreferenceData) -> DataReportRow:
    """The data_reports row of the pairs: read, left out, kept for training and held out."""
    import time

    r = data.report
    findings = [{"check": "broken", "level": "warning", "message": b, "count": 1, "removed": 1,
                 "examples": []} for b in r.broken[:20]]
    for check, count in (("identical", r.identical), ("conflicting", r.conflicting)):
        if count:
            findings.append({"check": check, "level": "info", "count": count, "removed": count,
                             "message": f"{count} pairs dropped ({check})", "examples": []})
    return DataReportRow(
        experiment=experiment, fingerprint=data.fingerprint, created_at=time.time(),
        sources=json.dumps([r.source]), formats=json.dumps({r.source: "preferences"}),
        rows_read=r.rows_read, rows_rejected=len(r.broken) + sum(r.left_out.values()),
        duplicates_removed=r.duplicates, leaked_removed=0, train_rows=r.train,
        validation_rows=r.heldout, findings=json.dumps(findings, ensure_ascii=False),
        report=r.to_json())
