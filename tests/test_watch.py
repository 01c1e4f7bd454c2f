"""A trial watched as it learns (eval.watch) and the examples it finds hardest
(example_losses): real tiny trainings, the rows read back from the store, the trial screen's
Samples tab driven by Textual's Pilot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec
from tunelab.tui.app import TunelabApp
from tunelab.tui.screens.trial import TrialScreen
from tunelab.tui.screens.trials import TrialsScreen
from tunelab.tui.widgets.table import VimTable

from conftest import EXPERIMENTS, Quiet, tunelab_command

pytestmark = pytest.mark.slow  # watched trials train

# lines (from 1) of the data file whose answer is replaced by text off the task's format
MISLABELLED = (17, 88, 151, 203)
WRONG = "Purple elephants quietly sing old sea shanties under the northern lights."


def write_experiment(folder: Path, name: str, method: str, epochs: int, watch: int,
                     scores: str = "true") -> Path:
    lines = (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:240]
    for number in MISLABELLED:
        row = json.loads(lines[number - 1])
        lines[number - 1] = json.dumps({"prompt": row["prompt"], "completion": WRONG})
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n[model]\nscratch = {{ hidden_size = 64, layers = 2, heads = 4, '
        'vocab_size = 256 }\n[data]\ntrain = "data.jsonl"\n'
        f'[method]\n{method}\n[train]\nepochs = {epochs}\nbatch_size = 16\n'
        'learning_rate = 3e-3\n[search]\ntrials = 1\n'
        f'[eval]\nsamples = 2\nmax_new_tokens = 8\nwatch = {watch}\nwatch_max_new_tokens = 8\n'
        f'example_losses = {scores}\n')  # "auto" scores from 4 epochs; these train 1 to 3
    return path


@pytest.fixture(scope="module")
def watched_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full fine-tune of 3 epochs, watching 3 prompts, with four mislabelled rows."""
    folder = tmp_path_factory.mktemp("watch")
    path = write_experiment(folder, "watched", 'kind = "full"', epochs=3, watch=3)
    store = folder / "tunelab.duckdb"
    Runner(load_spec(path), store, Quiet()).run()
    return store


def test_watched_prompts_are_answered_at_every_evaluation(watched_store: Path) -> None:
    [trial] = st.list_trials(watched_store, "watched")
    assert trial.state == "complete", trial.error
    watched = st.watch_samples(watched_store, "watched", 0)
    evaluations = st.query(watched_store, "select distinct step from metrics where experiment = "
                                          "'watched' and split = 'validation' order by step").rows
    assert len(evaluations) == 3
    # three prompts at each of the three evaluations, stored with that evaluation's step and epoch
    assert sorted({w.step for w in watched}) == [r[0] for r in evaluations]
    assert sorted({round(w.epoch or 0) for w in watched}) == [1, 2, 3]
    assert len(watched) == 9 and {w.position for w in watched} == {0, 1, 2}
    # the same prompts at every evaluation: the first three of the validation split
    for position in range(3):
        prompts = {w.prompt for w in watched if w.position == position}
        references = {w.reference for w in watched if w.position == position}
        assert len(prompts) == 1 and len(references) == 1
    # ...which are the first three of the validation split (its lines found through example_losses)
    data = (watched_store.parent / "data.jsonl").read_text().splitlines()
    first = dict(st.query(watched_store, "select position, source_row from example_losses where "
                                         "split = 'validation' and position < 3").rows)
    for position in range(3):
        asked = json.loads(data[first[position] - 1])["prompt"]
        assert all(asked in (w.prompt or "") for w in watched if w.position == position)
    assert all(w.output is not None for w in watched)


