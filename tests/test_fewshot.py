"""The few-shot baseline (eval.baseline_shots): the base model with k training examples in each
prompt, beside the zero-shot one; and the verdict that says when it already meets [success]."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab import store as st
from tunelab.engine import baselines
from tunelab.engine.data import render as chat_render
from tunelab.engine.run import events
from tunelab.engine.spec import Experiment
from tunelab.engine.train import fewshot

from conftest import Quiet


def _row(prompt: str, answer: str, system: str | None = None) -> dict:
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": [*turns, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


TRAIN = [_row(f"question {i}", f"answer {i}") for i in range(40)]


def test_the_examples_are_drawn_by_the_seed_the_same_every_time() -> None:
    first = fewshot.choose_examples(TRAIN, 3, seed=42)
    assert first == fewshot.choose_examples(TRAIN, 3, seed=42)
    assert len(first) == 3 and len({r["messages"][0]["content"] for r in first}) == 3
    assert first != fewshot.choose_examples(TRAIN, 3, seed=43)
    assert fewshot.choose_examples(TRAIN[:2], 3, seed=42) == random.Random(42).sample(TRAIN[:2], 2)


def test_with_a_chat_template_the_examples_are_earlier_turns_after_the_system_turn() -> None:
    examples = [_row("2+2", "4", system="ignored"), _row("3+3", "6")]
    row = _row("5+5", "10", system="Answer with a number.")
    shown = fewshot.with_examples(row, examples, plain=False)["messages"]
    assert [(m["role"], m["content"]) for m in shown] == [
        ("system", "Answer with a number."), ("user", "2+2"), ("assistant", "4"),
        ("user", "3+3"), ("assistant", "6"), ("user", "5+5"), ("assistant", "10")]


def test_with_the_plain_template_the_examples_are_text_before_the_prompt() -> None:
    from transformers import PreTrainedTokenizerFast

    from tunelab.engine.train.model import train_tokenizer

    tokenizer: PreTrainedTokenizerFast = train_tokenizer(["2+2\n4", "3+3\n6", "5+5\n10"], 128)
    template = chat_render.TEMPLATES["plain"]
    render = fewshot.prompt_with([_row("2+2", "4"), _row("3+3", "6")], plain=True, budget=512)
    prompt, reference = render(_row("5+5", "10"), tokenizer, template)
    assert prompt == "2+2\n4\n\n3+3\n6\n\n5+5\n" and reference == "10"
    # over the budget, the first examples go first
    short = len(tokenizer("3+3\n6\n\n5+5\n", add_special_tokens=False)["input_ids"]) + 1
    prompt, _ = fewshot.prompt_with([_row("2+2", "4"), _row("3+3", "6")], True, short)(
        _row("5+5", "10"), tokenizer, template)
    assert prompt == "3+3\n6\n\n5+5\n"


def test_the_verdict_names_the_baseline_with_the_fewest_examples_that_meets_it() -> None:
    success = {"exact_match": ">= 0.9"}
    found = {"base": {"test/exact_match": 0.2}, "base+3shot": {"test/exact_match": 0.93},
             "trial:0": {"test/exact_match": 0.99}}
    assert baselines.meets_words(success, found) == (
        "the base model with 3 examples meets exact_match ≥ 0.9: you may not need to fine-tune")
    found["base"]["test/exact_match"] = 0.95
    assert baselines.meets_words(success, found).startswith("the base model meets")
    assert baselines.meets_words(success, {"base": {"test/exact_match": 0.5}}) is None
    assert baselines.meets_words({}, found) is None
    assert [b.label for b in baselines.baselines(found)] == ["base", "base 3-shot"]
    assert baselines.shots_of("trial:3") is None and baselines.shots_of("base+12shot") == 12


def test_the_default_is_three_shots_and_it_runs_only_with_a_generation_metric() -> None:
    plain = {"name": "x", "model": {"base": "m"}, "data": {"train": "d.jsonl"}}
    exp = Experiment.model_validate(plain)
    assert exp.eval.baseline_shots == 3 and not fewshot.wanted(exp)  # perplexity alone
    exp = Experiment.model_validate({**plain, "eval": {"metrics": ["exact_match"]}})
    assert fewshot.wanted(exp)
    off = Experiment.model_validate({**plain, "eval": {"metrics": ["exact_match"],
                                                       "baseline_shots": 0}})
    assert not fewshot.wanted(off)


# ---------------------------------------------------------------- a sweep whose base meets it

WORDS = ["apple", "river", "stone", "cloud", "table", "horse", "lamp", "chair", "tree", "bread",
         "ship", "glove", "candle", "mirror", "garden", "bottle", "pencil", "window", "basket"]

BASE_MODEL = """
name = "follower"
[model]
scratch = { hidden_size = 64, layers = 2, heads = 4, vocab_size = 256 }
[data]
train = "follow.jsonl"
[method]
kind = "full"
[train]
epochs = 2
batch_size = 16
learning_rate = 3e-3
[search]
trials = 1
[eval]
samples = 0
baseline = false
"""

TASK = """
name = "colours"
[model]
base = "{base}"
[data]
train = "task.jsonl"
[method]
kind = "full"
[train]
epochs = 1
batch_size = 16
[search]
trials = 1
[eval]
metrics = ["accuracy"]
max_new_tokens = 4
samples = 4
[success]
accuracy = ">= 0.9"
"""


def _follower_data(folder: Path) -> None:
    """A model that answers "blue" when examples answered "blue" before the question, and
    "unsure" when asked cold (as instruction-tuned models follow the pattern of examples); and
    a task whose answer is always "blue"."""
    rng = random.Random(7)

    def question() -> str:
        return f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(100)}"

    rows = []
    for i in range(600):
        if i % 2:
            shown = "".join(f"{question()}\nblue\n\n" for _ in range(3))
            rows.append({"prompt": shown + question(), "completion": "blue"})
        else:
            rows.append({"prompt": question(), "completion": "unsure"})
    (folder / "follow.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = [{"prompt": question(), "completion": "blue"} for _ in range(300)]
    (folder / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task))


class Heard(Quiet):
    """A reporter that keeps the events of a run."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def event(self, event: object) -> None:
        self.events.append(event)

    def baseline(self) -> events.Baseline:
        return next(e for e in self.events if isinstance(e, events.Baseline))


