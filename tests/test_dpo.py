"""The dpo stage: a tiny supervised trial, blind votes on its outputs, the votes exported, a
DPO trial from the supervised one on them; its preference accuracy must go up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.engine.data import preferences
from tunelab.engine.errors import SpecError
from tunelab.engine.review import reviews as review
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec
from tunelab.store import (
    Spool,
    evaluations,
    list_trials,
    query,
    review_items,
    vote_event,
    watch_samples,
)

from conftest import Quiet, train_tiny, tunelab

pytestmark = pytest.mark.slow  # DPO trials on a trained SFT parent


def _dpo_file(folder: Path, preferences_source: str, extra: str = "", name: str = "tiny-dpo") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n'
        '[method]\nstage = "dpo"\nfrom = "sft:best"\n'
        f'preferences = "{preferences_source}"\nbeta = 0.5\nmin_pairs = 6\n{extra}'
        '[train]\nepochs = 4\nbatch_size = 4\nlearning_rate = 5e-3\nlogging_steps = 1\n'
        'early_stopping_patience = 10\n'
        '[search]\ntrials = 1\n[eval]\nsamples = 2\nmax_examples = 8\nmax_new_tokens = 8\n')
    return path


@pytest.fixture(scope="module")
def voted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A LoRA SFT trial, a review of it against its base with a rater who always prefers the
    base's answer (the opposite of what the SFT model likes), and those votes exported."""
    folder = tmp_path_factory.mktemp("dpo")
    store = train_tiny(folder, "sft", 'kind = "lora"\nr = 8')

    prompts = review.test_prompts(store, "sft", 24)
    made = review.create(store, "sft", "sft-review", ["base", "best"], prompts, "test",
                         max_new_tokens=2)
    items = [i for i in review_items(store, made.id) if i.repeat_of is None]
    with Spool(store, tag="test-votes") as spool:
        spool.write([vote_event(made.id, i.item, "ana", "a" if i.model_a == "base" else "b", 2.0)
                     for i in items])
    out = folder / "pairs.jsonl"
    done = tunelab("review", "export", "sft-review", "--format", "dpo", "--out", str(out),
                   "--store", str(store))
    assert done.returncode == 0, done.stderr
    return store, out


def test_a_dpo_trial_on_exported_votes_ranks_the_chosen_answers_above_the_parent(voted) -> None:
    store, pairs = voted
    spec = load_spec(_dpo_file(store.parent, pairs.name), store=store)
    assert spec.experiment.method.from_ == "sft:0"  # best is pinned to the trial
    assert spec.experiment.method.kind == "lora" and spec.experiment.method.r == 8  # the parent's
    assert spec.experiment.eval.samples == 2 and spec.experiment.eval.baseline  # file, parent
    Runner(spec, store, Quiet()).run()

    trials = list_trials(store, "tiny-dpo")
    assert [t.state for t in trials] == ["complete"], trials[0].error
    values = evaluations(store, "tiny-dpo")
    parent, tuned = values["base"], values["trial:0"]
    # DPO's implicit reward now ranks the voted answer first; the parent is the reference, so
    # its own reward accuracy is 0 (every margin is 0). A swapped or misread vote fails here.
    assert parent["preferences_train/reward_accuracy"] == 0
    assert tuned["preferences_train/reward_accuracy"] >= 0.9
    assert tuned["preferences_train/reward_margin"] > 0
    # the chosen answers gained probability against the rejected ones. (This rater prefers
    # the base's long noise to the parent's empty answers, a gap of ~13 nats at the start: the
    # plain preference accuracy may not flip within a few steps, but it must not fall.)
    assert tuned["preferences_train/preference_accuracy"] >= \
        parent["preferences_train/preference_accuracy"]
    assert tuned["preferences/loss"] < parent["preferences/loss"]
    # the parent's log-probabilities of the pairs: measured once, by the baseline, for every
    # trial (engine/train/reference.py), one number per pair
    [kept] = store.parent.glob("**/reference-*.json")
    measured = json.loads(kept.read_text())
    assert {k: len(v[0]) for k, v in measured.items()} == {
        "train": parent["preferences_train/pairs"], "heldout": parent["preferences/pairs"]}
    # the same metrics as a supervised trial, on the parent's splits, and the objective
    assert {"validation/loss", "test/loss", "preferences/loss"} <= set(tuned)
    assert trials[0].value == pytest.approx(tuned["preferences/loss"])

    # the result is an adapter on the parent's base: chat and review load it like any trial
    trial = Path(trials[0].artifact_dir or "")
    assert (trial / "best" / "adapter_config.json").exists()
    assert not (trial / "best" / "ref").exists()
    manifest = json.loads((trial / "manifest.json").read_text())
    assert manifest["parent"]["trial"] == "sft:0"
    from tunelab.engine.serve.refs import ModelPool, resolve

    base = resolve(store, "tiny-dpo", "base")  # a dpo stage's base is its parent
    assert base.weights and base.weights.endswith("trial-0000/best") and base.adapter
    best = resolve(store, "tiny-dpo", "best")
    pool = ModelPool()
    pool.get(base)
    model, _ = pool.get(best)
    assert set(model.peft_config) == {"base", "trial_0"}  # one copy of the base model
    # and it can be reviewed blind against its parent, on the parent's test prompts
    assert review.test_prompts(store, "tiny-dpo", 3) == review.test_prompts(store, "sft", 3)