def test_every_train_and_validation_example_has_its_loss_and_source_line(
        watched_store: Path) -> None:
    data = (watched_store.parent / "data.jsonl").read_text().splitlines()
    rows = st.query(watched_store, "select split, position, origin, source_row, tokens, loss "
                                   "from example_losses where experiment = 'watched' and trial = 0"
                    ).rows
    sizes = dict(st.query(watched_store, "select 'train', train_rows from data_reports union all "
                                         "select 'validation', validation_rows from data_reports"
                          ).rows)
    for split in ("train", "validation"):
        mine = [r for r in rows if r[0] == split]
        assert len(mine) == sizes[split] > 0
        assert sorted(r[1] for r in mine) == list(range(sizes[split]))
    assert len({r[3] for r in rows}) == len(rows)  # one row per example, each its own line
    for split, _, origin, line, tokens, loss in rows:
        assert origin == f"data.jsonl:{line}"
        prompt = json.loads(data[line - 1])["prompt"]
        assert tokens > 0 and loss > 0, (split, line, prompt)


def test_the_mislabelled_rows_rank_hardest(watched_store: Path) -> None:
    ranked = st.query(watched_store, "select source_row from example_losses where experiment = "
                                     "'watched' order by loss desc").rows
    lines = [r[0] for r in ranked]
    present = [n for n in MISLABELLED if n in lines]  # the others went to the test split
    assert present, "every mislabelled row landed in the test split"
    assert sorted(lines[:len(present)]) == sorted(present)
    hardest = st.hardest_examples(watched_store, "watched", 0, limit=len(present))
    assert sorted(e.source_row for e in hardest) == sorted(present)


async def _settle(pilot) -> None:  # noqa: ANN001
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_the_samples_tab_shows_the_watched_answers_per_epoch_and_the_hardest_examples(
        watched_store: Path) -> None:
    watched = st.watch_samples(watched_store, "watched", 0)
    hardest = st.hardest_examples(watched_store, "watched", 0, limit=1)[0]

    async def drive() -> None:
        app = TunelabApp([watched_store])
        async with app.run_test(size=(100, 40)) as pilot:
            await _settle(pilot)
            await pilot.press("enter")
            await _settle(pilot)
            assert isinstance(app.screen, TrialsScreen)
            app.screen.query_one(VimTable).move_cursor(row=1)  # row 0 is the baseline
            await pilot.press("enter")
            await _settle(pilot)
            screen = app.screen
            assert isinstance(screen, TrialScreen)
            await pilot.press("4")
            await pilot.pause()
            text = str(screen.query_one("#sample-text").render())
            assert "watched as it learned (3 evaluations)" in text
            for epoch in ("epoch 1 ", "epoch 2 ", "epoch 3 "):
                assert text.count(epoch) == 3  # each of the three prompts at each epoch
            first = [w for w in watched if w.position == 0]
            assert first[0].prompt.strip() in text
            for w in first:
                assert (w.output or "").strip().replace("\n", " ⏎ ") in text
            assert "hardest examples" in text and hardest.origin in text

    asyncio.run(drive())


@pytest.mark.parametrize("kind", ["lora", "qlora", "prefix"])
def test_watching_and_example_losses_work_for_every_adapter_method(kind: str, tmp_path: Path) -> None:
    method = f'kind = "{kind}"\nr = 8\nnum_virtual_tokens = 8'
    path = write_experiment(tmp_path, f"w-{kind}", method, epochs=1, watch=2)
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(path), store, Quiet()).run()
    [trial] = st.list_trials(store, f"w-{kind}")
    assert trial.state == "complete", trial.error
    watched = st.watch_samples(store, f"w-{kind}", 0)
    assert len(watched) == 2 and all(w.output is not None for w in watched)
    counted = st.query(store, f"select count(*), count(loss) from example_losses where "
                              f"experiment = 'w-{kind}'").rows[0]
    report = st.query(store, "select train_rows + validation_rows from data_reports").rows[0][0]
    assert counted == (report, report)


def test_example_losses_auto_skips_a_trial_of_fewer_than_four_epochs(tmp_path: Path) -> None:
    """Scoring costs about a third of an epoch: "auto" (the default) skips it where that would
    be more than 10 % of the trial."""
    path = write_experiment(tmp_path, "short", 'kind = "full"', epochs=2, watch=0, scores='"auto"')
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(path), store, Quiet()).run()
    assert st.list_trials(store, "short")[0].state == "complete"
    assert st.query(store, "select count(*) from example_losses").rows[0][0] == 0
    assert st.query(store, "select count(*) from watch_samples").rows[0][0] == 0