@pytest.fixture(scope="module")
def met(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Heard]:
    """A local-folder base model that follows examples, and a sweep of a task on it."""
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    folder = tmp_path_factory.mktemp("fewshot")
    _follower_data(folder)
    store = folder / "tunelab.duckdb"
    (folder / "follower.toml").write_text(BASE_MODEL)
    Runner(load_spec(folder / "follower.toml"), store, Quiet()).run()
    best = Path(st.list_trials(store, "follower")[0].artifact_dir or "") / "best"
    (folder / "colours.toml").write_text(TASK.format(base=best))
    heard = Heard()
    Runner(load_spec(folder / "colours.toml"), store, heard).run()
    return store, heard


@pytest.mark.slow
def test_the_few_shot_base_meets_the_criterion_and_the_verdict_says_so(met) -> None:
    from tunelab.tui.cli import app

    store, heard = met
    found = st.evaluations(store, "colours")
    assert found["base"]["test/accuracy"] < 0.2  # cold, it is unsure
    assert found["base+3shot"]["test/accuracy"] >= 0.9  # with three examples, it answers
    sentence = ("the base model with 3 examples meets accuracy ≥ 0.9: you may not need to "
                "fine-tune")
    baseline = heard.baseline()
    assert baseline.meets == sentence and "base+3shot" in baseline.baselines
    # the end of `tunelab run` (and `tunelab trials`) says it plainly
    shown = CliRunner().invoke(app, ["trials", "colours", "--store", str(store)],
                               terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert sentence in shown.output
    assert "baseline (the base model with 3 examples): test accuracy 1.00" in shown.output
    # its outputs are kept beside the zero-shot ones, by the same prompt ids
    prompted = st.samples(store, "colours", "base+3shot")
    cold = st.samples(store, "colours", "base")
    assert [s.prompt for s in prompted] == [s.prompt for s in cold]
    assert all(s.output == "blue" for s in prompted) and all(s.output != "blue" for s in cold)


@pytest.mark.slow
def test_a_resumed_study_keeps_both_baselines_without_measuring_again(met) -> None:
    from tunelab.engine.run.runner import Runner
    from tunelab.engine.spec import load_spec

    store, _ = met
    folder = store.parent
    heard = Heard()
    Runner(load_spec(folder / "colours.toml"), store, heard).run()
    assert not any(isinstance(e, events.BaselineStart) for e in heard.events)
    baseline = heard.baseline()
    assert baseline.cached and set(baseline.baselines) == {"base", "base+3shot"}