def test_a_dpo_stage_reads_the_votes_of_a_review_directly(voted) -> None:
    store, _ = voted
    spec = load_spec(_dpo_file(store.parent, "review:sft-review", name="from-review"), store=store)
    data = preferences.prepare(spec, store, store.parent / "prep")
    assert data.report.usable >= 6 and data.report.train and data.report.heldout
    assert data.parent_adapter is not None and data.base != data.parent_adapter
    rows = [json.loads(line) for line in data.files["train"].read_text().splitlines()]
    assert all(r["chosen"] != r["rejected"] for r in rows)


def test_too_few_votes_refuse_with_how_many_more_are_needed(voted, tmp_path: Path) -> None:
    store, _ = voted
    path = _dpo_file(store.parent, "review:sft-review", name="needs-more")
    path.write_text(path.read_text().replace("min_pairs = 6", "min_pairs = 500"))
    spec = load_spec(path, store=store)
    with pytest.raises(SpecError) as refused:
        Runner(spec, store, Quiet()).run()
    text = str(refused.value)
    usable = int(text.split(" gives ")[1].split()[0])
    assert f"needs at least 500 (method.min_pairs): vote on at least {500 - usable} more items" \
        in text
    assert "tunelab review sft-review" in text
    assert list_trials(store, "needs-more") == []  # nothing ran


