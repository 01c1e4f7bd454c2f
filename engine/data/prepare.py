"""Data preparation: load -> normalise -> check -> split -> de-duplicate -> mix -> count tokens ->
order -> write, with a report of every row removed and why.

The prepared splits are cached by a fingerprint of the input bytes and of every setting that
shapes them, so trials never redo the work and a changed file is never served stale. The split
is by a seeded hash of each example's content: the same file and seed always give the same
split, and adding rows does not move existing rows between splits.

A prepared split is JSON lines of examples in the internal form (see data_formats): `messages`
(or `text`), plus `prompt` and `completion` as plain text (everything before the last trained
turn, and that turn) and `origin` (the file and line the example came from).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tunelab.engine.data import formats, parallel
from tunelab.engine.data import render as chat_render
from tunelab.engine.data import sources as data_sources
from tunelab.engine.data.checks import (
    Findings,
    RowRules,
    conflicting_answers,
    inconsistent_prefix,
    percentiles,
    size_checks,
)
from tunelab.engine.data.dedupe import dedupe, keys_and_signatures, leaks
from tunelab.engine.data.progress import Progress
from tunelab.engine.data.report import DataRejected, DataReport, report_event
from tunelab.engine.errors import DataError
from tunelab.engine.spec import ColumnsSpec, DataSpec, LoadedSpec

__all__ = ["DataRejected", "DataReport", "PreparedData", "fingerprint", "prepare", "read_rows",
           "report_event", "tokenizer_for"]

SPLITS = ("train", "validation", "test")
VERSION = 3  # of the preparation itself: a change here invalidates every cache
EOS_SAMPLE = 20  # training examples rendered to check the end-of-sequence token
RENDER_BATCH = 1000  # examples rendered and tokenized per tokenizer call (and per worker task)
SIGNATURE_BATCH = 5000  # texts per MinHash call


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


# ---------------------------------------------------------------- reading


@dataclass(slots=True)  # a million of them are held at once
class _Example:
    """An example as the preparation holds it: the normalised row as JSON bytes, not as Python
    dicts and lists (a third of the memory; and a forked worker that reads a row dirties, and so
    copies, only the pages of one bytes object, not those of a tree of objects)."""

    data: bytes  # the normalised row, orjson-encoded
    origin: str
    key: str = ""  # content hash: split bucket and stable order
    difficulty: float | None = None

    @property
    def row(self) -> dict[str, Any]:
        return orjson.loads(self.data)


def _content_key(row: dict[str, Any]) -> str:
    content = row.get("text") if "text" in row else [(m["role"], m["content"]) for m in row["messages"]]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def _read(sources: list[str], fmt: str, columns: ColumnsSpec, data: DataSpec, split: str,
          findings: Findings, formats_seen: dict[str, str], rules: RowRules,
          progress: Progress) -> tuple[list[_Example], int]:
    examples: list[_Example] = []
    read = 0
    for source in sources:
        name, items = data_sources.stream_records(source, "train" if split == "mix" else split,
                                                  data.max_row_bytes)
        head: list[data_sources.Record] = []  # the first records, to tell the format by
        for item in items:
            if isinstance(item, data_sources.Record):
                head.append(item)
                if len(head) == formats.DETECT_RECORDS:
                    break
            else:
                read += 1
                findings.add("unreadable", "warning", f"row not readable: {item[0]}", item[1], removed=True)
        use = fmt if fmt != "auto" else formats.detect(head, columns)
        if use is None and head:
            keys = ", ".join(sorted(head[0].data)[:8])
            raise DataError(f"{source}: cannot tell the format of this data (fields: {keys}); set "
                            "data.format (prompt_completion, messages, alpaca, sharegpt, text) and, "
                            "if the fields are named otherwise, data.columns")
        if use is None:
            continue
        formats_seen[name] = use
        progress.stage(f"reading {name}", data_sources.size_hint(source))
        for item in itertools.chain(head, items):
            read += 1
            if read % 10_000 == 0:
                progress.advance(10_000)
            if not isinstance(item, data_sources.Record):
                findings.add("unreadable", "warning", f"row not readable: {item[0]}", item[1], removed=True)
                continue
            record = item
            try:
                row = formats.normalise(record.data, use, columns)
            except formats.RowProblem as problem:
                findings.add("bad_row", "warning", f"not a {use} example: {problem}", record.origin,
                             removed=True)
                continue
            broken = rules.problem(row)
            if broken is not None:
                findings.add(broken[0], "warning", broken[1], record.origin, removed=True)
                continue
            try:
                # copied out of orjson's buffer: the bytes orjson returns keep about 4 KB of
                # memory each (measured), 4 GB at a million rows
                example = _Example(bytes(memoryview(orjson.dumps(row))), record.origin, _content_key(row))
            except orjson.JSONEncodeError:  # a lone surrogate ("\ud800" escaped in the JSON)
                findings.add("bad_row", "warning", "not valid Unicode (a lone surrogate)", record.origin,
                             removed=True)
                continue
            if data.order == "difficulty" and split != "mix":
                value = record.data.get(data.difficulty_column or "")
                try:
                    example.difficulty = float(value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    findings.add("no_difficulty", "warning",
                                 f"no number in the difficulty column {data.difficulty_column!r}",
                                 record.origin, removed=True)
                    continue
            examples.append(example)
    return examples, read


def _bucket(key: str, seed: int, salt: str = "split") -> float:
    """A stable position in [0, 1) from an example's content and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _assign(examples: list[_Example], data: DataSpec, seed: int, explicit: set[str]) -> dict[str, list]:
    """Hash-based split among the splits that have no explicit files, fractions renormalised."""
    fractions = {s: getattr(data.split, s) for s in SPLITS if s not in explicit}
    total = sum(fractions.values())
    cuts, running = [], 0.0
    for split, share in fractions.items():
        running += share / total
        cuts.append((running, split))
    parts: dict[str, list[_Example]] = {s: [] for s in SPLITS}
    for example in examples:
        b = _bucket(example.key, seed)
        parts[next((s for cut, s in cuts if b < cut), cuts[-1][1])].append(example)
    return parts


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
    try:
        parts, report = _prepare_rows(spec, forced, progress)
        _stop_if_too_few(report, forced)
        tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
        tmp.mkdir(parents=True)
        progress.stage("writing", sum(len(parts[s]) for s in SPLITS))
        for split in SPLITS:
            with (tmp / f"{split}.jsonl").open("wb") as f:
                for e in parts[split]:  # each output row made as it is written: memory stays flat
                    f.write(orjson.dumps(_output_row(e, spec.experiment.dataset)) + b"\n")
            progress.advance(len(parts[split]))
    finally:
        progress.close()
    (tmp / "report.json").write_text(report.to_json(), encoding="utf-8")
    if folder.exists() and not report_file.exists():
        shutil.rmtree(folder, ignore_errors=True)  # a half folder from another tunelab version
    try:
        tmp.replace(folder)  # whole or absent: a killed preparation leaves no half cache
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


