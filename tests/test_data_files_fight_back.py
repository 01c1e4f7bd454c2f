"""Data files that fight back: binary garbage, other encodings, broken JSON, ragged CSV, empty
files. A file that cannot be data is refused whole with one DataError line; a file with some bad
records keeps the others and names each bad one by its line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from data_helpers import pc_rows

from tunelab.engine.data.sources import read_source
from tunelab.engine.errors import DataError

from conftest import tunelab


def _lines(n: int) -> list[bytes]:
    return [json.dumps(r).encode() for r in pc_rows(n)]


@pytest.mark.parametrize("name", ["train.jsonl", "train.json", "train.csv", "train.tsv"])
def test_binary_garbage_is_refused_with_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(os.urandom(20_000))
    with pytest.raises(DataError) as found:
        read_source(str(path))
    assert str(found.value) == (f"{path}: not a text file (binary data in its first bytes); "
                                f"expected {name.split('.')[1]} text: is it the right file?")


def test_a_utf16_file_is_refused_with_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(line.decode() + "\n" for line in _lines(5)), encoding="utf-16")
    with pytest.raises(DataError, match=r"UTF-16 text; save it as UTF-8 \(iconv"):
        read_source(str(path))


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
@pytest.mark.parametrize("name", ["train.jsonl", "train.json", "train.csv"])
def test_an_empty_file_is_refused_with_one_line(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"the file is empty; expected \w+ records$"):
        read_source(str(path))


def test_mixed_encodings_name_each_line_that_is_not_utf8_and_keep_the_rest(tmp_path: Path) -> None:
    lines = []
    for i in range(90):
        text = json.dumps({"prompt": f"café {i}", "completion": f"crème {i}"}, ensure_ascii=False)
        lines.append(text.encode("latin-1" if i % 3 == 0 else "utf-8"))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_source(str(path))
    assert len(read.records) == 60
    assert read.problems == [("not UTF-8", f"mixed.jsonl:{i + 1}") for i in range(0, 90, 3)]
    assert read.records[0].data == {"prompt": "café 1", "completion": "crème 1"}


def test_json_lines_broken_in_the_middle_keep_both_ends(tmp_path: Path) -> None:
    lines = _lines(100)
    lines[49] = lines[49][: len(lines[49]) // 2]  # a write cut short, then more lines appended
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_source(str(path))
    assert read.problems == [("not valid JSON", "train.jsonl:50")]
    assert len(read.records) == 99 and read.records[-1].origin == "train.jsonl:100"


def test_a_json_array_cut_in_the_middle_keeps_what_came_before(tmp_path: Path) -> None:
    text = json.dumps(pc_rows(40), indent=1)
    path = tmp_path / "train.json"
    path.write_text(text[: len(text) // 2])  # no closing bracket: the disk filled up
    read = read_source(str(path))
    assert 15 <= len(read.records) < 40
    assert [reason for reason, _ in read.problems] == ["not valid JSON"]


def test_ragged_csv_rows_are_named_by_line_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('prompt,completion\n"a","b"\n"c"\n"d","e","f"\n"g","h"\n"multi\nline","i"\n')
    read = read_source(str(path))
    assert [r.data for r in read.records] == [
        {"prompt": "a", "completion": "b"}, {"prompt": "g", "completion": "h"},
        {"prompt": "multi\nline", "completion": "i"}]
    assert read.problems == [("1 columns where the header has 2", "train.csv:3"),
                             ("3 columns where the header has 2", "train.csv:4")]


def test_tunelab_data_on_garbage_says_so_in_one_line_and_stores_nothing(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_bytes(os.urandom(20_000))
    (tmp_path / "x.toml").write_text(
        'name = "x"\n[model]\nscratch = { hidden_size = 64, layers = 2, heads = 4 }\n'
        '[data]\ntrain = "train.jsonl"\n')
    done = tunelab("data", "x.toml", "--store", "s.duckdb", cwd=tmp_path)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, said
    assert said.startswith("data error ") and "not a text file" in said, said
    assert "Traceback" not in said
    assert not (tmp_path / "s.duckdb").exists()


def test_a_lone_surrogate_costs_its_row_not_the_preparation(tmp_path: Path) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800"); such a string cannot be written as UTF-8,
    so the row is removed and named instead of the preparation failing when it writes."""
    from data_helpers import finding, prepared

    lines = _lines(120)
    lines[7] = b'{"prompt": "What is \\ud800 here?", "completion": "a broken character"}'
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": b"\n".join(lines) + b"\n"})
    bad = finding(p.report, "bad_row")
    assert bad.removed == 1 and bad.examples == ["d.jsonl:8"] and "lone surrogate" in bad.message
    assert p.report.rows_read == 120 and sum(p.report.counts.values()) == 119


