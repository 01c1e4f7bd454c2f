"""Reading the records of a data source: JSON lines, a JSON array, CSV, Parquet, a folder saved by
`datasets` (`save_to_disk`), or a hub data set (`hub:owner/name?split=train&config=…&revision=…`).

A record that cannot be read (not UTF-8, not JSON, not an object, a CSV row of the wrong width,
binary data, a row larger than `data.max_row_bytes`) is reported by its place in the file,
`file.jsonl:17`, and the rest of the file is still read: a file is refused whole only when it is
not text at all. Each source also has a digest of its content, so that a changed file changes
the fingerprint.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tunelab.engine.errors import DataError
from tunelab.engine.spec.sections import MAX_ROW_BYTES

# a row larger than data.max_row_bytes is reported and skipped, never parsed: one 50 MB line
# among normal rows held 2 GB and minutes of tokenizing

FILE_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet"}


@dataclass(frozen=True)
class Record:
    origin: str  # where the record is: "train.jsonl:17", "data.parquet#3", "hub:x/y#12"
    data: dict[str, Any]


@dataclass
class SourceRead:
    name: str
    records: list[Record] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, origin)


def expand(text: str, folder: Path) -> list[str]:
    """A source as written in the file -> hub ids and absolute paths (glob patterns expanded)."""
    if text.startswith("hub:"):
        return [text]
    path = Path(text).expanduser()
    path = path if path.is_absolute() else folder / path
    if any(c in text for c in "*?["):
        found = sorted(glob.glob(str(path), recursive=True))
        if not found:
            raise DataError(f"{text}: no file matches this pattern")
        return found
    return [str(path)]


def _hub_parts(text: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(text.removeprefix("hub:"))
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"split", "config", "revision"}
    if unknown:
        raise DataError(f"{text}: unknown option(s) {sorted(unknown)}; expected split, config, revision")
    return parts.path, options


def digest(source: str) -> str:
    """A digest of a source's content: the bytes of a file or a folder's files, a hub revision."""
    h = hashlib.sha256()
    if source.startswith("hub:"):
        name, options = _hub_parts(source)
        # the hub data set's own fingerprint (datasets hashes the downloaded files)
        h.update(f"{name}|{json.dumps(options, sort_keys=True)}|{_load_hub(source)._fingerprint}".encode())
        return h.hexdigest()
    path = Path(source)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(file.relative_to(path)).encode() + b"\0")
            _hash_file(h, file)
    else:
        _hash_file(h, path)
    return h.hexdigest()


def _hash_file(h: Any, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


def _too_big(size: int, cap: int) -> str:
    return (f"a row of {size / 1e6:,.1f} MB, larger than data.max_row_bytes ({cap:,} bytes): "
            "skipped unread")


def read_source(source: str, split: str = "train", max_row_bytes: int = MAX_ROW_BYTES) -> SourceRead:
    """Every readable record of one source; unreadable ones are listed in `problems`."""
    if source.startswith("hub:"):
        dataset = _load_hub(source)
        return SourceRead(source, [Record(f"{source}#{i}", dict(r)) for i, r in enumerate(dataset)])
    path = Path(source)
    if path.is_dir():
        return _read_saved_folder(path, split)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown kind of file; expected one of "
                        f"{', '.join(sorted(FILE_KINDS))} or a folder saved by datasets")
    if kind != "parquet":
        _check_text(path, kind)
    if kind == "jsonl":
        return _read_jsonl(path, max_row_bytes)
    if kind in ("csv", "tsv"):
        return _read_csv(path, max_row_bytes)
    # an array or a Parquet file is read whole; its records over the cap are then skipped
    return _capped(_read_json(path) if kind == "json" else _read_parquet(path), max_row_bytes)


def _capped(got: SourceRead, cap: int) -> SourceRead:
    """Records read whole (a JSON array, Parquet) over the cap become problems too."""
    kept = SourceRead(got.name, problems=got.problems)
    for record in got.records:
        size = len(orjson.dumps(record.data, default=str))
        if size > cap:
            kept.problems.append((_too_big(size, cap), record.origin))
        else:
            kept.records.append(record)
    return kept


def _binary(line: bytes) -> bool:
    return b"\0" in line or line.decode("utf-8", errors="replace").count("\ufffd") > len(line) // 10


def _check_text(path: Path, kind: str) -> None:
    """An empty file, or one that is not UTF-8 text at all, is refused whole with one line that
    says why: listing every record as unreadable would bury the cause under a count. Judged by
    the lines of its first 8 KiB: a text file with a few binary rows (a NUL on line 6 of 1,200)
    is text, and those rows are each reported where they are."""
    with path.open("rb") as f:
        head = f.read(8192)
    if not head.strip() and path.stat().st_size <= len(head):
        raise DataError(f"{path}: the file is empty; expected {kind} records")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: the file is UTF-16 text; save it as UTF-8 "
                        f"(iconv -f utf-16 -t utf-8 {path.name})")
    lines = head.split(b"\n")
    whole = lines[:-1] if len(lines) > 1 and len(head) == 8192 else lines  # the last may be cut
    lines = [line for line in whole if line.strip()] or [head]
    if sum(map(_binary, lines)) * 2 > len(lines):
        raise DataError(f"{path}: not a text file (binary data in its first bytes); expected "
                        f"{kind} text: is it the right file?")


def stream_records(source: str, split: str = "train", max_row_bytes: int = MAX_ROW_BYTES
                   ) -> tuple[str, Iterator[Record | tuple[str, str]]]:
    """(the source's name, its records and its unreadable rows as (reason, origin), in order).

    JSON lines are read one line at a time, so a million rows never sit in memory as records all
    at once; the other kinds are read whole (see read_source)."""
    path = Path(source)
    if not source.startswith("hub:") and path.suffix.lower() in (".jsonl", ".ndjson") and path.is_file():
        _check_text(path, "jsonl")  # an empty, binary or UTF-16 file is refused whole here too
        return path.name, _iter_jsonl(path, max_row_bytes)
    got = read_source(source, split, max_row_bytes)
    return got.name, itertools.chain(got.problems, got.records)


def size_hint(source: str) -> int | None:
    """About how many records a source has, for a progress bar: the lines of a JSON lines file
    (counted in bytes, a fraction of parsing them), else None (unknown)."""
    path = Path(source)
    if source.startswith("hub:") or path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file():
        return None
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            lines += chunk.count(b"\n")
    return lines


def _read_jsonl(path: Path, max_row_bytes: int = MAX_ROW_BYTES) -> SourceRead:
    out = SourceRead(path.name)
    for item in _iter_jsonl(path, max_row_bytes):
        if isinstance(item, Record):
            out.records.append(item)
        else:
            out.problems.append(item)
    return out


def _iter_jsonl(path: Path, max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[Record | tuple[str, str]]:
    with path.open("rb") as f:
        for number, (raw, size) in enumerate(_lines(f, max_row_bytes), start=1):
            origin = f"{path.name}:{number}"
            item = _json_line(raw, origin) if raw is not None else (_too_big(size, max_row_bytes),
                                                                    origin)
            if item is not None:
                yield item


def _lines(f: Any, cap: int) -> Iterator[tuple[bytes | None, int]]:
    """(the line, its size) of a binary file, a line longer than `cap` as (None, its size):
    read past in pieces, never held whole."""
    while line := f.readline(cap + 1):
        if len(line) <= cap or line.endswith(b"\n"):
            yield line, len(line)
            continue
        size = len(line)
        while (piece := f.readline(1 << 20)) and not piece.endswith(b"\n"):
            size += len(piece)
        yield None, size + len(piece)


def _json_line(raw: bytes, origin: str) -> Record | tuple[str, str] | None:
    """The record on a line, the reason it cannot be read, or None for a blank line."""
    if not raw.strip():
        return None
    if b"\0" in raw:  # never in JSON text: binary data in this row (the file is text, _check_text)
        return ("binary data (a NUL byte)", origin)
    try:
        record = orjson.loads(raw)  # several times faster than json; strict UTF-8
    except orjson.JSONDecodeError:  # bad bytes, bad JSON or a BOM: the slow path tells which
        try:
            record = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))  # a BOM on the first line
        except UnicodeDecodeError:
            return ("not UTF-8", origin)
        except json.JSONDecodeError:
            return ("not valid JSON", origin)
    if not isinstance(record, dict):
        return ("not a JSON object", origin)
    return Record(origin, record)


def _read_json(path: Path) -> SourceRead:
    """A JSON array of objects (or {"data": [...]}); JSON lines saved as .json are read as such.

    A broken element of an array is skipped up to the next line that opens an object, so
    one bad record costs that record, not the file."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return _read_jsonl(path)  # line by line, so the bad lines are named
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return _read_jsonl(path)
        lists = [v for v in whole.values() if isinstance(v, list)] if isinstance(whole, dict) else []
        if len(lists) == 1:
            text = json.dumps(lists[0])
        else:
            return _read_jsonl(path)
    if not text.lstrip().startswith("["):
        raise DataError(f"{path}: expected a JSON array of objects or JSON lines")
    out = SourceRead(path.name)
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    index = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        line = text.count("\n", 0, pos) + 1
        origin = f"{path.name}:{line}"
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            out.problems.append(("not valid JSON", origin))
            nxt = text.find("\n", pos)
            while nxt != -1 and not text[nxt + 1:].lstrip(" \t").startswith("{"):
                nxt = text.find("\n", nxt + 1)
            if nxt == -1:
                break
            pos = nxt + 1
            index += 1
            continue
        if isinstance(value, dict):
            out.records.append(Record(origin, value))
        else:
            out.problems.append(("not a JSON object", origin))
        index += 1
    return out


def _read_csv(path: Path, max_row_bytes: int = MAX_ROW_BYTES) -> SourceRead:
    out = SourceRead(path.name)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(max(max_row_bytes, 1 << 17))  # a larger field fails its row only
    # surrogateescape keeps undecodable bytes as markers, so the row they sit in can be named
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return out
        header = [h.lstrip("\ufeff").strip() for h in header]
        line = reader.line_num
        while True:
            origin = f"{path.name}:{line + 1}"
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                out.problems.append((f"a field larger than data.max_row_bytes ({max_row_bytes:,} "
                                     "bytes): skipped", origin))
                line = reader.line_num
                continue
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            size = sum(len(cell) for cell in row)
            if size > max_row_bytes:
                out.problems.append((_too_big(size, max_row_bytes), origin))
            elif any("\0" in cell for cell in row):
                out.problems.append(("binary data (a NUL byte)", origin))
            elif any(_has_surrogates(cell) for cell in row):
                out.problems.append(("not UTF-8", origin))
            elif len(row) != len(header):
                out.problems.append((f"{len(row)} columns where the header has {len(header)}", origin))
            else:
                out.records.append(Record(origin, dict(zip(header, row, strict=True))))
    return out


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _read_parquet(path: Path) -> SourceRead:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise DataError(f"{path}: cannot read this Parquet file: {error}") from None
    return SourceRead(path.name, [Record(f"{path.name}#{i + 1}", r) for i, r in enumerate(rows)])


def _read_saved_folder(path: Path, split: str) -> SourceRead:
    from datasets import DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except FileNotFoundError as error:
        raise DataError(f"{path}: not a folder saved by datasets (save_to_disk): {error}") from None
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise DataError(f"{path}: no {split!r} split; it has {', '.join(loaded)}")
        loaded = loaded[split]
    return SourceRead(path.name, [Record(f"{path.name}#{i + 1}", dict(r)) for i, r in enumerate(loaded)])


def _load_hub(source: str) -> Any:
    from datasets import load_dataset

    name, options = _hub_parts(source)
    try:
        return load_dataset(name, options.get("config"), split=options.get("split", "train"),
                            revision=options.get("revision"))
    except Exception as error:  # noqa: BLE001 - network, missing data set, bad split: all user-facing
        raise DataError(f"{source}: cannot load this hub data set: {error}") from None