def _prepare_rows(spec: LoadedSpec, forced: bool,
                  progress: Progress) -> tuple[dict[str, list[_Example]], DataReport]:
    exp = spec.experiment
    data = exp.dataset
    seed = exp.train.seed
    findings = Findings()
    formats_seen: dict[str, str] = {}
    rules = RowRules(data.rules)
    sources = _all_sources(spec)

    # read and normalise; explicit validation/test files override the split
    explicit = {s for s in ("validation", "test") if sources[s]}
    main, rows_read = _read(sources["train"], data.format, data.columns, data, "train", findings,
                            formats_seen, rules, progress)
    parts = _assign(main, data, seed, explicit)
    for split in explicit:
        parts[split], n = _read(sources[split], data.format, data.columns, data, split, findings,
                                formats_seen, rules, progress)
        rows_read += n
    # each row decoded as it is checked: a million decoded rows are never held at once
    inconsistent_prefix(((e.origin, e.row) for s in SPLITS for e in parts[s]), findings)
    conflicting_answers(((e.origin, e.row) for s in SPLITS for e in parts[s]), findings)

    # de-duplicate within each split, first occurrence kept
    duplicates = 0
    train_index = None
    sigs: dict[str, list[Any]] = {}
    keys: dict[str, list[bytes]] = {}
    progress.stage("finding duplicates", sum(len(parts[s]) for s in SPLITS))
    # every split in one pass: the workers start once, and a small split is not done on one core
    signed = _keys_and_signatures([e for s in SPLITS for e in parts[s]], data.dedupe == "near", progress)
    for split, (keys[split], sigs[split]) in zip(SPLITS, _per_split(parts, signed), strict=True):
        kept, removed, index = dedupe(None, data.dedupe, data.near_threshold, sigs=sigs[split],
                                      keys=keys[split])
        for m in removed:
            kind = "exact duplicate" if m.kind == "exact" else f"near duplicate (≥ {data.near_threshold:g})"
            findings.add(f"duplicate_{m.kind}", "note", f"{kind} within {split}",
                         f"{parts[split][m.index].origin} ~ {parts[split][m.of].origin}", removed=True)
        duplicates += len(removed)
        parts[split] = [parts[split][i] for i in kept]
        sigs[split] = [sigs[split][i] for i in kept]
        keys[split] = [keys[split][i] for i in kept]
        if split == "train":
            train_index = index

    # mix other sources into train, each to its fraction of the final training split
    mixed: dict[str, int] = {}
    n_main = len(parts["train"])
    share_left = 1 - sum(m.fraction for m in data.mix)
    for i, mix in enumerate(data.mix):
        extra, n = _read(sources[f"mix{i}"], mix.format, mix.columns, data, "mix", findings,
                         formats_seen, rules, progress)
        rows_read += n
        want = round(mix.fraction / share_left * n_main)
        extra.sort(key=lambda e: _bucket(e.key, seed, f"mix{i}"))
        taken = 0
        assert train_index is not None
        for e in extra:
            if taken >= want:
                break
            if data.dedupe != "none" and train_index.offer(-1, formats.content_text(e.row)):
                continue  # already in train (the mixed-in copy would only double its weight)
            parts["train"].append(e)
            taken += 1
        label = ", ".join(Path(s).name for s in sources[f"mix{i}"])
        mixed[label] = taken
        if taken < want:
            findings.once("mix_short", "warning",
                          f"{label}: {taken:,} usable rows, {want:,} wanted for a fraction of "
                          f"{mix.fraction:g}; all of them are used")

    # leakage: validation and test rows that duplicate a training row are removed from their split
    leaked = 0
    if data.dedupe != "none" and train_index is not None:
        for split in ("validation", "test"):
            found = leaks(train_index, None, range(len(keys[split])), sigs[split], keys[split])
            drop = {m.index for m in found}
            for m in found:
                findings.add("leakage", "warning", f"{split} row duplicates a training row ({m.kind})",
                             parts[split][m.index].origin, removed=True)
            parts[split] = [e for j, e in enumerate(parts[split]) if j not in drop]
            leaked += len(drop)

    # the duplicate index and signatures are done with: freed before the workers fork again
    del train_index, sigs, keys, signed

    # tokens, in the real tokenizer and template
    # only a scratch model's tokenizer is trained on the rows (a million output rows are not small)
    train_rows = [_output_row(e, data) for e in parts["train"]] if exp.base_model.scratch else []
    progress.stage("loading the tokenizer", None)  # seconds: transformers imports torch
    tokenizer = tokenizer_for(spec, train_rows)
    template = chat_render.template_text(data.template, tokenizer)
    lengths: dict[str, list[int]] = {}
    answers_split = 0  # rows whose answer the tokenizer would have merged into the prompt
    progress.stage("counting tokens", sum(len(parts[s]) for s in SPLITS))
    counted = _token_facts([e for s in SPLITS for e in parts[s]], tokenizer, template, progress)
    for split in SPLITS:  # every split in one pass, as above
        keep: list[tuple[_Example, int]] = []
        for e, facts in itertools.islice(counted, len(parts[split])):
            if isinstance(facts, str):
                findings.add("template_error", "warning", f"the chat template fails on it: {facts}",
                             e.origin, removed=True)
                continue
            _check_tokens(facts, e.origin, tokenizer, findings,
                          eos=split == "train" and len(keep) < EOS_SAMPLE)
            answers_split += facts.split_answers > 0
            n = facts.length
            if n > exp.train.max_length:
                if data.too_long == "drop":
                    findings.add("too_long", "warning",
                                 f"longer than train.max_length ({exp.train.max_length:,} tokens): dropped",
                                 e.origin, removed=True)
                    continue
                findings.add("too_long", "warning",
                             f"longer than train.max_length ({exp.train.max_length:,} tokens): "
                             "the trainer cuts the end off", e.origin)
            keep.append((e, n))
        parts[split] = [e for e, _ in keep]
        lengths[split] = [n for _, n in keep]

    # order: a stable shuffle, or a curriculum (the trainer then reads the rows in order)
    for split in SPLITS:
        pairs = list(zip(parts[split], lengths[split], strict=True))
        if split == "train" and data.order == "length":
            pairs.sort(key=lambda p: (p[1], _bucket(p[0].key, seed, "order")))
        elif split == "train" and data.order == "difficulty":
            pairs.sort(key=lambda p: (p[0].difficulty if p[0].difficulty is not None else float("inf"),
                                      _bucket(p[0].key, seed, "order")))
        else:
            pairs.sort(key=lambda p: _bucket(p[0].key, seed, "order"))
        parts[split] = [e for e, _ in pairs]
        lengths[split] = [n for _, n in pairs]

    usable = sum(len(parts[s]) for s in SPLITS) - sum(mixed.values())
    size_checks(usable, data.min_examples, forced, findings)
    if not parts["validation"]:
        findings.once("no_validation", "error",
                      "the validation split is empty: add data, enlarge split.validation, or give "
                      "data.validation files")
    all_findings = findings.all()
    report = DataReport(
        source=sources["train"][0] if sources["train"] else "",
        rows_read=rows_read,
        counts={s: len(parts[s]) for s in SPLITS},
        duplicates_removed=duplicates,
        leaked_removed=leaked,
        rows_rejected=sum(f.removed for f in all_findings
                          if not f.check.startswith(("duplicate", "leakage"))),
        sources=[s for k in sources for s in sources[k]],
        formats=formats_seen,
        template=chat_render.template_label(data.template, tokenizer),
        tokenizer=getattr(tokenizer, "name_or_path", "") or "scratch (trained on the training split)",
        max_length=exp.train.max_length,
        tokens={s: percentiles(lengths[s]) for s in SPLITS},
        mixed=mixed,
        order=data.order,
        findings=all_findings,
        answers_split=answers_split,
    )
    return parts, report


