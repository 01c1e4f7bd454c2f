"""`tunelab data FILE`: the report, the preflight render, the stored report; the real Alpaca sample."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from data_helpers import finding, jsonl, pc_rows, prepared

from conftest import EXPERIMENTS, SHARED_DATA, Ran, tunelab


def _tunelab(*args: str, cwd: Path) -> Ran:
    return tunelab(*args, cwd=cwd, env={"COLUMNS": "120", "NO_COLOR": "1"})


def test_tunelab_data_prints_the_report_shows_examples_and_stores_the_report(tmp_path: Path) -> None:
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    store = tmp_path / "s.duckdb"
    done = _tunelab("data", "experiments/quickstart.toml", "--show", "2", "--store", str(store),
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1,200 read" in out and "(train / validation / test)" in out
    assert "p50" in out and "no problems found" in out
    assert out.count("EOS present and trained") == 2
    assert "⟦" in out and "</s>⟧" in out  # the answer and the EOS are marked as trained
    stored = _tunelab("sql", "--store", str(store), "--format", "json",
                      "select experiment, rows_read, train_rows, findings from data_reports",
                      cwd=tmp_path)
    rows = json.loads(stored.stdout)
    assert rows[0]["experiment"] == "quickstart" and rows[0]["rows_read"] == 1200
    # the prepared splits are where `tunelab run` looks for them
    assert list((tmp_path / "s-runs" / "quickstart" / "data").glob("*/train.jsonl"))


def test_tunelab_data_says_how_many_rows_went_turn_by_turn(tmp_path: Path) -> None:
    """The rows tokenized turn by turn (a merge across a turn's boundary) are in the report, and
    `tunelab data` says how many, beside those tokenized whole."""
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    store = tmp_path / "s.duckdb"
    done = _tunelab("data", "experiments/quickstart.toml", "--store", str(store), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stored = _tunelab("sql", "--store", str(store), "--format", "json",
                      "select report from data_reports", cwd=tmp_path)
    report = json.loads(json.loads(stored.stdout)[0]["report"])
    kept = sum(report["counts"].values())
    line = f"tokens    {kept - report['turn_by_turn']:,} rows tokenized whole · " \
           f"{report['turn_by_turn']:,} turn by turn"
    assert line in done.stdout.splitlines(), done.stdout


def test_tunelab_data_with_too_few_rows_exits_1_with_the_report_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(jsonl(pc_rows(40)))
    (tmp_path / "x.toml").write_text('name = "x"\n[model]\nscratch = { vocab_size = 200 }\n'
                                     '[data]\ntrain = "d.jsonl"\n')
    store = str(tmp_path / "s.duckdb")
    refused = _tunelab("data", "x.toml", "--store", store, cwd=tmp_path)
    assert refused.returncode == 1
    assert "40 usable examples, fewer than 100" in refused.stderr
    assert "40 read" in refused.stdout  # the report is shown before the refusal
    forced = _tunelab("data", "x.toml", "--store", store, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "warning" in forced.stdout and "fewer than 100" in forced.stdout


@pytest.mark.skipif(not (SHARED_DATA / "alpaca-102.json").exists(), reason="needs ../shared/data")
def test_the_real_alpaca_sample_is_read_and_checked(tmp_path: Path) -> None:
    shutil.copy(SHARED_DATA / "alpaca-102.json", tmp_path / "alpaca.json")
    p = prepared(tmp_path, 'train = "alpaca.json"', force=True)
    r = p.report
    assert r.formats == {"alpaca.json": "alpaca"} and r.rows_read == 102
    kept = sum(r.counts.values())
    assert kept + r.rows_rejected + r.duplicates_removed + r.leaked_removed == 102
    rows = [row for s in ("train", "validation", "test") for row in p.rows(s)]
    original = json.loads((tmp_path / "alpaca.json").read_text(encoding="utf-8"))
    with_input = next(o for o in original if o["input"].strip())
    match = next(row for row in rows if row["messages"][1]["content"] == with_input["output"])
    assert match["messages"][0]["content"] == with_input["instruction"] + "\n\n" + with_input["input"]
    if kept < 100:  # just above the floor: whatever the checks removed decides it
        assert finding(r, "few_examples").level == "warning"


def test_a_wrong_format_leads_with_the_cause_not_the_count(tmp_path: Path) -> None:
    # a prompt/completion CSV read as messages: every row is removed, and that is the news
    rows = pc_rows(150)
    with (tmp_path / "d.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "completion"])
        writer.writeheader()
        writer.writerows({"prompt": r["prompt"], "completion": r["completion"]} for r in rows)
    (tmp_path / "x.toml").write_text('name = "x"\n[model]\nscratch = { vocab_size = 200 }\n'
                                     '[data]\ntrain = "d.csv"\n')
    done = _tunelab("data", "x.toml", "--set", "data.format=messages", "--store",
                    str(tmp_path / "s.duckdb"), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = done.stderr.splitlines()[1]  # after the title
    assert message.startswith("not a messages example"), done.stderr
    assert "150 of 150 rows removed, first at d.csv:2" in message
    assert "0 usable examples" in message  # the count still follows
    findings = done.stdout[done.stdout.index("findings"):].splitlines()
    assert "not a messages example" in findings[1]  # the report lists the cause first too