def test_rendering_after_a_padded_tokenizer_call_does_not_pad(watched_store: Path) -> None:
    """transformers leaves a padded call's padding set on the Rust tokenizer: examples rendered
    after a batched generate came back left-padded (their losses were then wrong)."""
    from transformers import AutoTokenizer

    from tunelab.engine.train import model as models

    [trial] = st.list_trials(watched_store, "watched")
    tokenizer = AutoTokenizer.from_pretrained(Path(trial.artifact_dir) / "best")
    rows = [{"prompt": "What is 3 plus 4?", "completion": "3 + 4 = 7"},
            {"prompt": "Subtract 24 from 28, and then add 12 to it.", "completion": "16"}]
    before = models.render(rows, tokenizer)
    tokenizer.padding_side = "left"
    tokenizer(["a", "a much longer text than the first"], padding=True)
    assert models.render(rows, tokenizer) == before
    assert tokenizer.pad_token_id not in before[0]["input_ids"]



def test_watching_does_not_change_what_the_trial_learns(watched_store: Path, tmp_path: Path) -> None:
    """The same trial without eval.watch: the same validation curve and the same test loss (a
    generate between evaluations once left the tokenizer padding, and the test loss after it
    was measured on left-padded examples)."""
    path = write_experiment(tmp_path, "watched", 'kind = "full"', epochs=3, watch=0)
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(path), store, Quiet()).run()
    curve = ("select step, value from metrics where experiment = 'watched' and "
             "split = 'validation' and name = 'loss' order by step")
    assert st.query(store, curve).rows == pytest.approx(st.query(watched_store, curve).rows)
    for key in ("validation/loss", "test/loss"):
        assert st.evaluations(store, "watched")["trial:0"][key] == pytest.approx(
            st.evaluations(watched_store, "watched")["trial:0"][key], rel=1e-5)
    assert st.query(store, "select count(*) from watch_samples").rows[0][0] == 0


def test_out_of_memory_while_scoring_examples_halves_the_batch_or_skips_but_keeps_the_trial(
        tmp_path: Path) -> None:
    """A trained trial is not sent back to the start (the retry at half the micro-batch) because
    scoring its examples ran out of memory: the batch halves, and at one example the scoring
    alone is given up."""
    path = write_experiment(tmp_path, "oom-scoring", 'kind = "full"', epochs=2, watch=0)
    store = tmp_path / "tunelab.duckdb"
    env = {**os.environ, "TUNELAB_FAULT_OOM_SCORING": "99"}  # 16, 8, 4, 2, 1: every try "runs out"
    done = subprocess.run([*tunelab_command(), "run", str(path), "--store", str(store)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    state, micro = st.query(store, "select state, micro_batch from trials").rows[0]
    assert (state, micro) == ("complete", 16)  # trained once, at the first micro-batch
    assert st.query(store, "select count(*) from example_losses").rows[0][0] == 0


def test_an_examples_loss_is_the_models_own_loss_on_it_alone(watched_store: Path) -> None:
    """Batched, right-padded and sorted by length, each loss is still what the model gives the
    example alone with its prompt masked: the loss training minimised."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.engine.train import model as models
    from tunelab.engine.train.example_losses import per_example_losses

    [trial] = st.list_trials(watched_store, "watched")
    best = Path(trial.artifact_dir) / "best"
    tokenizer, model = AutoTokenizer.from_pretrained(best), AutoModelForCausalLM.from_pretrained(best)
    lines = (watched_store.parent / "data.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[:12]]
    rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                          {"role": "assistant", "content": r["completion"]}]} for r in rows]
    found = per_example_losses(model, tokenizer, rows, max_length=512, batch_size=5)
    for row, (tokens, loss) in zip(models.render(rows, tokenizer), found, strict=True):
        ids = torch.tensor([row["input_ids"]])
        labels = ids.clone()
        labels[0, ~torch.tensor(row["completion_mask"], dtype=torch.bool)] = -100
        with torch.no_grad():
            alone = float(model(input_ids=ids, labels=labels).loss)
        assert tokens == sum(row["completion_mask"][1:]) and loss == pytest.approx(alone, rel=1e-4)
