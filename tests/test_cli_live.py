"""`tunelab run` as a person reads it in an 80-column terminal: real tiny sweeps in a
pseudo-terminal, drawn by a terminal emulator (tests/terminal.py), every screen checked.

Seen before: the counter dropped to a line of its own or split a value (`loss` / `0.0966`),
placement lines had the counter glued on, `Skipping publisher trust check for
'kernels-community/quantization-bitsandbytes'…` opened every run, no ETA during the first
trial, none of the total time at the end, a trial killed by search.trial_timeout not said,
and a trial's end line wrapped at 80 columns when its mark was long."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import terminal

from conftest import tunelab_command

# Where a line a person reads may begin at column 0; any other text there is the rest of the
# line above, wrapped by the terminal (a line tunelab breaks itself goes on indented)
OPENERS = re.compile("|".join([
    r"tiny( · |$)", r"data · ", r"building the scratch model", r"evaluating the base model",
    r"baseline", r"\d+ trials? to run", r"trials? \d", r"\d+/\d+( · |$)", r"\d+ trials? in ",
    r"[┏┃┡│└─]", r"[★◆]\d+ ", r"best:", r"success:", r"next:", r"votes steer this sweep",
    r"winner:", r"no trial was preferred", r"the votes could not be read", r"training error$",
]))
COUNTER = re.compile(r"^(tiny · )?\d+/\d+( · |$)")
LABEL_AT_END = re.compile(r"\b(loss|eval_loss|step|epoch|lr|r|alpha_ratio|warmup_ratio)$")
TRUST_LINE = "Skipping publisher trust check"


def _misread(lines: list[str]) -> list[str]:
    """Lines that read wrongly: text wrapped back to column 0, a label whose value went to the
    next line, a trial's or a placement's line with the counter glued on."""
    bad = [line for line in lines if line.strip() and not line[0].isspace()
           and not OPENERS.match(line)]
    bad += [line for line in lines if LABEL_AT_END.search(line)]
    bad += [line for line in lines if line.startswith("trial") and re.search(r" \d+/\d+ · ", line)]
    return bad


def _sweep(small_experiment, body: str) -> Path:  # noqa: ANN001
    return small_experiment(body, rows=240)


SEARCHED = """
[method]
kind = "lora"
r = 8
[train]
epochs = 3
batch_size = 16
learning_rate = 3e-3
logging_steps = 2
[search]
trials = 3
pruner = { kind = "median", startup_trials = 1 }
{extra}
[search.space]
"train.learning_rate" = { low = 1e-4, high = 3e-3, log = true }
"method.r" = [4, 8]
"train.warmup_ratio" = [0.0, 0.05]
"method.alpha_ratio" = [1.0, 2.0]
[eval]
samples = 0
"""


@pytest.mark.slow
def test_a_sweep_at_80_columns_reads_line_by_line_with_an_eta_and_its_total(
        tmp_path: Path, small_experiment) -> None:  # noqa: ANN001
    pytest.importorskip("pyte")
    experiment = _sweep(small_experiment, SEARCHED.replace("{extra}", ""))
    seen = terminal.run([*tunelab_command(), "run", str(experiment), "--store",
                         str(tmp_path / "tunelab.duckdb")], columns=80, cwd=tmp_path)
    text = "\n".join(seen.transcript)
    assert seen.returncode == 0, text
    lines = seen.lines()
    assert not _misread(lines), "\n".join(_misread(lines)) + "\n---\n" + text
    assert not [line for line in lines if TRUST_LINE in line]
    # a trial's line longer than 80 columns goes on under its parameters, a value whole
    running = [s for s in seen.screens if any(line.startswith("trial 0") for line in s)
               and any(COUNTER.match(line) for line in s)]
    assert any(len([line for line in s if line.startswith(" " * 11)]) for s in running), text
    # the first trial already has an ETA (a bound: the pruner may stop the next ones early)
    first = [line for s in seen.screens for line in s if line.startswith("0/3 · ETA ")]
    assert first and all(re.fullmatch(r"0/3 · ETA (≤ )?\d+(m\d\ds|s)", line) for line in first), \
        first
    # each finished trial: one line of its own (and its continuation), never the counter
    ends = [line for line in seen.transcript if re.match(r"trial \d .*(complete|pruned)", line)
            or re.match(r" +.*(✓ complete|✂ pruned)", line)]
    assert len(ends) == 3, text
    assert re.search(r"^3 trials in \S+ \(\d complete(, \d pruned)?\) · \S+ with the data and "
                     r"the baseline$", text, re.M), text
    # the summary table, too wide for 80 columns with four parameters, cuts no value or header
    table = text[text.index("tiny · 3 trials ("):text.index("baseline (the base model)")]
    assert "…" not in table and "warmup_" in table, table


@pytest.mark.slow
def test_a_trial_killed_for_time_is_said_and_its_line_stays_whole_at_80_columns(
        tmp_path: Path, small_experiment) -> None:  # noqa: ANN001
    pytest.importorskip("pyte")
    experiment = _sweep(small_experiment, SEARCHED.replace("{extra}", "trial_timeout = 3")
                        .replace("epochs = 3", "epochs = 40"))
    seen = terminal.run([*tunelab_command(), "run", str(experiment), "--store",
                         str(tmp_path / "tunelab.duckdb")], columns=80, cwd=tmp_path)
    text = "\n".join(seen.transcript)
    assert seen.returncode == 1, text  # three trials in a row failed: the sweep stops
    assert "trial 0 ran past search.trial_timeout (3s): killed" in seen.transcript, text
    ends = [line for line in seen.transcript if "✗ failed (timeout)" in line]
    assert len(ends) == 3, text  # the mark whole, on one line
    # (Python's multiprocessing may warn at exit of semaphores the killed trials held: its
    # words, not tunelab's, left out here)
    lines = [line for line in seen.lines() if "resource_tracker" not in line
             and "clean up at shutdown" not in line and "warnings.warn" not in line]
    assert not _misread(lines), "\n".join(_misread(lines)) + "\n---\n" + text


@pytest.mark.slow
def test_a_preference_sweep_waiting_for_votes_says_so_instead_of_an_eta(
        tmp_path: Path, small_experiment) -> None:  # noqa: ANN001
    pytest.importorskip("pyte")
    from test_preference_sweep import PREFERENCE_SWEEP, Rater

    experiment = _sweep(small_experiment, PREFERENCE_SWEEP)
    store = tmp_path / "tunelab.duckdb"
    rater = Rater(store, "tiny")
    waiting: list[str] = []

    def vote_when_asked(screen: list[str]) -> None:
        # the rater starts once the run waits for nothing but votes, as a person would
        asked = [line for line in screen if COUNTER.match(line) and "waits for your votes" in line]
        if asked and not waiting:
            waiting.extend(asked)
            rater.start()

    try:
        seen = terminal.run([*tunelab_command(), "run", str(experiment), "--store", str(store)],
                            columns=80, cwd=tmp_path, on_screen=vote_when_asked)
    finally:
        rater.done.set()
        if rater.is_alive():
            rater.join()
    text = "\n".join(seen.transcript)
    assert seen.returncode == 0, text
    assert waiting == ["0/3 · 3 voting · waits for your votes"], (waiting, text)
    lines = seen.lines()
    assert not _misread(lines), "\n".join(_misread(lines)) + "\n---\n" + text
    placed = [line for line in seen.transcript
              if re.match(r"trial \d +placed [+-]\d+ over the base, told to the search", line)]
    assert len(placed) == 3, text
    assert re.search(r"^3 trials in \S+ \(3 complete\) · ", text, re.M), text


def test_the_counter_never_counts_down_while_only_votes_are_left() -> None:
    from tunelab.tui.cli.eta import Eta

    clock = [0.0]
    eta = Eta(target=3, finished=0, now=lambda: clock[0])
    for number in range(3):
        eta.start(number, epochs=2)
        clock[0] += 20
        eta.end(number, "voting", 20)
    assert eta.snapshot().remaining(clock[0]) is None  # the time is the rater's
    eta.placed()
    assert eta.snapshot().remaining(clock[0] + 60) is None


def test_the_eta_follows_the_trials_pruning_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    # the quickstart's six trials: 0 trains all 12 epochs in 42 s, the median pruner stops the
    # next five after their first epoch (10, 6, 6, 6, 11 s). The mean of the trials so far said
    # 4m33s when 35 s were left.
    from tunelab.tui.cli.eta import Eta

    clock = [0.0]
    eta = Eta(target=6, finished=0, pruning=True, now=lambda: clock[0])
    eta.start(0, epochs=12)
    clock[0] += 2
    eta.progress(0, "start", None)
    clock[0] += 10
    eta.progress(0, "log", 3.0)  # a quarter of its training in 10 s
    first = eta.snapshot().remaining(clock[0])
    assert first is not None and first.bound  # the pruner may stop the next ones early
    assert first.seconds == pytest.approx((2 + 40) * 6 - 12)  # 6 trials of 42 s, 12 s gone
    clock[0] = 42
    eta.end(0, "complete", 42)
    assert eta.snapshot().remaining(clock[0]).bound  # nothing pruned yet: at most
    for number, seconds in enumerate((10, 6, 6), start=1):
        eta.start(number, epochs=12)
        clock[0] += seconds
        eta.end(number, "pruned", seconds)
    left = eta.snapshot().remaining(clock[0])
    assert left is not None and not left.bound
    assert left.seconds == pytest.approx(2 * (10 + 6 + 6) / 3)  # 15 s; 17 s were left


@pytest.mark.slow  # a fresh interpreter that imports peft (torch, transformers): seconds
def test_only_the_bitsandbytes_kernels_line_is_dropped_and_in_the_cli_process_too() -> None:
    # `tunelab chat`, `review new` and `export` import peft in the CLI's own process: the line
    # goes there too, while the same warning about any other kernel still shows
    script = textwrap.dedent("""
        import logging, sys
        from tunelab.tui.cli import main
        sys.argv = ["tunelab", "--version"]
        try:
            main()  # sets up the command's process, as for any command
        except SystemExit:
            pass
        import peft  # imports bitsandbytes, which asks `kernels` for its CPU kernel
        logging.getLogger("kernels._internals.hf_hub").warning(
            "Skipping publisher trust check for 'someone/kernel' because offline.")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert TRUST_LINE + " for 'kernels-community" not in done.stderr, done.stderr
    assert "Skipping publisher trust check for 'someone/kernel'" in done.stderr
