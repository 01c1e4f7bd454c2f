"""Bad rows are dropped and reported with their places; set-level checks stop or warn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import finding, jsonl, pc_rows, prepared

from tunelab.engine.data.prepare import DataRejected


def test_a_messy_file_names_its_broken_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    rows = pc_rows(120)
    lines = [json.dumps(r).encode() for r in rows]
    lines[40] = b'{"prompt": "cut off in the mid'  # broken JSON
    lines[60] = '{"prompt": "caf\u00e9", "completion": "ok"}'.encode("latin-1")  # not UTF-8
    lines[80] = b'["a list", "not an object"]'
    lines[90] = b'{"prompt": "no completion here"}'
    p = prepared(tmp_path, 'train = "messy.jsonl"', {"messy.jsonl": b"\n".join(lines) + b"\n"})
    report = p.report
    assert report.rows_read == 120
    assert finding(report, "unreadable").examples  # every kind named with its line
    places = {f.message: f.examples for f in report.findings}
    assert places["row not readable: not valid JSON"] == ["messy.jsonl:41"]
    assert places["row not readable: not UTF-8"] == ["messy.jsonl:61"]
    assert places["row not readable: not a JSON object"] == ["messy.jsonl:81"]
    bad = finding(report, "bad_row")
    assert bad.examples == ["messy.jsonl:91"] and "completion" in bad.message
    assert report.rows_rejected == 4
    assert sum(report.counts.values()) == 116  # every other row is kept


def test_a_json_array_with_a_broken_element_keeps_the_others(tmp_path: Path) -> None:
    rows = pc_rows(110)
    text = json.dumps(rows, indent=2)
    broken = text.replace(f'"prompt": {json.dumps(rows[50]["prompt"])}', '"prompt": "unterminated', 1)
    p = prepared(tmp_path, 'train = "arr.json"', {"arr.json": broken})
    bad = finding(p.report, "unreadable")
    assert bad.count == 1 and bad.examples[0].startswith("arr.json:")
    assert sum(p.report.counts.values()) == 109


def test_empty_and_short_completions_are_dropped_and_reported(tmp_path: Path) -> None:
    rows = pc_rows(120)
    rows[3]["completion"] = "   "
    rows[7]["completion"] = "ok"
    p = prepared(tmp_path, 'train = "d.jsonl"\nrules = { min_completion_chars = 3 }',
                 {"d.jsonl": jsonl(rows)})
    assert finding(p.report, "empty_completion").examples == ["d.jsonl:4"]
    short = finding(p.report, "short_completion")
    assert short.examples == ["d.jsonl:8"] and short.removed == 1
    assert sum(p.report.counts.values()) == 118


def test_the_files_own_rules_prefix_banned_words_and_lengths(tmp_path: Path) -> None:
    rows = pc_rows(130)
    for r in rows:
        r["prompt"] = "Q: " + r["prompt"]
    rows[2]["prompt"] = rows[2]["prompt"][3:]  # no prefix
    rows[4]["completion"] += " As an AI language model I cannot"
    rows[6]["completion"] = "x" * 500
    rows[8]["prompt"] = "Q: hi"
    p = prepared(tmp_path, 'train = "d.jsonl"\n[data.rules]\nprompt_prefix = "Q: "\n'
                           'banned_words = ["as an AI language model"]\nmax_completion_chars = 300\n'
                           'min_prompt_chars = 10', {"d.jsonl": jsonl(rows)})
    assert finding(p.report, "prompt_prefix").examples == ["d.jsonl:3"]
    banned = finding(p.report, "banned_word")
    assert banned.examples == ["d.jsonl:5"] and "as an ai language model" in banned.message
    assert finding(p.report, "long_completion").examples == ["d.jsonl:7"]
    assert finding(p.report, "short_prompt").examples == ["d.jsonl:9"]
    assert sum(p.report.counts.values()) == 126


def test_banned_words_match_whole_words_only(tmp_path: Path) -> None:
    rows = pc_rows(110)
    rows[0]["completion"] = "the classic answer"  # contains "ass" inside a word
    p = prepared(tmp_path, 'train = "d.jsonl"\nrules = { banned_words = ["ass"] }',
                 {"d.jsonl": jsonl(rows)})
    assert not [f for f in p.report.findings if f.check == "banned_word"]


def test_fewer_than_100_examples_stop_unless_forced(tmp_path: Path) -> None:
    files = {"d.jsonl": jsonl(pc_rows(60))}
    with pytest.raises(DataRejected, match="fewer than 100") as caught:
        prepared(tmp_path, 'train = "d.jsonl"', files)
    assert finding(caught.value.report, "few_examples").level == "error"
    forced = prepared(tmp_path, 'train = "d.jsonl"', files, force=True)
    assert finding(forced.report, "few_examples").level == "warning"
    assert sum(forced.report.counts.values()) == 60


def test_force_in_the_file_allows_few_examples(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"\nforce = true', {"d.jsonl": jsonl(pc_rows(50))})
    assert sum(p.report.counts.values()) == 50


def test_more_than_10000_examples_get_a_note(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"\ndedupe = "exact"',
                 {"d.jsonl": jsonl(pc_rows(10_050))})
    note = finding(p.report, "many_examples")
    assert note.level == "note" and "diminishing returns" in note.message


def test_rows_over_max_length_are_counted_in_real_tokens_and_dropped(tmp_path: Path) -> None:
    rows = pc_rows(120)
    rows[10]["completion"] = " ".join(["lantern"] * 80)  # about 80 tokens of the scratch tokenizer
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)},
                 extra="[train]\nmax_length = 60\n")
    too_long = finding(p.report, "too_long")
    assert too_long.examples == ["d.jsonl:11"] and too_long.removed == 1
    assert "60 tokens" in too_long.message
    assert max(s["max"] for s in p.report.tokens.values() if s) <= 60


def test_too_long_rows_can_be_kept_for_the_trainer_to_truncate(tmp_path: Path) -> None:
    rows = pc_rows(120)
    rows[10]["completion"] = " ".join(["lantern"] * 80)
    p = prepared(tmp_path, 'train = "d.jsonl"\ntoo_long = "truncate"', {"d.jsonl": jsonl(rows)},
                 extra="[train]\nmax_length = 60\n")
    assert finding(p.report, "too_long").removed == 0
    assert sum(p.report.counts.values()) == 120


def test_prompts_that_break_the_common_template_are_flagged(tmp_path: Path) -> None:
    rows = pc_rows(120)
    for i, r in enumerate(rows):
        r["prompt"] = ("Question: " if i not in (5, 9) else "") + r["prompt"]
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    odd = finding(p.report, "inconsistent_template")
    assert sorted(odd.examples) == ["d.jsonl:10", "d.jsonl:6"] and "'Question:'" in odd.message


def test_a_chat_row_that_does_not_end_with_the_assistant_is_dropped(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]} for r in pc_rows(110)]
    rows[3]["messages"].append({"role": "user", "content": "and then?"})
    rows[4]["messages"][1]["role"] = "robot"
    p = prepared(tmp_path, 'train = "c.jsonl"', {"c.jsonl": jsonl(rows)})
    assert finding(p.report, "no_answer").examples == ["c.jsonl:4"]
    assert "unknown role 'robot'" in finding(p.report, "bad_row").message


def test_the_report_counts_every_split_and_token_percentiles(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(pc_rows(500))})
    r = p.report
    assert r.rows_read == 500 and sum(r.counts.values()) == 500
    assert 340 < r.counts["train"] < 460 and r.counts["validation"] > 20 and r.counts["test"] > 20
    for split in ("train", "validation", "test"):
        stats = r.tokens[split]
        assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert r.template.startswith("plain") and r.max_length == 512
    assert not r.findings


def test_a_csv_row_that_is_not_utf8_or_has_the_wrong_width_is_named(tmp_path: Path) -> None:
    lines = ["prompt,completion"] + [f'"{r["prompt"]}","{r["completion"]}"' for r in pc_rows(110)]
    data = [line.encode() for line in lines]
    data[20] = "caf\u00e9 au lait,fine".encode("latin-1")
    data[30] = b"one,two,three"
    p = prepared(tmp_path, 'train = "d.csv"', {"d.csv": b"\r\n".join(data) + b"\r\n"})
    places = {f.message: f.examples for f in p.report.findings}
    assert places["row not readable: not UTF-8"] == ["d.csv:21"]
    assert places["row not readable: 3 columns where the header has 2"] == ["d.csv:31"]
    assert sum(p.report.counts.values()) == 108


def test_a_byte_order_mark_does_not_cost_the_first_row(tmp_path: Path) -> None:
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": b"\xef\xbb\xbf" + jsonl(pc_rows(110)).encode()})
    assert p.report.rows_rejected == 0 and sum(p.report.counts.values()) == 110


def test_the_same_prompt_with_different_answers_gets_a_note(tmp_path: Path) -> None:
    rows = pc_rows(120)
    rows.append({"prompt": rows[4]["prompt"], "completion": "another answer entirely"})
    p = prepared(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(rows)})
    note = finding(p.report, "conflicting_answers")
    assert note.level == "note" and note.examples == ["d.jsonl:121 ~ d.jsonl:5"]
    assert sum(p.report.counts.values()) == 121  # noted, not removed
