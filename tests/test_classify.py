"""A classification head (method.head = "classification", data.format = "label"): labelled rows
from JSONL or CSV, a sweep of full and LoRA trials whose accuracy, macro F1 and confusion matrix
are scikit-learn's on the test split, an export that AutoModelForSequenceClassification loads,
and the trial screen's confusion matrix."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from data_helpers import jsonl, prepared
from screen_fit import problems, screen_lines

from tunelab import store as st
from tunelab.engine.data.labels import label_names
from tunelab.engine.data.prepare import read_rows
from tunelab.engine.errors import SpecError, TrainError
from tunelab.engine.spec import Experiment, load_spec
from tunelab.engine.train.confusion import Confusion, from_values

from conftest import EXPERIMENTS, Quiet

pytest_plugins = ("tui_fixtures",)

TICKETS = EXPERIMENTS / "data" / "tickets.csv"


def _tickets() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(TICKETS.read_text(encoding="utf-8"))))


def test_labelled_rows_from_csv_and_jsonl_become_a_text_and_its_label(tmp_path: Path) -> None:
    rows = _tickets()[:150]
    as_csv = TICKETS.read_text(encoding="utf-8").splitlines()[:151]
    bad = [{"text": "no label here"}, {"text": "", "label": "billing"},
           {"text": "an empty label", "label": " "}, {"text": "a number", "label": 3}]
    for name, content in (("d.csv", "\n".join(as_csv) + "\n"), ("d.jsonl", jsonl(rows + bad))):
        data = f'train = "{name}"\nformat = "label"\ndedupe = "exact"'
        p = prepared(tmp_path / name.replace(".", "_"), data, {name: content})
        kept = [r for s in ("train", "validation", "test") for r in p.rows(s)]
        texts = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in kept}
        assert all(texts[r["text"]] == r["label"] for r in rows if r["text"] in texts)
        assert len(kept) == (151 if name == "d.jsonl" else 150)  # the labelled "3" is kept
        if name == "d.jsonl":
            assert texts["a number"] == "3"
            reasons = {f.message for f in p.report.findings if f.check == "bad_row"}
            assert reasons == {"not a label example: no 'text'/'label' fields (format label)",
                               "not a label example: the text is missing or empty",
                               "not a label example: the label is empty"}
    assert label_names(kept) == ["3", "account", "billing", "delivery", "technical"]


@pytest.mark.parametrize(("change", "message"), [
    ({"data": {"train": "d.csv"}}, 'set data.format = "label"'),
    ({"method": {"head": "classification", "kind": "qlora"}}, "fully or with LoRA, not qlora"),
    ({"train": {"packing": True}}, "a classifier reads one text per row"),
    ({"eval": {"forgetting": {}}}, "needs a language-model head"),
    ({"eval": {"watch": 2}}, "writes no answers to watch"),
    ({"search": {"space": {"method.head": ["lm", "classification"]}}}, "losses that do not compare"),
    ({"search": {"objective": "exact_match"}}, "'exact_match' is never computed"),
])
def test_a_classifier_refuses_what_it_cannot_do(change: dict, message: str) -> None:
    plain = {"name": "x", "model": {"base": "m"}, "data": {"train": "d.csv", "format": "label"},
             "method": {"head": "classification", "kind": "full"}}
    with pytest.raises(ValueError, match=message):
        Experiment.model_validate({**plain, **change})


def test_the_matrix_gives_scikit_learns_accuracy_and_macro_f1() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    truth = ["a", "a", "b", "b", "c", "c", "c"]
    predicted = ["a", "b", "b", "b", "a", "c", "b"]
    # "d" is a class no row has and none predicted: it is no label of the split, as in sklearn
    matrix = Confusion.of(["a", "b", "c", "d"], truth, predicted)
    assert matrix.accuracy == accuracy_score(truth, predicted)
    assert math.isclose(matrix.macro_f1, f1_score(truth, predicted, average="macro"))
    assert from_values({f"confusion/{k}": v for k, v in matrix.cells().items()}) == matrix


SWEEP = """
name = "tickets"
[model]
scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 512 }
[data]
train = "tickets.jsonl"
format = "label"
dedupe = "exact"
[method]
head = "classification"
[train]
epochs = 3
batch_size = 16
learning_rate = 2e-3
[search]
trials = 2
sampler = "random"
seed = 3  # draws lora, then full (each trial's draws are seeded by its number)
objective = "macro_f1"
[search.space]
"method.kind" = ["full", "lora"]
[eval]
samples = 8
[success]
accuracy = ">= 0.5"
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunelab.engine.run.runner import Runner

    folder = tmp_path_factory.mktemp("classify")
    (folder / "tickets.jsonl").write_text(jsonl(_tickets()[:400]))
    (folder / "tickets.toml").write_text(SWEEP)
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / "tickets.toml"), store, Quiet()).run()
    return store


