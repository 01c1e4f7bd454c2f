"""Forgetting, measured and searchable ([eval.forgetting]): the general text's loss of each trained
model minus the base's, per trial; `objectives = ["eval_loss", "forgetting"]` gives a front of
task gain against general loss, which `tunelab trials` marks and the compare screen plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from screen_fit import problems, screen_lines
from typer.testing import CliRunner

from tunelab import store as st
from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import default_direction, judged_key, metric_key, verdict
from tunelab.engine.run import study as search
from tunelab.engine.spec import Experiment, load_spec
from tunelab.engine.train import forgetting

from conftest import Quiet, tunelab

pytest_plugins = ("tui_fixtures",)

SHIPPED = forgetting.SHIPPED["tunelab:general"]


def test_the_shipped_general_text_is_forty_texts_under_a_stated_licence() -> None:
    texts = forgetting.general_texts("tunelab:general", 500)
    assert len(texts) == 40 and all(len(t) > 80 for t in texts)
    readme = (SHIPPED.parent / "README.md").read_text()
    assert "CC0 1.0" in readme and "written for tunelab" in readme
    assert forgetting.general_texts("tunelab:general", 5) == texts[:5]


def test_a_file_of_general_text_is_jsonl_or_paragraphs(tmp_path: Path) -> None:
    (tmp_path / "g.jsonl").write_text('{"text": "one"}\n{"text": ""}\n{"text": "two"}\n')
    (tmp_path / "g.txt").write_text("first paragraph\nstill first\n\n\nsecond\n")
    assert forgetting.general_texts(str(tmp_path / "g.jsonl"), 10) == ["one", "two"]
    assert forgetting.general_texts(str(tmp_path / "g.txt"), 10) == [
        "first paragraph\nstill first", "second"]


def test_forgetting_is_an_objective_to_minimise_read_where_it_is_measured() -> None:
    assert default_direction("forgetting") == "minimize"
    assert metric_key("forgetting", "sft") == judged_key("forgetting") == "general/forgetting"
    assert verdict({"forgetting": "< 0.1"}, {"general/forgetting": 0.05}) == {"forgetting": True}
    plain = {"name": "x", "model": {"base": "m"}, "data": {"train": "d.jsonl"}}
    exp = Experiment.model_validate({**plain, "eval": {"forgetting": {}},
                                     "search": {"objectives": ["eval_loss", "forgetting"]}})
    assert exp.search.all_directions == ["minimize", "minimize"]
    assert exp.eval.forgetting is not None and exp.eval.forgetting.source == "tunelab:general"
    with pytest.raises(ValueError, match="'forgetting' is never computed"):
        Experiment.model_validate({**plain, "search": {"objectives": ["eval_loss", "forgetting"]}})


@pytest.mark.parametrize(("section", "message"), [
    ('[eval.forgetting]\nsource = "tunelab:wiki"', "tunelab ships 'tunelab:general', not 'tunelab:wiki'"),
    ('[eval.forgetting]\nsource = "nowhere.txt"', "eval.forgetting.source: no file or folder at"),
    ('[eval]\ngeneral = "g.jsonl"\n[eval.forgetting]', "keep one of the two"),
])
def test_check_refuses_what_a_run_would_refuse(small_experiment, tmp_path: Path, section: str,
                                               message: str) -> None:
    (tmp_path / "g.jsonl").write_text('{"text": "general"}\n')
    experiment = small_experiment(section + "\n")
    with pytest.raises(SpecError, match=message):
        load_spec(experiment)
    done = tunelab("check", str(experiment))
    assert done.returncode == 2 and message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr


FRONT = """
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
[search]
trials = 3
sampler = "random"
seed = 3
objectives = ["eval_loss", "forgetting"]
[search.space]
"train.learning_rate" = [1e-2, 3e-3, 3e-4]
[eval]
samples = 0
[eval.forgetting]
max_texts = 12
"""


@pytest.fixture(scope="module")
def front_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunelab.engine.run.runner import Runner

    folder = tmp_path_factory.mktemp("forgetting")
    source = Path(__file__).parents[1] / "experiments" / "data" / "arithmetic.jsonl"
    (folder / "data.jsonl").write_text("\n".join(source.read_text().splitlines()[:240]) + "\n")
    (folder / "tiny.toml").write_text(
        'name = "tiny"\n[model]\nscratch = { hidden_size = 64, layers = 2, heads = 4, '
        'vocab_size = 256 }\n[data]\ntrain = "data.jsonl"\n' + FRONT)
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / "tiny.toml"), store, Quiet()).run()
    return store


def _loss_by_hand(folder: str, texts: list[str]) -> float:
    """The mean loss per predicted token, with transformers alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    total = count = 0.0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=256)["input_ids"]
            total += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return total / count


