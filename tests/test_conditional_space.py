"""Conditional search spaces: `when = { KEY = [values] }` on a key of [search.space], checked when
the file is loaded, sampled define-by-run (a trial carries a key exactly when its condition
holds), and shown that way by `tunelab check`."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from tui_pilot import open_trials

from tunelab.engine.errors import SpecError
from tunelab.engine.run import study as search
from tunelab.engine.spec import ChoiceSpec, RangeSpec, load_spec
from tunelab.engine.spec.conditions import conditions, order

from conftest import Ran, tunelab

HEAD = 'name = "x"\n[model]\nscratch = {}\n[data]\ntrain = "d.jsonl"\n'
SPACE = '''[search.space]
"method.kind" = ["full", "lora", "qlora", "prefix"]
"method.r" = { values = [4, 8, 16], when = { "method.kind" = ["lora", "qlora"] } }
"method.num_virtual_tokens" = { low = 8, high = 32, when = { "method.kind" = "prefix" } }
"method.alpha_ratio" = [1.0, 2.0]
"train.learning_rate" = { low = 1e-5, high = 1e-3, log = true }
'''


def _file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


def _mistakes(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(_file(tmp_path, text))
    return str(caught.value)


def test_a_condition_parses_as_a_list_of_values_a_single_value_included(tmp_path: Path) -> None:
    exp = load_spec(_file(tmp_path, HEAD + SPACE)).experiment
    space = exp.search.space
    assert isinstance(space["method.r"], ChoiceSpec) and space["method.r"].values == [4, 8, 16]
    assert isinstance(space["method.num_virtual_tokens"], RangeSpec)
    assert space["method.num_virtual_tokens"].when == {"method.kind": ["prefix"]}
    assert space["method.kind"] == ["full", "lora", "qlora", "prefix"]  # the plain forms stay
    found = conditions(exp)
    assert found["method.r"] == {"method.kind": ["lora", "qlora"]}
    # the implicit rule of the kinds reads as the same kind of condition
    assert found["method.alpha_ratio"] == {"method.kind": ["lora", "qlora"]}
    assert found["train.learning_rate"] == {}
    assert order(exp).index("method.kind") < order(exp).index("method.r")


def test_a_file_without_conditions_keeps_its_spec_hash(tmp_path: Path) -> None:
    """`when` is left out of the dump when absent: an existing study's trials stay comparable."""
    plain = HEAD + '[search.space]\n"train.learning_rate" = { low = 1e-5, high = 1e-3 }\n'
    dumped = load_spec(_file(tmp_path, plain)).experiment.model_dump(mode="json")
    assert dumped["search"]["space"]["train.learning_rate"] == {
        "low": 1e-5, "high": 1e-3, "log": False, "step": None}


@pytest.mark.parametrize(("space", "expected"), [
    ('"method.kind" = ["full", "lora"]\n'
     '"method.r" = { values = [4, 8], when = { "method.kindd" = "lora" } }\n',
     "x.toml:8: search.space.method.r.when: 'method.kindd' is neither searched nor a key of the "
     "experiment; did you mean 'method.kind'?"),
    ('"method.kind" = ["full", "lora"]\n'
     '"method.num_virtual_tokens" = { low = 8, high = 32, when = { "method.kind" = "prefix" } }\n',
     "method.kind never takes {prefix} (it is searched over {full, lora})"),
    ('"method.r" = { values = [4, 8], when = { "method.kind" = ["full"] } }\n',
     "method.r would never be searched: method.kind is not searched and is \"lora\" here"),
    ('"method.kind" = ["full", "lora", "prefix"]\n'
     '"method.r" = { values = [4, 8], when = { "method.kind" = "prefix" } }\n',
     "method.r is read only by lora, qlora trials, and the condition allows only {prefix}"),
    ('"train.epochs" = { values = [1, 2], when = { "train.warmup_ratio" = 0.1 } }\n'
     '"train.warmup_ratio" = { values = [0.1, 0.2], when = { "train.epochs" = 1 } }\n',
     "the conditions of train.epochs, train.warmup_ratio form a cycle"),
    ('"train.epochs" = { low = 1, high = 3, when = { "train.epochs" = 1 } }\n',
     "train.epochs cannot be searched on a condition on itself"),
    ('"train.epochs" = [1, 2]\n'
     '"train.warmup_ratio" = { low = 0.0, high = 0.1, when = { "train.epochs" = 5 } }\n',
     "train.epochs never takes {5} (it is searched over {1, 2})"),
    ('"method.r" = { values = [], when = { "method.kind" = "lora" } }\n',
     "search.space.method.r: the list of choices is empty"),
    ('"method.r" = { values = [0, 8] }\n', "the value 0 is not valid here"),
])
def test_a_condition_that_cannot_work_is_refused_in_words(tmp_path: Path, space: str,
                                                          expected: str) -> None:
    text = _mistakes(tmp_path, HEAD + "[search.space]\n" + space)
    assert expected in text, text
    assert "Traceback" not in text


