"""The `tunelab` command as a script sees it: output into pipes and files (no hard wraps, LF
line ends, a missing folder said in words), the end-of-run summary, the console reporter, and
the Pareto front it marks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tui_store

from tunelab import store as st
from tunelab.tui.cli.pareto import front

from conftest import Ran, tunelab

# COLUMNS unset: into a pipe rich would otherwise wrap at its default 80 columns
ENV = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
ENV.update(HF_HUB_OFFLINE="1", NO_COLOR="1")


def _tunelab(*args: str, cwd: Path | None = None) -> Ran:
    return tunelab(*args, cwd=cwd, env={"COLUMNS": None, "LINES": None, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tui_store.build(tmp_path_factory.mktemp("demo"))


def test_the_pareto_front_keeps_the_trials_no_other_beats_on_every_objective() -> None:
    # loss (minimize) and accuracy (maximize): 1 and 2 trade off, 3 is beaten by 1 on both,
    # 4 ties 1 exactly (neither beats the other), 5 misses a value
    points = {1: [0.5, 0.9], 2: [0.4, 0.7], 3: [0.6, 0.8], 4: [0.5, 0.9], 5: [0.1, None]}
    assert front(points, ["minimize", "maximize"]) == {1, 2, 4}
    assert front(points, ["maximize", "minimize"]) == {2, 3}  # 3 now beats 1 and 4 on both
    assert front({}, ["minimize", "minimize"]) == set()


def test_sql_out_into_a_missing_folder_is_said_in_words_and_writes_nothing(
        demo_store: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "dir"
    for fmt in ("csv", "json", "table", "parquet"):
        done = _tunelab("sql", "--store", str(demo_store), "--format", fmt, "--out",
                        str(missing / f"x.{fmt}"), "select 1 as one")
        assert done.returncode == 1, (fmt, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"the folder {missing} does not exist" in done.stderr, done.stderr
    assert not (tmp_path / "missing").exists()


def test_sql_csv_ends_rows_with_lf_as_the_duckdb_shell_does(demo_store: Path,
                                                           tmp_path: Path) -> None:
    query = "select number, value from trials where value is not null order by number"
    done = _tunelab("sql", "--store", str(demo_store), "--format", "csv", query)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout  # as written (tunelab() keeps the bytes)
    assert done.stdout.splitlines()[:2] == ["number,value", "0,2.86"]
    _tunelab("sql", "--store", str(demo_store), "--format", "csv", "--out",
             str(tmp_path / "x.csv"), query)
    assert b"\r" not in (tmp_path / "x.csv").read_bytes()


def test_messages_into_a_pipe_are_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "store.duckdb"
    done = _tunelab("trials", "nothing-here", "--store", str(deep))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert any(str(deep) in line and len(line) > 120 for line in lines), done.stderr


def test_progress_into_a_log_is_one_line_per_event(tmp_path: Path) -> None:
    # the reporter as `tunelab run … > sweep.log` drives it, with long parameter lists
    script = textwrap.dedent("""
        from types import SimpleNamespace as NS
        from tunelab.engine.run import events as ev
        from tunelab.tui.cli.reporter import ConsoleReporter

        r = ConsoleReporter("a-rather-long-experiment-name")
        params = {"train.learning_rate": 1.234e-4, "method.kind": "lora", "method.r": 64,
                  "method.alpha_ratio": 2.0, "train.warmup_ratio": 0.05, "train.batch_size": 32}
        r.event(ev.Sweep(trials=2, finished=0, workers=1))
        for number in (0, 1):
            r.event(ev.TrialStart(number=number, params=params, epochs=3, worker=0))
            # the first trial tokenizes a large set (a line); a small one is not worth a line
            r.event(ev.TrialProgress(number=number, kind="tokenizing",
                                     data={"rows": 77256 if number == 0 else 240}))
            for epoch in (1, 2, 3):
                r.event(ev.TrialProgress(number=number, kind="eval", data={
                    "epoch": epoch, "step": epoch * 60, "eval_loss": 1.0 / epoch}))
            result = NS(state="complete", value=0.33, fail_reason=None, error=None)
            r.event(ev.TrialEnd(outcome=NS(number=number, params=params, result=result,
                                           duration_s=61.0)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # the plan, 3 evaluations and an end each, and the first trial's tokenizing
    assert len(lines) == 1 + 2 * (3 + 1) + 1, done.stdout
    assert all(line.startswith("trial ") for line in lines[1:])
    assert lines[1] == "trial 0: tokenizing 77,256 rows (once: the sweep's other trials read them back)"
    assert max(len(line) for line in lines) > 100  # long, and still one line each


def _unsearched_store(folder: Path) -> Path:
    """An experiment that searches nothing and has no [success]: one trial, its test metrics."""
    spec = tui_store.spec()
    spec["search"]["space"] = {}
    spec["success"] = {}
    path = folder / "tunelab.duckdb"
    events: list[dict] = [{"table": "experiments", "row": {
        "name": "once", "description": "", "spec_path": "", "spec_hash": "x",
        "spec": json.dumps(spec), "objective": "eval_loss", "direction": "minimize",
        "created_at": 1.0, "updated_at": 1.0}}]
    events.append({"table": "trials", "row": {
        "experiment": "once", "number": 0, "state": "complete", "method_kind": "full",
        "params": "{}", "value": 0.7, "started_at": 1.0, "finished_at": 61.0, "duration_s": 60.0,
        "updated_at": 61.0}})
    for ref, values in (("base", (4.5, 4.6, 0.0)), ("trial:0", (0.7, 0.71, 0.62))):
        for (split, name), value in zip((("validation", "loss"), ("test", "loss"),
                                         ("test", "exact_match")), values, strict=True):
            events.append({"table": "evaluations", "row": {
                "experiment": "once", "model_ref": ref, "split": split, "name": name,
                "value": value, "time": 1.0}})
    with st.Spool(path, tag="fixture") as spool:
        spool.write(events)
    return path


def test_the_summary_of_an_unsearched_run_has_no_empty_parameters_and_keeps_test_metrics(
        tmp_path: Path) -> None:
    store = _unsearched_store(tmp_path)
    done = _tunelab("trials", "once", "--store", str(store))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "()" not in out
    best = next(line for line in out.splitlines() if line.startswith("best:"))
    assert best.startswith("best: trial 0 eval_loss 0.7"), best
    header = next(line for line in out.splitlines() if "state" in line)
    assert "test loss" in header and "test exact_match" in header, out
    assert "…" not in out  # in a pipe the table keeps its natural width: no header is cut
    row = next(line for line in out.splitlines() if "complete" in line)
    assert "0.71" in row and "0.62" in row


@pytest.mark.slow
def test_an_adapter_from_a_scratch_base_exports_loadable_from_anywhere_with_card_metadata(
        tmp_path: Path, small_experiment) -> None:  # noqa: ANN001
    # the sweep as a person runs it: in its folder, with a relative store (and so relative
    # run folders, the scratch base among them)
    small_experiment('[method]\nkind = "lora"\n[train]\nepochs = 1\nbatch_size = 16\n'
                     'learning_rate = 3e-3\n[search]\ntrials = 1\n[eval]\nsamples = 0\nbaseline = false\n',
                     rows=160)
    done = _tunelab("run", "tiny.toml", "--store", "tunelab.duckdb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = _tunelab("export", "tiny", "best", "--out", "ship", "--store", "tunelab.duckdb",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shipped = tmp_path / "ship"
    base = json.loads((shipped / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).is_absolute() and Path(base).is_dir(), base
    card = (shipped / "README.md").read_text()
    assert "https://github.com/)" not in card  # no placeholder link
    head, _, body = card.removeprefix("---\n").partition("\n---\n")
    meta = dict(line.split(": ", 1) for line in head.splitlines())
    assert json.loads(meta["base_model"]) == base
    assert json.loads(meta["library_name"]) == "peft"
    assert {"tunelab", "lora"} <= set(json.loads(meta["tags"]))
    assert json.loads(meta["datasets"]) == ["data.jsonl"]
    assert body.lstrip().startswith("# tiny · trial 0")

    from peft import AutoPeftModelForCausalLM

    assert Path.cwd() != tmp_path  # loaded from elsewhere than where the sweep ran
    assert AutoPeftModelForCausalLM.from_pretrained(shipped) is not None