@pytest.mark.slow
def test_each_trial_measures_its_general_loss_against_the_base(front_store: Path) -> None:
    found = st.evaluations(front_store, "tiny")
    base = found["base"]
    assert base["general/forgetting"] == 0.0
    trials = [t for t in st.list_trials(front_store, "tiny") if t.state == "complete"]
    assert len(trials) == 3
    texts = forgetting.general_texts("tunelab:general", 12)
    manifest = json.loads((Path(trials[0].artifact_dir or "") / "manifest.json").read_text())
    by_hand_base = _loss_by_hand(manifest["base"], texts)
    assert math.isclose(base["general/loss"], by_hand_base, rel_tol=1e-5)
    for t in trials:
        mine = found[f"trial:{t.number}"]
        # measured before training on the very weights the baseline measured
        assert math.isclose(mine["general/base_loss"], base["general/loss"], rel_tol=1e-5)
        after = _loss_by_hand(str(Path(t.artifact_dir or "") / "best"), texts)
        assert math.isclose(mine["general/loss"], after, rel_tol=1e-5)
        assert math.isclose(mine["general/forgetting"], after - by_hand_base, abs_tol=1e-5)
        assert math.isclose(mine["general/perplexity"], math.exp(after), rel_tol=1e-6)


@pytest.mark.slow
def test_two_objectives_give_a_front_of_task_loss_against_forgetting(front_store: Path) -> None:
    from tunelab.tui.cli import app

    study = optuna.load_study(study_name="tiny", storage=search.open_storage(
        str(front_store.parent / "tunelab.optuna.journal")))
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    found = st.evaluations(front_store, "tiny")
    for t in study.trials:
        values = found[f"trial:{t.number}"]
        assert t.values == [values["validation/loss"], values["general/forgetting"]]
    front = {t.number for t in study.best_trials}
    assert front
    shown = CliRunner().invoke(app, ["trials", "tiny", "--store", str(front_store)],
                               terminal_width=200)
    assert shown.exit_code == 0 and "◆ Pareto front" in shown.output and "forgetting" in shown.output
    marked = {int(c[0].lstrip("◆")) for line in shown.output.splitlines()
              if (c := line.replace("│", " ").split()) and c[0].startswith("◆")}
    assert marked == front


@pytest.mark.slow
async def test_the_compare_screen_plots_the_front(front_store: Path) -> None:
    from tui_pilot import settle

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.widgets.plot import LinePlot

    app = TunelabApp([front_store])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("enter", "c", "4"):
            await pilot.press(key)
            await settle(pilot)
        plot = app.screen.query_one("#front-plot", LinePlot)
        by_label = {s.label.split(" (")[0]: s for s in plot.series}
        study = optuna.load_study(study_name="tiny", storage=search.open_storage(
            str(front_store.parent / "tunelab.optuna.journal")))
        on = sorted(tuple(t.values) for t in study.best_trials)
        assert sorted(zip(by_label["front"].xs, by_label["front"].ys, strict=True)) == \
            [tuple(v) for v in on]
        assert sum(len(s.xs) for s in plot.series if s.label != "base model") == 3
        base = st.evaluations(front_store, "tiny")["base"]
        assert list(by_label["base model"].ys) == [0.0]
        assert list(by_label["base model"].xs) == [base["validation/loss"]]
        found = problems(app)
        assert not found, "\n".join(found + screen_lines(app))