def test_the_grid_sampler_refuses_a_conditional_space(tmp_path: Path) -> None:
    text = _mistakes(tmp_path, HEAD + '[search]\nsampler = "grid"\n[search.space]\n'
                                      '"method.kind" = ["full", "lora"]\n"method.r" = [4, 8]\n')
    assert "the grid sampler cannot leave a key out of a trial" in text
    assert "method.r is searched only when method.kind ∈ {lora}" in text  # the kinds searched
    # without a searched condition the grid is as before
    spec = load_spec(_file(tmp_path, HEAD + '[search]\nsampler = "grid"\n[search.space]\n'
                                            '"method.kind" = ["full", "lora"]\n'))
    assert search.grid(spec.experiment) == {"method.kind": ["full", "lora"]}


@pytest.mark.parametrize("sampler", ["tpe", "random"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_trial_carries_a_key_exactly_when_its_condition_holds(
        tmp_path: Path, sampler: str, seed: int) -> None:
    text = HEAD + f'[search]\nsampler = "{sampler}"\nseed = {seed}\n' + SPACE
    exp = load_spec(_file(tmp_path, text)).experiment
    study = optuna.create_study(sampler=search.build_sampler(exp))
    kinds = set()
    for number in range(24):
        trial = study.ask()
        params = search.sample(trial, exp)
        kind = params["method.kind"]
        kinds.add(kind)
        adapter = kind in ("lora", "qlora")
        assert ("method.r" in params) == adapter, params
        assert ("method.alpha_ratio" in params) == adapter, params
        assert ("method.num_virtual_tokens" in params) == (kind == "prefix"), params
        assert "train.learning_rate" in params
        assert trial.params == params  # what Optuna recorded is what the trial trains with
        study.tell(trial, float(number % 5))  # finished trials feed TPE's conditional model
    assert kinds == {"full", "lora", "qlora", "prefix"}


def test_a_condition_on_a_searched_numeric_key(tmp_path: Path) -> None:
    text = HEAD + ('[search]\nsampler = "random"\n[search.space]\n'
                   '"train.warmup_ratio" = { low = 0.0, high = 0.1, '
                   'when = { "train.epochs" = [2, 3] } }\n'
                   '"train.epochs" = { low = 1, high = 3, step = 1 }\n')
    exp = load_spec(_file(tmp_path, text)).experiment
    assert order(exp) == ["train.epochs", "train.warmup_ratio"]  # the condition's key first
    study = optuna.create_study(sampler=search.build_sampler(exp))
    for _ in range(15):
        params = search.sample(study.ask(), exp)
        assert ("train.warmup_ratio" in params) == (params["train.epochs"] in (2, 3)), params


def test_check_lists_the_space_with_its_conditions(tmp_path: Path) -> None:
    path = _file(tmp_path, HEAD + SPACE)
    done = tunelab("check", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()
             if line.startswith("  ") and line.split()[0].startswith(("method.", "train."))}
    assert "(only when method.kind ∈ {lora, qlora})" in lines["method.r"]
    assert "(only when method.kind ∈ {prefix})" in lines["method.num_virtual_tokens"]
    assert "(only when method.kind ∈ {lora, qlora})" in lines["method.alpha_ratio"]
    assert "only when" not in lines["train.learning_rate"]


def test_an_unsampled_key_shows_as_a_dash_and_is_rated_within_its_branch(tmp_path: Path) -> None:
    """A full fine-tune has no LoRA rank: its `r` cell reads "–", not blank and not 0; the compare
    screen rates method.r among the trials that sampled it."""
    import asyncio
    import json
    import time

    from rich.text import Text

    from tunelab import store as st
    from tunelab.tui.app import TunelabApp
    from tunelab.tui.widgets.table import VimTable

    store, now = tmp_path / "s.duckdb", time.time()
    events: list[dict] = [{"table": "experiments", "row": {
        "name": "cond", "description": "", "spec_path": "x.toml", "spec_hash": "x", "spec": "{}",
        "objective": "eval_loss", "direction": "minimize", "created_at": now, "updated_at": now}}]
    for number, params, value in ((0, {"method.kind": "lora", "method.r": 8}, 2.5),
                                  (1, {"method.kind": "full"}, 0.8),
                                  (2, {"method.kind": "lora", "method.r": 0}, 3.0)):
        events.append({"table": "trials", "row": {
            "experiment": "cond", "number": number, "state": "complete",
            "method_kind": params["method.kind"], "params": json.dumps(params), "value": value,
            "started_at": now - 10, "finished_at": now, "updated_at": now}})
    with st.Spool(store, tag="test") as spool:
        spool.write(events)
    # the study beside the store, as `tunelab run` leaves it: method.r in lora trials only
    from optuna.distributions import CategoricalDistribution

    from tunelab.engine.run.importance import journal_for
    from tunelab.engine.run.study import open_storage

    study = optuna.create_study(study_name="cond", storage=open_storage(str(journal_for(store))))
    dists = {"method.kind": CategoricalDistribution(["full", "lora"]),
             "method.r": CategoricalDistribution([4, 8, 16])}
    for params, value in (({"method.kind": "full"}, 0.8), ({"method.kind": "full"}, 0.9),
                          ({"method.kind": "lora", "method.r": 4}, 2.0),
                          ({"method.kind": "lora", "method.r": 8}, 2.5),
                          ({"method.kind": "lora", "method.r": 16}, 3.0),
                          ({"method.kind": "lora", "method.r": 16}, 3.1)):
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=value))

    async def run() -> tuple[dict[str, str], list[list[str]]]:
        app = TunelabApp([store])
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await open_trials(pilot)
            table = screen.query_one(VimTable)
            titles = [str(c.label) for c in table.ordered_columns]
            r = titles.index("r")
            out = {}
            for i in range(table.row_count):
                row = table.get_row_at(i)
                plain = [c.plain if isinstance(c, Text) else str(c) for c in row]
                out[plain[1]] = plain[r]
            await pilot.press("c", "2")  # compare the best trials: the importance tab
            for _ in range(2):
                await app.workers.wait_for_complete()
                await pilot.pause()
            found = app.screen.query_one("#importance-table", VimTable)
            rows = [[c.plain if isinstance(c, Text) else str(c) for c in found.get_row_at(i)]
                    for i in range(found.row_count)]
            return out, rows

    r_of, importance = asyncio.run(run())
    assert r_of == {"0": "8", "1": "–", "2": "0"}
    # method.kind over all six trials, method.r within the four that sampled it (marked *)
    assert importance[0][0] == "method.kind" and importance[0][1] == "1.00"
    assert importance[0][3] == "full: 0.85 (2) · lora: 2.65 (4)"
    assert importance[1][0] == "method.r" and importance[1][1] == "1.00*"
    assert importance[1][3] == "in 4 trials · 4: 2.00 (1) · 8: 2.50 (1) · 16: 3.05 (2)"


