"""Each format and each kind of source becomes the same internal form."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from data_helpers import jsonl, pc_rows, prepared, sentence

from tunelab.engine.errors import DataError


def _all_rows(p) -> list[dict]:
    return [r for s in ("train", "validation", "test") for r in p.rows(s)]


def test_prompt_completion_rows_become_a_user_and_an_assistant_turn(tmp_path: Path) -> None:
    rows = pc_rows(120)
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    assert sum(p.report.counts.values()) == 120
    assert p.report.formats == {"d.jsonl": "prompt_completion"}
    row = next(r for r in _all_rows(p) if r["prompt"] == rows[0]["prompt"])
    assert row["messages"] == [{"role": "user", "content": rows[0]["prompt"]},
                               {"role": "assistant", "content": rows[0]["completion"]}]
    assert row["completion"] == rows[0]["completion"] and row["origin"] == "d.jsonl:1"


def _chat_rows(n: int) -> list[dict]:
    rng = random.Random(1)
    return [{"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"U{i} " + sentence(rng)},
        {"role": "assistant", "content": sentence(rng)},
        {"role": "user", "content": sentence(rng)},
        {"role": "assistant", "content": sentence(rng)}]} for i in range(n)]


def test_openai_messages_keep_the_system_prompt_and_every_turn(tmp_path: Path) -> None:
    rows = _chat_rows(110)
    p = prepared(tmp_path, 'train = "chat.jsonl"', {"chat.jsonl": jsonl(rows)})
    assert p.report.formats == {"chat.jsonl": "messages"}
    out = {r["messages"][1]["content"]: r for r in _all_rows(p)}
    first = out[rows[0]["messages"][1]["content"]]
    assert first["messages"] == rows[0]["messages"]
    assert first["completion"] == rows[0]["messages"][-1]["content"]  # the last trained turn


def test_alpaca_input_is_joined_to_the_instruction(tmp_path: Path) -> None:
    rng = random.Random(2)
    rows = [{"instruction": f"I{i} " + sentence(rng), "input": sentence(rng) if i % 2 else "",
             "output": sentence(rng)} for i in range(110)]
    p = prepared(tmp_path, 'train = "a.json"', {"a.json": json.dumps(rows, indent=2)})
    assert p.report.formats == {"a.json": "alpaca"}
    by_first = {r["messages"][0]["content"].split()[0]: r for r in _all_rows(p)}
    assert by_first["I0"]["messages"][0]["content"] == rows[0]["instruction"]
    assert by_first["I1"]["messages"][0]["content"] == rows[1]["instruction"] + "\n\n" + rows[1]["input"]
    assert by_first["I1"]["messages"][1] == {"role": "assistant", "content": rows[1]["output"]}


def test_sharegpt_speakers_become_roles(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [{"conversations": [{"from": "system", "value": "Be kind."},
                               {"from": "human", "value": f"H{i} " + sentence(rng)},
                               {"from": "gpt", "value": sentence(rng)}]} for i in range(110)]
    p = prepared(tmp_path, 'train = "s.jsonl"', {"s.jsonl": jsonl(rows)})
    assert p.report.formats == {"s.jsonl": "sharegpt"}
    assert [m["role"] for m in p.rows("train")[0]["messages"]] == ["system", "user", "assistant"]


def test_plain_text_rows_are_kept_as_text(tmp_path: Path) -> None:
    rng = random.Random(4)
    rows = [{"text": f"T{i} " + sentence(rng, 20)} for i in range(110)]
    p = prepared(tmp_path, 'train = "t.jsonl"', {"t.jsonl": jsonl(rows)})
    assert p.report.formats == {"t.jsonl": "text"}
    assert all(set(r) >= {"text", "origin"} and "messages" not in r for r in p.rows("train"))


def test_columns_map_other_field_names(tmp_path: Path) -> None:
    rows = [{"question": r["prompt"], "answer": r["completion"], "persona": "a pirate"}
            for r in pc_rows(110)]
    p = prepared(tmp_path, 'train = "q.jsonl"\nformat = "prompt_completion"\n'
                           'columns = { prompt = "question", completion = "answer", system = "persona" }',
                 {"q.jsonl": jsonl(rows)})
    row = p.rows("train")[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][0]["content"] == "a pirate"


def test_a_file_of_no_known_format_is_a_clear_error(tmp_path: Path) -> None:
    rows = [{"foo": i, "bar": "x"} for i in range(110)]
    with pytest.raises(DataError, match="cannot tell the format"):
        prepared(tmp_path, 'train = "x.jsonl"', {"x.jsonl": jsonl(rows)})


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "completion"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("kind", ["csv", "parquet", "json", "saved"])
def test_each_kind_of_source_file_is_read(tmp_path: Path, kind: str) -> None:
    rows = pc_rows(110)
    rows[5]["completion"] = "line one,\n\"quoted\" line two"  # commas, quotes, newlines survive
    if kind == "csv":
        _write_csv(tmp_path / "d.csv", rows)
        name = "d.csv"
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
        name = "d.parquet"
    elif kind == "json":
        (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
        name = "d.json"
    else:
        from datasets import Dataset, DatasetDict

        DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
        name = "saved"
    p = prepared(tmp_path, f'train = "{name}"')
    assert sum(p.report.counts.values()) == 110 and p.report.rows_rejected == 0
    assert any(r["completion"] == rows[5]["completion"] for s in ("train", "validation", "test")
               for r in p.rows(s))


def test_several_files_per_split_and_explicit_validation_files(tmp_path: Path) -> None:
    files = {"a.jsonl": jsonl(pc_rows(60, seed=1)), "b.jsonl": jsonl(pc_rows(60, seed=2)),
             "val.jsonl": jsonl(pc_rows(15, seed=3))}
    p = prepared(tmp_path, 'train = ["a.jsonl", "b.jsonl"]\nvalidation = "val.jsonl"', files)
    assert p.report.counts["validation"] == 15
    assert {r["origin"].split(":")[0] for r in p.rows("validation")} == {"val.jsonl"}
    # the training files are split between train and test only (80:10, renormalised)
    assert p.report.counts["train"] + p.report.counts["test"] == 120
    assert 0 < p.report.counts["test"] < 30


def test_a_glob_pattern_names_several_files(tmp_path: Path) -> None:
    files = {f"parts/p{i}.jsonl": jsonl(pc_rows(40, seed=i)) for i in range(3)}
    p = prepared(tmp_path, 'train = "parts/*.jsonl"', files)
    assert p.report.rows_read == 120 and len(p.report.formats) == 3


def test_hub_ids_are_loaded_through_datasets(tmp_path: Path) -> None:
    # offline in tests: the real loading code runs and its failure is a clear data error
    with pytest.raises(DataError, match="cannot load this hub data set"):
        prepared(tmp_path, 'train = "hub:tunelab-test/does-not-exist?split=train"')