def _output_row(example: _Example, data: DataSpec) -> dict[str, Any]:
    row = example.row
    row["prompt"], row["completion"] = formats.flat(row)
    row["origin"] = example.origin
    if data.template != "auto":
        row["template"] = data.template  # model.render reads it: the trainer renders as prepared
    return row


def _per_split(parts: dict[str, list[_Example]],
               found: tuple[list[bytes], list[Any]]) -> Iterator[tuple[list[bytes], list[Any]]]:
    """The keys and signatures of all splits' examples (in SPLITS order), cut back per split."""
    at = 0
    for split in SPLITS:
        n = len(parts[split])
        yield found[0][at:at + n], found[1][at:at + n]
        at += n


def _keys_of(examples: Sequence[_Example], near: bool) -> tuple[list[bytes], list[bytes | None]]:
    return keys_and_signatures([formats.content_text(e.row) for e in examples], near)


def _keys_and_signatures(examples: list[_Example], near: bool,
                         progress: Progress) -> tuple[list[bytes], list[Any]]:
    """The exact keys and MinHash signatures of the examples, on all cores (the workers make the
    texts themselves: a million texts are never held here at once)."""
    keys: list[bytes] = []
    sigs: list[Any] = []
    for got_keys, got_sigs in parallel.chunks(functools.partial(_keys_of, near=near), examples,
                                              SIGNATURE_BATCH):
        keys.extend(got_keys)
        sigs.extend(got_sigs)
        progress.advance(len(got_keys))
    return keys, sigs