def test_the_check_command_reports_the_pairs_and_the_parent(voted) -> None:
    store, pairs = voted
    path = _dpo_file(store.parent, pairs.name, name="checked")
    done = tunelab("check", str(path), "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "dpo from sft:0" in done.stdout and "usable pairs" in done.stdout
    assert "method  dpo on a lora" in done.stdout


def test_a_dpo_file_names_its_parent_and_its_pairs_or_is_told_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    ok = tmp_path / "ok.toml"
    ok.write_text('name = "ok"\n[method]\nstage = "dpo"\nfrom = "sft:best"\n'
                  'preferences = "pairs.jsonl"\n[search]\nobjective = "reward_accuracy"\n'
                  'direction = "maximize"\n[search.space]\n"method.beta" = [0.1, 0.3]\n'
                  '"method.loss_type" = ["sigmoid", "ipo"]\n')
    exp = load_spec(ok).experiment  # without a store it is only checked
    assert exp.method.from_ == "sft:best" and exp.model is None
    assert exp.model_dump(mode="json")["method"]["from"] == "sft:best"  # the file's key
    assert type(exp).model_validate(exp.model_dump(mode="json")) == exp

    cases = {
        '[method]\nstage = "dpo"\npreferences = "pairs.jsonl"\n': "method.from: a dpo stage",
        '[method]\nstage = "dpo"\nfrom = "sft"\npreferences = "pairs.jsonl"\n':
            "is not EXPERIMENT:best or EXPERIMENT:N",
        '[method]\nstage = "dpo"\nfrom = "sft:best"\n': "method.preferences: a dpo stage",
        '[method]\nstage = "dpo"\nfrom = "sft:best"\npreferences = "nope.jsonl"\n':
            "method.preferences: no file at",
        '[model]\nbase = "x"\n[method]\nstage = "dpo"\nfrom = "sft:1"\npreferences = "pairs.jsonl"\n':
            "[model]: a dpo stage uses its parent's model",
        '[model]\nbase = "x"\n[data]\ntrain = "pairs.jsonl"\n[method]\nfrom = "sft:1"\n':
            'method.from is read only by a preference stage: add stage = "dpo"',
    }
    for body, expected in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(f'name = "bad"\n{body}')
        with pytest.raises(SpecError) as error:
            load_spec(bad)
        assert expected in str(error.value), (body, str(error.value))


def test_pairs_are_checked_deduplicated_and_split_by_prompt(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    rows += [rows[0],  # a duplicate
             {"prompt": "q1", "chosen": "bad 1", "rejected": "good 1"},  # contradicts q1
             {"prompt": "same", "chosen": "x", "rejected": "x"},
             {"prompt": [{"role": "user", "content": "hi"}], "chosen": [
                 {"role": "assistant", "content": "hello"}], "rejected": "go away"}]
    lines = [json.dumps(r) for r in rows] + ["{not json", '{"prompt": "p", "chosen": "c"}']
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    pairs, report = preferences.load_pairs(str(path), tmp_path)
    assert (report.duplicates, report.conflicting, report.identical) == (1, 2, 1)
    assert report.broken == ["pairs.jsonl:45: not JSON (Expecting property name enclosed in "
                             "double quotes)", "pairs.jsonl:46: no 'rejected'"]
    assert len(pairs) == 40 and pairs[-1].messages == [{"role": "user", "content": "hi"}]
    train, held = preferences.split_pairs(pairs, 0.2, seed=42)
    assert 0 < len(held) < 20 and len(train) + len(held) == 40
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    # a pair never changes side when more come in
    _, more = preferences.split_pairs(pairs + [preferences.Pair("new", "a", "b")], 0.2, seed=42)
    assert {p.prompt for p in held} <= {p.prompt for p in more}


def test_searching_beta_or_the_loss_type_needs_an_objective_they_do_not_scale(tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    path = tmp_path / "x.toml"
    head = ('name = "x"\n[method]\nstage = "dpo"\nfrom = "sft:best"\npreferences = "pairs.jsonl"\n'
            '[search]\n')
    path.write_text(head + '[search.space]\n"method.beta" = [0.1, 0.3]\n')
    with pytest.raises(SpecError, match="the DPO loss is not comparable across method.beta"):
        load_spec(path)
    path.write_text(head + 'objective = "reward_accuracy"\ndirection = "maximize"\n'
                    '[search.space]\n"method.beta" = [0.1, 0.3]\n')
    assert load_spec(path).experiment.search.objective == "reward_accuracy"


def test_a_conversation_is_shown_plainly_and_kept_whole_for_the_dpo_stage(voted) -> None:
    store, _ = voted
    from tunelab.engine.data import render as chat_render
    from tunelab.engine.serve.refs import resolve
    from tunelab.engine.train import model as models
    from tunelab.engine.train import pairs as train_pairs

    turns = [{"role": "user", "content": "Add 2 and 3."},
             {"role": "assistant", "content": "2 + 3 = 5"},
             {"role": "user", "content": "Now add 4."}]
    prompts_file = store.parent / "conversations.jsonl"
    prompts_file.write_text(json.dumps({"messages": turns}) + "\n" +
                            json.dumps({"prompt": "Add 1 and 1."}) + "\n")
    made = review.create(store, "sft", "conversations", ["base", "best"],
                         review.file_prompts(prompts_file, 5), str(prompts_file),
                         max_new_tokens=4)
    items = review_items(store, made.id)
    first = next(i for i in items if i.messages)
    assert first.messages == turns
    assert first.prompt == "user: Add 2 and 3.\n\nassistant: 2 + 3 = 5\n\nuser: Now add 4."
    assert "<" not in first.prompt  # no template markup in front of a rater
    assert any(i.prompt == "Add 1 and 1." and i.messages is None for i in items)

    with Spool(store, tag="conversation-votes") as spool:
        spool.write([vote_event(made.id, i.item, "ana", "a" if i.model_a == "base" else "b", 1.0)
                     for i in items])  # the same verdict on a repeat with sides swapped
    pairs, _ = preferences.load_pairs("review:conversations", store)
    pair = next(p for p in pairs if p.messages)
    assert pair.messages == turns

    # the dpo stage renders the pair's prompt exactly as the models were prompted
    source = resolve(store, "sft", "best")
    tokenizer = models.load_tokenizer(source.base, source.experiment)
    template = chat_render.template_text("auto", tokenizer)
    row = {"prompt": pair.prompt, "messages": pair.messages, "chosen": pair.chosen,
           "rejected": pair.rejected + " no"}
    tokens = train_pairs.tokenize_pairs([row], tokenizer, template, 512)[0]
    prompt, _ = chat_render.generation_prompt(
        {"messages": [*turns, {"role": "assistant", "content": ""}]}, tokenizer, template)
    assert tokens["prompt_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_a_dpo_stage_watches_the_parents_validation_prompts(voted) -> None:  # noqa: ANN001
    store, pairs = voted
    path = _dpo_file(store.parent, pairs.name, name="watched-dpo")
    path.write_text(path.read_text() + "watch = 2\n")  # the file ends in its [eval] section
    Runner(load_spec(path, store=store), store, Quiet()).run()
    [trial] = list_trials(store, "watched-dpo")
    assert trial.state == "complete", trial.error
    watched = watch_samples(store, "watched-dpo", 0)
    steps = query(store, "select count(distinct step) from metrics where experiment = "
                         "'watched-dpo' and split = 'validation'").rows[0][0]
    # two prompts (the parent's first two of validation), the same two at every evaluation
    assert steps >= 1 and len(watched) == 2 * steps
    assert len({w.prompt for w in watched}) == 2 and all(w.output is not None for w in watched)


def test_the_parents_log_probabilities_are_measured_once_and_again_when_the_parent_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunelab.engine.run.jobs import TrialJob
    from tunelab.engine.spec import Experiment
    from tunelab.engine.train import pairs as train_pairs
    from tunelab.engine.train import reference

    parent = tmp_path / "parent"
    LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2)).save_pretrained(parent)
    model = LlamaForCausalLM.from_pretrained(parent)
    (tmp_path / "data").mkdir()
    exp = Experiment.model_validate({"name": "x", "model": {"base": str(parent)},
                                     "data": {"train": "d.jsonl"}})
    job = TrialJob(store="", experiment={}, number=0, trial_id=None, study_name="x", storage="",
                   base=str(parent), data={"train": str(tmp_path / "data" / "train.jsonl")},
                   out_dir=str(tmp_path / "t"))
    sets = {"train": [{"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]}] * 3,
            "heldout": [{"prompt_ids": [1, 7], "chosen_ids": [8], "rejected_ids": [9, 10]}]}
    measured: list[int] = []
    real = train_pairs.sequence_logps
    monkeypatch.setattr(reference, "sequence_logps",
                        lambda *args: measured.append(1) or real(*args))
    first = reference.reference_logps(job, exp, model, sets, 0)
    assert len(measured) == 2 and len(first["train"][0]) == 3  # each set once
    assert reference.reference_logps(job, exp, model, sets, 0) == first and len(measured) == 2
    assert first["train"] == real(model, sets["train"], 0, reference.BATCH)
    # other pairs, or a parent trained again (its weights rewritten), are measured again
    reference.reference_logps(job, exp, model, {**sets, "heldout": sets["heldout"] * 2}, 0)
    assert len(measured) == 4
    model.save_pretrained(parent)
    reference.reference_logps(job, exp, model, sets, 0)
    assert len(measured) == 6
