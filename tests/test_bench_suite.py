"""The benchmark suite (python -m bench) collects real bench rows into one report.

No timing is asserted: the numbers are for people; what is checked is that a real bench runs in
its own process, hands back its rows, and that the report has the table, the machine, the
versions and a verdict per row, with the GPU check's section kept across rewrites.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.suite import BenchResult, run_bench, run_suite  # noqa: E402

TINY_STORE = ["--trials", "12", "--ingest-rows", "2000", "--repeat", "2"]


@pytest.mark.slow  # the store benchmark in its own process, as test_store_bench runs it
def test_the_suite_runs_the_store_bench_and_writes_a_table_with_a_verdict_per_row(
        tmp_path: Path) -> None:
    results = run_suite(["store"], quick=True, timeout=300, extra={"store": TINY_STORE},
                        echo=False)
    assert [r.name for r in results] == ["store"]
    assert results[0].status == "ok", results[0].status
    figures = [row["figure"] for row in results[0].rows]
    assert any("store ingest" in f for f in figures)
    assert any("list_trials" in f for f in figures)
    assert all(row["tunelab"] > 0 and row["plain"] > 0 for row in results[0].rows)

    out = tmp_path / "benchmarks.md"
    report.write(out, results, quick=True)
    text = out.read_text()
    assert "## Machine" in text and "cores:" in text
    for package in ("python", "torch", "transformers", "trl", "peft", "optuna", "duckdb",
                    "textual"):
        assert f"{package} " in text.split("## Versions", 1)[1]
    table = [line for line in text.splitlines() if line.startswith("| store |")]
    assert len(table) == len(figures)
    assert all(line.rstrip(" |").endswith(("met", "not met", "no target")) for line in table)
    assert "measured under load" in text.lower()


def test_a_bench_without_json_is_listed_as_not_wired_and_a_broken_one_as_failed(
        tmp_path: Path) -> None:
    old = tmp_path / "bench_old.py"
    old.write_text("print('a table for people')\n")
    broken = tmp_path / "bench_broken.py"
    broken.write_text('import sys\nassert "--json" in sys.argv\nraise SystemExit("no data here")\n')
    assert run_bench("old", old, quick=True, timeout=60).status == "not wired"
    failed = run_bench("broken", broken, quick=True, timeout=60)
    assert failed.status == "failed: no data here"

    text = "\n".join(report.table([BenchResult("old", "not wired"), failed]))
    assert "| old | — | — | — | — | — | not wired |" in text
    assert "failed: no data here" in text


def test_rewriting_the_report_keeps_the_gpu_checks_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    report.write(out, [BenchResult("old", "not wired")], quick=True)
    report.replace_gpu_section(out, "## GPU check\n\nfull bf16: 12,345 tokens/s")
    report.write(out, [BenchResult("other", "not wired")], quick=True)
    text = out.read_text()
    assert "full bf16: 12,345 tokens/s" in text and "| other |" in text
    assert text.count(report.GPU_BEGIN) == 1


def test_rewriting_the_report_keeps_the_trial_profile_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    report.write(out, [BenchResult("old", "not wired")], quick=True)
    assert "python bench/profile_trial.py --write" in out.read_text()  # the place is shown
    report.replace_section(out, report.PROFILE_BEGIN, report.PROFILE_END,
                           "| forward | 1.23 | 40% |")
    report.replace_gpu_section(out, "## GPU check\n\nfull bf16: 12,345 tokens/s")
    report.write(out, [BenchResult("other", "not wired")], quick=True)
    text = out.read_text()
    assert "| forward | 1.23 | 40% |" in text and "full bf16: 12,345 tokens/s" in text
    assert text.count(report.PROFILE_BEGIN) == 1 and "| other |" in text


@pytest.mark.slow  # the review benchmark in its own process: seconds
def test_the_review_bench_is_wired_and_writes_a_row_with_a_verdict() -> None:
    script = ROOT / "bench" / "bench_review.py"
    result = run_bench("review", script, quick=True, timeout=300,
                       extra=["--seeds", "1", "--prompts", "300", "--models", "3"])
    assert result.status == "ok", result.status
    (row,) = result.rows
    assert "3 models" in str(row["figure"]) and row["unit"] == "votes"
    assert row["target"] and isinstance(row["met"], bool)
    assert 0 < row["tunelab"] <= 300 and 0 < row["plain"] <= 300