@dataclass(frozen=True)
class _TokenFacts:
    """What the preparation keeps of an example's tokens (not the tokens: they are not needed,
    and sending them back from the workers would cost more than computing them)."""

    length: int
    split_answers: int
    inexact_prompts: int
    eos: tuple[bool, bool]  # present, trained


def _facts_of(examples: Sequence[_Example], tokenizer: Any, template: str) -> list[_TokenFacts | str]:
    out: list[_TokenFacts | str] = []
    for r in chat_render.render_many([e.row for e in examples], tokenizer, template, offsets=False):
        out.append(r if isinstance(r, str) else _TokenFacts(len(r.input_ids), r.split_answers,
                                                             r.inexact_prompts,
                                                             chat_render.eos_trained(r, tokenizer)))
    return out


def _token_facts(examples: list[_Example], tokenizer: Any, template: str,
                 progress: Progress) -> Iterator[tuple[_Example, _TokenFacts | str]]:
    """Each example with its token facts (or the template's error), rendered and tokenized in
    batches on all cores."""
    work = functools.partial(_facts_of, tokenizer=tokenizer, template=template)
    start = 0
    for chunk in parallel.chunks(work, examples, RENDER_BATCH):
        yield from zip(examples[start:start + len(chunk)], chunk, strict=True)
        start += len(chunk)
        progress.advance(len(chunk))


def _check_tokens(facts: _TokenFacts, origin: str, tokenizer: Any, findings: Findings,
                  eos: bool) -> None:
    """The tokens of one example: prompts that differ from inference, and (on a sample of the
    training split) the end-of-sequence token."""
    if facts.inexact_prompts:
        findings.add("prompt_tokens", "warning",
                     "a prompt's tokens in training differ from those the model gets at inference "
                     "(the tokenizer reads an earlier answer differently inside the later prompt)", origin)
    if not eos:
        return
    present, trained = facts.eos
    token = tokenizer.eos_token
    if not present:
        findings.add("eos", "warning",
                     f"the end-of-sequence token {token!r} is missing from the rendered example: "
                     "the model will not learn to stop (endless generations)", origin)
    elif not trained:
        findings.add("eos", "warning",
                     f"the end-of-sequence token {token!r} is not trained: the model will not "
                     "learn to stop (endless generations)", origin)
