"""Data preparation, in phases: read -> check the set -> de-duplicate -> mix -> remove leaks ->
count tokens -> order -> write, with a report of every row removed and why.

The prepared splits are cached by a fingerprint of the input bytes and of every setting that
shapes them, so trials never redo the work and a changed file is never served stale. The split
is by a seeded hash of each example's content: the same file and seed always give the same
split, and adding rows does not move existing rows between splits.

While it runs, the rows wait on disk (engine.data.spill) and each phase streams over them a
batch at a time, on all cores where the work is per row; memory holds a few numbers a row, so
a million rows fit where a hundred thousand did.

A prepared split is JSON lines of examples in the internal form (see data_formats): `messages`
(or `text`), plus `prompt` and `completion` as plain text (everything before the last trained
turn, and that turn) and `origin` (the file and line the example came from).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tunelab.engine.data import formats, parallel, passes
from tunelab.engine.data import render as chat_render
from tunelab.engine.data import sources as data_sources
from tunelab.engine.data.checks import Findings, percentiles, size_checks
from tunelab.engine.data.dedupe import DuplicateIndex, Signed, dedupe_rows, leaks
from tunelab.engine.data.progress import Progress
from tunelab.engine.data.reading import MIX, SPLITS, Read, read_sources
from tunelab.engine.data.report import DataRejected, DataReport, report_event
from tunelab.engine.data.spill import Spill, origin_text
from tunelab.engine.errors import DataError
from tunelab.engine.spec import DataSpec, LoadedSpec

__all__ = ["DataRejected", "DataReport", "PreparedData", "fingerprint", "prepare", "read_rows",
           "report_event", "tokenizer_for"]

VERSION = 3  # of the preparation itself: a change here invalidates every cache
EOS_SAMPLE = 20  # training examples rendered to check the end-of-sequence token
READ_BESIDE_BYTES = 4 << 20  # data files from this size are read in a process of their own


@dataclass(frozen=True)
class PreparedData:
    fingerprint: str
    folder: Path
    report: DataReport
    files: dict[str, Path] = field(default_factory=dict)

    def rows(self, split: str) -> list[dict[str, Any]]:
        return read_rows(self.files[split])


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a prepared split (JSON lines written by prepare)."""
    with Path(path).open("rb") as f:
        return [orjson.loads(line) for line in f]


# ---------------------------------------------------------------- fingerprint

def _all_sources(spec: LoadedSpec) -> dict[str, list[str]]:
    data = spec.experiment.dataset
    named = {s: [p for t in data.sources(s) for p in data_sources.expand(t, spec.folder)] for s in SPLITS}
    for i, m in enumerate(data.mix):
        texts = [m.source] if isinstance(m.source, str) else m.source
        named[f"mix{i}"] = [p for t in texts for p in data_sources.expand(t, spec.folder)]
    return named


def fingerprint(spec: LoadedSpec) -> str:
    """A hash of the input bytes and of every setting that shapes the prepared splits."""
    exp = spec.experiment
    h = hashlib.sha256()
    for key, sources in _all_sources(spec).items():
        for source in sources:
            h.update(f"{key}|{Path(source).name}|{data_sources.digest(source)}\n".encode())
    data = exp.dataset.model_dump(mode="json")
    data.pop("force", None)  # decides whether few examples stop the run, not what is prepared
    model = exp.base_model
    settings = {"data": data, "seed": exp.train.seed, "max_length": exp.train.max_length,
                "model": model.scratch.model_dump() if model.scratch else model.base,
                "version": VERSION}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- tokenizer

def tokenizer_for(spec: LoadedSpec, train_rows: list[dict[str, Any]], runs: Path | None = None) -> Any:
    """The tokenizer the trials will use: the base model's, or for a scratch model the one trained
    on the training split (the same function and texts as model.build_scratch_base)."""
    from tunelab.engine.train import model as models

    exp = spec.experiment
    if exp.base_model.scratch is not None:
        if runs is not None:
            folder = models.base_folder(exp, fingerprint(spec), runs)
            if folder is not None and (folder / "tokenizer.json").exists():
                return models.load_tokenizer(str(folder), exp)
        texts = [r["prompt"] + "\n" + r["completion"] for r in train_rows]
        return models.train_tokenizer(texts, exp.base_model.scratch.vocab_size)
    assert exp.base_model.base is not None
    base = Path(exp.base_model.base).expanduser()
    if not base.is_absolute() and (spec.folder / base).exists():
        base = spec.folder / base
    ref = str(base) if base.exists() else exp.base_model.base
    try:
        return models.load_tokenizer(ref, exp)
    except Exception as error:  # noqa: BLE001 - offline, missing, gated: all user-facing
        raise DataError(f"cannot load the tokenizer of {ref} to count tokens: {error}") from None