@pytest.mark.parametrize("line", [6, 901])
def test_a_nul_byte_costs_its_row_wherever_it_is(tmp_path: Path, line: int) -> None:
    """On line 6 of 1,200 valid lines the whole file was refused as "binary data in its first
    bytes"; on line 901 it was one bad row. Judged by the rows, both are one bad row."""
    lines = _lines(1200)
    lines[line - 1] = lines[line - 1][:12] + b"\x00\x00" + lines[line - 1][12:]
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_source(str(path))
    assert read.problems == [("binary data (a NUL byte)", f"train.jsonl:{line}")]
    assert len(read.records) == 1199


def test_a_csv_row_with_a_nul_byte_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('prompt,completion\n"a","b"\n"c\x00","d"\n"e","f"\n')
    read = read_source(str(path))
    assert [r.data["prompt"] for r in read.records] == ["a", "e"]
    assert read.problems == [("binary data (a NUL byte)", "train.csv:3")]


def test_a_huge_row_is_skipped_unread_and_named_by_its_line(tmp_path: Path) -> None:
    """One 50 MB line among 1,200 rows: `tunelab data` printed nothing for 300+ s at 2.1 GB.
    The row is now read past in pieces: never held whole (Python's allocations stay far below
    the row's size) and named by its line."""
    import tracemalloc

    lines = _lines(1200)
    lines[600] = b'{"prompt": "' + b"x" * 20_000_000 + b'", "completion": "y"}'
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    tracemalloc.start()
    try:
        read = read_source(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read.problems == [("a row of 20.0 MB, larger than data.max_row_bytes (1,000,000 bytes): "
                              "skipped unread", "train.jsonl:601")]
    assert len(read.records) == 1199 and read.records[600].origin == "train.jsonl:602"
    assert peak < 5_000_000, peak


def test_a_huge_csv_field_costs_its_row_not_the_file(tmp_path: Path) -> None:
    """A field over the csv module's limit (128 KiB) ended the read in a traceback."""
    path = tmp_path / "train.csv"
    path.write_text(f'prompt,completion\n"a","b"\n"{"x" * 2_000_000}","c"\n"d","e"\n')
    read = read_source(str(path))
    assert [r.data["prompt"] for r in read.records] == ["a", "d"]
    assert [(reason.split(":")[0][:7], where) for reason, where in read.problems] == [
        ("a field", "train.csv:3")]


def test_the_row_size_cap_is_a_setting(tmp_path: Path) -> None:
    """data.max_row_bytes: the default skips a 2 MB row, a larger cap reads it; at its default
    the key is left out of the dump, so an existing study keeps its spec hash."""
    from data_helpers import experiment, finding, prepared

    lines = _lines(120)
    lines[3] = json.dumps({"prompt": "long " * 400_000, "completion": "z"}).encode()
    files = {"d.jsonl": b"\n".join(lines) + b"\n"}
    spec = experiment(tmp_path, 'train = "d.jsonl"', files)
    assert "max_row_bytes" not in spec.experiment.model_dump(mode="json")["data"]
    skipped = prepared(tmp_path, 'train = "d.jsonl"', files, force=True)
    assert "larger than data.max_row_bytes" in finding(skipped.report, "unreadable").message
    kept = prepared(tmp_path, 'train = "d.jsonl"\nmax_row_bytes = 4_000_000', files, force=True)
    assert all(f.check != "unreadable" for f in kept.report.findings)
    assert finding(kept.report, "too_long").examples == ["d.jsonl:4"]  # read, then too long


def test_an_effective_batch_larger_than_the_training_split_is_said(tmp_path: Path) -> None:
    """`train.batch_size = 1000000` "completed" after one optimizer step without a word."""
    (tmp_path / "d.jsonl").write_bytes(b"\n".join(_lines(150)) + b"\n")
    (tmp_path / "x.toml").write_text(
        'name = "x"\n[model]\nscratch = { hidden_size = 32, layers = 1, heads = 2 }\n'
        '[data]\ntrain = "d.jsonl"\n[train]\nbatch_size = 1000000\n')
    done = tunelab("data", "x.toml", "--store", "s.duckdb", cwd=tmp_path)
    said = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stderr
    assert "warning: train.batch_size 1,000,000 is larger than the training split (123 " \
           "examples): each epoch is one optimizer step on all of them" in said, said