def _predict(folder: Path, texts: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        found = [int(model(**tokenizer(t, return_tensors="pt")).logits.argmax(-1)) for t in texts]
    return [model.config.id2label[i] for i in found]


@pytest.mark.slow
def test_a_classification_sweep_matches_scikit_learn_on_the_test_split(swept: Path,
                                                                       tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    from tunelab.engine.serve.export import export_trial

    trials = st.list_trials(swept, "tickets")
    assert sorted(t.method_kind or "" for t in trials) == ["full", "lora"]
    assert all(t.state == "complete" for t in trials), [t.error for t in trials]
    found = st.evaluations(swept, "tickets")
    for t in trials:
        values = found[f"trial:{t.number}"]
        manifest = json.loads((Path(t.artifact_dir or "") / "manifest.json").read_text())
        test = [(r["messages"][0]["content"], r["messages"][1]["content"])
                for r in read_rows(manifest["data"]["test"])]
        # the export loads as a plain classifier (a LoRA one merged), with the class names
        out = export_trial(t, values, tmp_path / f"export-{t.number}", merge=False)
        predicted = _predict(out, [text for text, _ in test])
        truth = [label for _, label in test]
        assert values["test/accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-9)
        assert values["test/macro_f1"] == pytest.approx(
            f1_score(truth, predicted, average="macro"), abs=1e-9)
        labels = ["account", "billing", "delivery", "technical"]
        matrix = from_values(values)
        assert matrix is not None and list(matrix.labels) == labels
        assert [[matrix.count(a, b) for b in labels] for a in labels] == \
            confusion_matrix(truth, predicted, labels=labels).tolist()
        assert t.value == values["validation/macro_f1"]  # the objective, on validation
        assert "text-classification" in (out / "README.md").read_text()
    best = max(trials, key=lambda t: t.value or 0)
    assert found[f"trial:{best.number}"]["test/accuracy"] > 0.7  # it learned the teams
    assert found["base"]["test/accuracy"] < 0.6  # the base under a new head does not know them
    assert "test/accuracy" in found["base+3shot"]  # the base language model, prompted


@pytest.mark.slow
def test_the_samples_are_the_test_texts_with_their_predicted_labels(swept: Path) -> None:
    samples = st.samples(swept, "tickets", "trial:0")
    assert len(samples) == 8
    assert all(s.reference in {"account", "billing", "delivery", "technical"} for s in samples)
    assert all(s.output in {"account", "billing", "delivery", "technical"} for s in samples)


@pytest.mark.slow
def test_chat_refuses_a_classifier_in_words(swept: Path) -> None:
    from tunelab.engine.serve.refs import resolve

    with pytest.raises(TrainError, match="trains a classifier"):
        resolve(swept, "tickets", "best")


@pytest.mark.slow
async def test_the_trial_screen_shows_the_confusion_matrix(swept: Path) -> None:
    from tui_pilot import open_trials, settle

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.widgets.table import VimTable

    app = TunelabApp([swept])
    async with app.run_test(size=(80, 24)) as pilot:
        trials = await open_trials(pilot)
        trials.query_one(VimTable).move_cursor(row=2)  # base, base 3-shot, then trial 0
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#confusion", VimTable)
        assert table.display and table.row_count == 4
        values = st.evaluations(swept, "tickets")["trial:0"]
        matrix = from_values(values)
        assert matrix is not None
        shown = [[str(c) for c in table.get_row(label)[1:]] for label in matrix.labels]
        assert shown == [[str(matrix.count(a, b)) for b in matrix.labels] for a in matrix.labels]
        found = problems(app)
        assert not found, "\n".join(found + screen_lines(app))
        assert "true ↓ predicted →" in "\n".join(screen_lines(app))


def test_check_refuses_a_classifier_without_the_label_format(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label\nhello,greeting\n")
    (tmp_path / "x.toml").write_text(
        'name = "x"\n[model]\nbase = "m"\n[data]\ntrain = "d.csv"\n[method]\n'
        'head = "classification"\n')
    with pytest.raises(SpecError, match=r'x.toml:\d+: method.head: "classification" learns text'):
        load_spec(tmp_path / "x.toml")
