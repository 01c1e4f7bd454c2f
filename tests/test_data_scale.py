"""Preparation at scale: the same result on all cores as on one, progress on a terminal."""

from __future__ import annotations

import io
import multiprocessing
import os
from pathlib import Path

import pytest
from data_helpers import experiment, jsonl, pc_rows

from tunelab.engine.data import parallel
from tunelab.engine.data.prepare import prepare
from tunelab.engine.data.progress import Progress


def _pid_of_chunk(items: list[int]) -> list[int]:
    return [os.getpid()] * len(items)


@pytest.mark.skipif(parallel.cores() < 2, reason="needs two cores")
def test_chunks_run_in_several_processes_and_come_back_in_order(monkeypatch) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)
    squares = [x for chunk in parallel.chunks(lambda xs: [x * x for x in xs], list(range(1000)), 7)
               for x in chunk]
    assert squares == [x * x for x in range(1000)]
    pids, workers = set(), 0
    for chunk in parallel.chunks(_pid_of_chunk, list(range(400)), 10):
        pids |= set(chunk)
        workers = max(workers, len(multiprocessing.active_children()))
    assert workers == min(parallel.cores(), 40) and os.getpid() not in pids


def test_small_inputs_stay_in_this_process() -> None:
    pids = {p for chunk in parallel.chunks(_pid_of_chunk, list(range(400)), 10) for p in chunk}
    assert pids == {os.getpid()}


@pytest.mark.skipif(parallel.cores() < 2, reason="needs two cores")
def test_a_preparation_on_all_cores_writes_what_one_core_writes(tmp_path: Path, monkeypatch) -> None:
    rows = pc_rows(600)
    rows += [dict(r) for r in rows[:30]]  # exact duplicates
    rows += [{"prompt": r["prompt"], "completion": r["completion"] + " x"} for r in rows[30:60]]
    # and 10 other answers to earlier prompts: with the 30 above, 40 conflicting answers
    rows += [{"prompt": r["prompt"], "completion": "another answer altogether"} for r in rows[100:110]]
    files = {"d.jsonl": jsonl(rows)}
    one = prepare(experiment(tmp_path, 'train = "d.jsonl"\ndedupe = "near"', files), tmp_path / "one")
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)
    for module in ("spill", "passes"):  # rows a batch: many tasks for the workers
        monkeypatch.setattr(f"tunelab.engine.data.{module}.BATCH", 50)
    many = prepare(experiment(tmp_path, 'train = "d.jsonl"\ndedupe = "near"', files), tmp_path / "many")
    assert one.report.duplicates_removed >= 30
    assert [f.count for f in one.report.findings if f.check == "conflicting_answers"] == [40]
    assert many.report.to_json() == one.report.to_json()
    for split in ("train", "validation", "test"):
        assert many.files[split].read_bytes() == one.files[split].read_bytes()


def _terminal() -> tuple[object, io.StringIO]:
    from rich.console import Console

    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_progress_shows_the_stage_rows_and_rate_once_it_takes_two_seconds() -> None:
    console, out = _terminal()
    progress = Progress(show=True, console=console)
    progress.stage("counting tokens", 1000)
    progress.advance(500)
    assert out.getvalue() == ""  # a short preparation prints nothing
    progress.started -= 3  # as if it had been running for three seconds
    progress._stage_started -= 1
    progress.stage("counting tokens", 1000)
    progress._stage_started -= 1
    progress._drawn -= 1  # past the redraw interval
    progress.advance(400)
    progress.close()
    shown = out.getvalue()
    assert "counting tokens" in shown and "400/1000" in shown and "rows/s" in shown


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path, capsys) -> None:
    prepare(experiment(tmp_path, 'train = "d.jsonl"', {"d.jsonl": jsonl(pc_rows(150))}),
            tmp_path / "cache", progress=Progress(show=False))
    assert Progress.terminal().show is False  # pytest's stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_progress_on_an_80_column_terminal_shows_whole_counts_and_each_stage_its_own_rate() -> None:
    """Seen running `tunelab data` on 100,000 rows in an 80-column terminal: the counts were cut
    to "5000/963…", a new stage showed the previous stage's rate until it had its own, and a
    stage of unknown length the previous stage's total."""
    from rich.console import Console

    out = io.StringIO()
    progress = Progress(show=True, console=Console(file=out, force_terminal=True, width=80))
    progress.started -= 3
    progress.stage("finding duplicates", 100_000)
    progress._stage_started -= 1
    progress._drawn -= 1  # past the redraw interval
    progress.advance(100_000)  # 100,000 rows/s
    progress.stage("loading the tokenizer", None)  # a stage of unknown length
    progress.stage("counting tokens", 96_350)
    progress.close()
    last = out.getvalue().replace("\r", "\n").split("\n")
    drawn = [line for line in last if "counting tokens" in line][-1]
    assert "0/96350" in drawn and "rows/s" not in drawn
    assert any("100000/100000" in line for line in last)
    assert not any("/100000" in line for line in last if "tokenizer" in line)


def _base_model_experiment(tmp_path: Path, rows: list[dict[str, object]]) -> object:
    from test_data_prompt_tokens import _build

    from tunelab.engine.spec import load_spec

    if not (tmp_path / "model").exists():
        _build("chatml").save_pretrained(tmp_path / "model")
    (tmp_path / "d.jsonl").write_text(jsonl(rows), encoding="utf-8")
    (tmp_path / "x.toml").write_text(f'name = "x"\n[model]\nbase = "{tmp_path / "model"}"\n'
                                     '[data]\ntrain = "d.jsonl"\ndedupe = "near"\n', encoding="utf-8")
    return load_spec(tmp_path / "x.toml")


@pytest.mark.skipif(parallel.cores() < 2, reason="needs two cores")
def test_reading_beside_the_tokenizer_writes_what_reading_first_writes(tmp_path: Path, monkeypatch) -> None:
    """A base model's tokenizer is loaded while a child process reads the rows (large files):
    the splits and the report are those of reading first, then loading."""
    from tunelab.engine.data import prepare as preparation

    rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]} for r in pc_rows(600)]
    rows += rows[:20]  # exact duplicates: findings made in the child
    spec = _base_model_experiment(tmp_path, rows)
    calls: list[int] = []
    beside = parallel.beside
    monkeypatch.setattr(parallel, "beside", lambda *jobs: calls.append(1) or beside(*jobs))
    first = prepare(spec, tmp_path / "first")  # type: ignore[arg-type]
    assert not calls  # small: read here, then the tokenizer loaded
    monkeypatch.setattr(preparation, "READ_BESIDE_BYTES", 0)
    together = prepare(spec, tmp_path / "together")  # type: ignore[arg-type]
    assert calls and together.report.duplicates_removed >= 20
    assert together.report.to_json() == first.report.to_json()
    for split in ("train", "validation", "test"):
        assert together.files[split].read_bytes() == first.files[split].read_bytes()


@pytest.mark.skipif(parallel.cores() < 2, reason="needs two cores")
def test_a_reading_error_in_the_child_is_the_error_the_user_gets(tmp_path: Path, monkeypatch) -> None:
    from tunelab.engine.data import prepare as preparation
    from tunelab.engine.errors import DataError

    monkeypatch.setattr(preparation, "READ_BESIDE_BYTES", 0)
    spec = _base_model_experiment(tmp_path, [{"question": "q", "answer": "a"}] * 30)
    with pytest.raises(DataError, match="cannot tell the format of this data"):
        prepare(spec, tmp_path / "cache")  # type: ignore[arg-type]
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-written is left