# ---------------------------------------------------------------- prepare


def prepare(spec: LoadedSpec, cache_root: Path, force: bool = False,
            progress: Progress | None = None) -> PreparedData:
    """Prepares (or reuses) the splits of an experiment's data under cache_root/<fingerprint>/;
    progress is shown on the terminal (stderr) unless another Progress is given."""
    key = fingerprint(spec)
    folder = cache_root / key
    files = {s: folder / f"{s}.jsonl" for s in SPLITS}
    report_file = folder / "report.json"
    forced = force or spec.experiment.dataset.force
    if report_file.exists() and all(f.exists() for f in files.values()):
        report = DataReport.from_json(report_file.read_text(encoding="utf-8"))
        _stop_if_too_few(report, forced)
        return PreparedData(key, folder, report, files)

    progress = progress or Progress.terminal()
    # written aside and renamed when whole: a killed preparation leaves no half cache
    tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        preparation = _Preparation(spec, forced, progress, tmp)
        report = preparation.run()
        _stop_if_too_few(report, forced)
        preparation.write({s: tmp / f"{s}.jsonl" for s in SPLITS})
        (tmp / "report.json").write_text(report.to_json(), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        progress.close()
    if folder.exists() and not report_file.exists():
        shutil.rmtree(folder, ignore_errors=True)  # a half folder from another tunelab version
    try:
        tmp.replace(folder)
    except OSError:  # another process finished the same preparation first
        shutil.rmtree(tmp, ignore_errors=True)
    return PreparedData(key, folder, report, files)


def _stop_if_too_few(report: DataReport, forced: bool) -> None:
    for f in report.findings:
        if f.check == "few_examples" and not forced:
            raise DataRejected(_with_cause(f.message, report), report)
        if f.level == "error" and f.check != "few_examples":
            raise DataRejected(_with_cause(f.message, report), report)


def _with_cause(message: str, report: DataReport) -> str:
    """Too few examples because one rule removed most rows (a wrong data.format, say): that
    rule is the news, so it leads, and the count follows."""
    cause = max((f for f in report.findings if f.removed), key=lambda f: f.removed, default=None)
    if cause is None or cause.removed * 2 < report.rows_read:
        return message
    where = f", first at {cause.examples[0]}" if cause.examples else ""
    return (f"{cause.message}: {cause.removed:,} of {report.rows_read:,} rows removed{where}; "
            f"so {message}")


@dataclass
class _Preparation:
    """One preparation's phases, in the order `run` calls them; each streams over the rows on
    disk and keeps, per split, the numbers of its rows (`parts`)."""

    spec: LoadedSpec
    forced: bool  # few examples do not stop it (data.force, --force)
    progress: Progress
    folder: Path  # the preparation's own: the rows on disk, then the prepared splits
    findings: Findings = field(default_factory=Findings)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: dict[str, list[int]] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("rows_read", "duplicates", "leaked", "answers_split", "turn_by_turn"), 0))
    mixed: dict[str, int] = field(default_factory=dict)
    tokenizer: Any = None  # loaded beside the reading, or before the tokens are counted

    def run(self) -> DataReport:
        self.read()  # every source, normalised, checked by the row rules, split by a hash
        self.mark()  # the checks of the whole set, and each row's keys for de-duplication
        self.deduplicate()  # within each split, the first occurrence kept
        self.mix()  # other sources into train, each to its fraction of the final training split
        self.remove_leaks()  # validation and test rows that duplicate a training row
        self.count_tokens()  # in the real tokenizer and template
        self.order()  # a stable shuffle, or a curriculum (the trainer then reads in order)
        return self.report()

    @property
    def data(self) -> DataSpec:
        return self.spec.experiment.dataset

    def origin(self, row: int) -> str:
        return origin_text(self.origins[row].as_py())

    def _read(self) -> Read:
        return read_sources(self.data, self.spec.experiment.train.seed, self.sources,
                            self.folder / "rows.arrow", self.findings, self.progress)

    def read(self) -> None:
        """Every source into the spill; a base model's tokenizer is loaded meanwhile, beside the
        reading (seconds of importing transformers) when the data is large enough to pay for a
        process of its own."""
        self.sources = sources = _all_sources(self.spec)
        files = [Path(s) for group in sources.values() for s in group if not s.startswith("hub:")]
        if (self.spec.experiment.base_model.scratch is None
                and sum(f.stat().st_size for f in files if f.is_file()) >= READ_BESIDE_BYTES):
            read, self.tokenizer = parallel.beside(self._read, lambda: tokenizer_for(self.spec, []))
        else:
            read = self._read()
        self.table, self.findings, self.formats_seen, self.counted["rows_read"], count = read
        self.spill = Spill(self.folder / "rows.arrow", count)
        self.table.freeze()
        self.origins = self.spill.origins()
        self.parts = {s: self.table.rows_of(i) for i, s in enumerate(SPLITS)}
        self.train_index: DuplicateIndex | None = None
        self.signed: Signed | None = None

    def mark(self) -> None:
        dedupe = self.data.dedupe
        self.progress.stage("finding duplicates" if dedupe != "none" else "checking the set",
                            self.spill.count)
        marks, self.signed = passes.mark(self.spill, dedupe, self.data.near_threshold, self.progress)
        marks.check(self.table, self.origin, self.findings)

    def deduplicate(self) -> None:
        mode = self.data.dedupe
        if self.signed is None:
            return
        for split in SPLITS:
            kept, removed, index = dedupe_rows(self.signed, self.parts[split].tolist(), mode)
            for m in removed:
                kind = "exact duplicate" if m.kind == "exact" else \
                    f"near duplicate (≥ {self.data.near_threshold:g})"
                self.findings.add(f"duplicate_{m.kind}", "note", f"{kind} within {split}",
                                  f"{self.origin(m.index)} ~ {self.origin(m.of)}", removed=True)
            self.counted["duplicates"] += len(removed)
            self.parts[split] = np.array(kept, dtype=np.int64)
            if split == "train":
                self.train_index = index

    def mix(self) -> None:
        """Each mixed-in source's rows in the order of their seeded draw, up to its fraction;
        a row already in train is passed over (it would only double that row's weight)."""
        data, table = self.data, self.table
        n_main = len(self.parts["train"])
        share_left = 1 - sum(m.fraction for m in data.mix)
        for i, mix in enumerate(data.mix):
            want = round(mix.fraction / share_left * n_main)
            rows = table.rows_of(MIX + i)
            taken: list[int] = []
            for row in rows[np.argsort(table.mix[rows], kind="stable")].tolist():
                if len(taken) >= want:
                    break
                if self.train_index is not None and self.train_index.offer(row) is not None:
                    continue
                taken.append(row)
            self.parts["train"] = np.concatenate([self.parts["train"], np.array(taken, dtype=np.int64)])
            label = ", ".join(Path(s).name for s in self.sources[f"mix{i}"])
            self.mixed[label] = len(taken)
            if len(taken) < want:
                self.findings.once("mix_short", "warning",
                                   f"{label}: {len(taken):,} usable rows, {want:,} wanted for a "
                                   f"fraction of {mix.fraction:g}; all of them are used")

    def remove_leaks(self) -> None:
        if self.train_index is not None:
            for split in ("validation", "test"):
                found = leaks(self.train_index, self.parts[split].tolist())
                for m in found:
                    self.findings.add("leakage", "warning",
                                      f"{split} row duplicates a training row ({m.kind})",
                                      self.origin(m.index), removed=True)
                drop = np.array([m.index for m in found], dtype=np.int64)
                self.parts[split] = self.parts[split][~np.isin(self.parts[split], drop)]
                self.counted["leaked"] += len(found)
        if self.signed is not None:  # the index and signatures are done with
            self.signed.close()
        self.train_index = self.signed = None
        self.spill.path.with_name("signatures").unlink(missing_ok=True)

    def count_tokens(self) -> None:
        exp = self.spec.experiment
        # only a scratch model's tokenizer is trained on the rows (a million rows are not small)
        train_rows = []
        if exp.base_model.scratch:
            for raw in self.spill.take(self.parts["train"]):
                prompt, completion = formats.flat(orjson.loads(raw))
                train_rows.append({"prompt": prompt, "completion": completion})
        if self.tokenizer is None:  # not loaded beside the reading
            self.progress.stage("loading the tokenizer", None)  # seconds: transformers imports torch
            self.tokenizer = tokenizer_for(self.spec, train_rows)
        del train_rows
        template = chat_render.template_text(self.data.template, self.tokenizer)
        wanted = np.zeros(self.spill.count, dtype=bool)
        for rows in self.parts.values():
            wanted[rows] = True
        self.progress.stage("counting tokens", int(wanted.sum()))
        facts = passes.count_tokens(self.spill, wanted, self.tokenizer, template, self.progress)
        for split in SPLITS:
            self._keep_counted(split, facts)

    def _keep_counted(self, split: str, facts: passes.TokenFacts) -> None:
        """The rows of a split the template renders and (unless they are to be cut) that fit in
        train.max_length; the tokens' findings."""
        max_length = self.spec.experiment.train.max_length
        keep: list[int] = []
        lengths: list[int] = []
        for row in self.parts[split].tolist():
            if row in facts.errors:
                self.findings.add("template_error", "warning",
                                  f"the chat template fails on it: {facts.errors[row]}",
                                  self.origin(row), removed=True)
                continue
            passes.check_tokens(facts, row, self.origin, self.tokenizer, self.findings,
                                eos=split == "train" and len(keep) < EOS_SAMPLE)
            self.counted["answers_split"] += bool(facts.split_answers[row])
            n = int(facts.length[row])
            if n > max_length:
                if self.data.too_long == "drop":
                    self.findings.add("too_long", "warning", f"longer than train.max_length "
                                      f"({max_length:,} tokens): dropped", self.origin(row), removed=True)
                    continue
                self.findings.add("too_long", "warning", f"longer than train.max_length "
                                  f"({max_length:,} tokens): the trainer cuts the end off", self.origin(row))
            self.counted["turn_by_turn"] += bool(facts.turn_by_turn[row])  # not a problem: counted
            keep.append(row)
            lengths.append(n)
        self.parts[split] = np.array(keep, dtype=np.int64)
        self.lengths[split] = lengths

    def order(self) -> None:
        table = self.table
        for split in SPLITS:
            rows, lengths = self.parts[split], np.array(self.lengths[split], dtype=np.int64)
            shuffle = table.order[rows]
            if split == "train" and self.data.order == "length":
                order = np.lexsort((shuffle, lengths))
            elif split == "train" and self.data.order == "difficulty":
                difficulty = np.nan_to_num(table.difficulty[rows], nan=np.inf)  # mixed-in: last
                order = np.lexsort((shuffle, difficulty))
            else:
                order = np.argsort(shuffle, kind="stable")
            self.parts[split] = rows[order]
            self.lengths[split] = lengths[order].tolist()

    def report(self) -> DataReport:
        parts, counted, findings, data = self.parts, self.counted, self.findings, self.data
        usable = sum(len(parts[s]) for s in SPLITS) - sum(self.mixed.values())
        size_checks(usable, data.min_examples, self.forced, findings)
        if not len(parts["validation"]):
            findings.once("no_validation", "error",
                          "the validation split is empty: add data, enlarge split.validation, or give "
                          "data.validation files")
        everything = findings.all()
        return DataReport(
            source=self.sources["train"][0] if self.sources["train"] else "",
            rows_read=counted["rows_read"], counts={s: len(parts[s]) for s in SPLITS},
            duplicates_removed=counted["duplicates"], leaked_removed=counted["leaked"],
            rows_rejected=sum(f.removed for f in everything
                              if not f.check.startswith(("duplicate", "leakage"))),
            sources=[s for k in self.sources for s in self.sources[k]],
            formats=self.formats_seen,
            template=chat_render.template_label(data.template, self.tokenizer),
            tokenizer=getattr(self.tokenizer, "name_or_path", "")
            or "scratch (trained on the training split)",
            max_length=self.spec.experiment.train.max_length,
            tokens={s: percentiles(self.lengths[s]) for s in SPLITS},
            mixed=self.mixed, order=data.order, findings=everything,
            answers_split=counted["answers_split"], turn_by_turn=counted["turn_by_turn"])

    def write(self, files: dict[str, Path]) -> None:
        """Each split in its order, each output row made as it is written (memory stays flat)."""
        self.progress.stage("writing", sum(len(self.parts[s]) for s in SPLITS))
        try:
            self.spill.write_in_order(self.parts, files, self._line, self.progress.advance)
        finally:
            self.spill.path.unlink(missing_ok=True)

    def _line(self, raw: bytes, origin: str) -> bytes:
        row = orjson.loads(raw)
        row["prompt"], row["completion"] = formats.flat(row)
        row["origin"] = origin
        if self.data.template != "auto":
            row["template"] = self.data.template  # model.render reads it: the trainer renders as prepared
        return orjson.dumps(row) + b"\n"