def test_the_implicit_rule_names_only_the_kinds_searched(tmp_path: Path) -> None:
    from tunelab.engine.spec import explain

    text = HEAD + ('[search.space]\n"method.kind" = ["full", "lora"]\n"method.r" = [4, 8]\n'
                   '"method.num_virtual_tokens" = { low = 8, high = 32 }\n')
    rows = {k: (what, when) for k, what, when in
            explain.space(load_spec(_file(tmp_path, text)).experiment)}
    assert rows["method.r"] == ("one of 4, 8", "only when method.kind ∈ {lora}")
    # no searched kind reads it: said, and no trial samples it
    assert rows["method.num_virtual_tokens"] == ("uniform 8 … 32",
                                                 "never: no searched method.kind reads it")


def test_enqueue_refuses_a_value_its_condition_rules_out(tmp_path: Path) -> None:
    """`tunelab enqueue --set method.r=8` alone cannot say whether the trial is a LoRA one; with
    `method.kind=full` the rank would be carried and ignored. Both are refused in words, and a
    queue that holds is accepted and taken by the study."""
    path = _file(tmp_path, HEAD + SPACE)

    def enqueue(*sets: str) -> Ran:
        args = [a for s in sets for a in ("--set", s)]
        return tunelab("enqueue", str(path), *args, "--store", str(tmp_path / "s.duckdb"), cwd=tmp_path)

    alone = enqueue("method.r=8")
    assert alone.returncode != 0 and "Traceback" not in alone.stderr
    assert "method.r is searched only when method.kind ∈ {lora, qlora}" in alone.stderr
    assert "--set method.kind=… too" in alone.stderr
    ruled_out = enqueue("method.kind=full", "method.r=8")
    assert ruled_out.returncode != 0 and "drop --set method.r" in ruled_out.stderr
    fine = enqueue("method.kind=lora", "method.r=8")
    assert fine.returncode == 0, fine.stderr
    assert "queued" in fine.stdout
