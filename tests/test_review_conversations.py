"""A review of the test split of a conversation data set (system prompts, several turns) keeps
each conversation whole: raters read it with its roles, the `samples` table shows it the same
way, and a dpo stage on the votes renders exactly the prompt the models were generated from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.data import preferences
from tunelab.engine.data import render as chat_render
from tunelab.engine.review import reviews as review
from tunelab.engine.run.runner import Runner
from tunelab.engine.serve.refs import resolve
from tunelab.engine.spec import load_spec
from tunelab.engine.train import model as models
from tunelab.engine.train import pairs as train_pairs

from conftest import EXPERIMENTS, Quiet

pytestmark = pytest.mark.slow  # a trained conversation model reviewed

SYSTEM = "You are a careful calculator."


def _conversations() -> list[dict]:
    """Arithmetic as conversations: every other row opens with a system prompt, the rest are
    two exchanges, the first kept as context."""
    rows = [json.loads(line) for line in
            (EXPERIMENTS / "data" / "arithmetic.jsonl").read_text().splitlines()[:320]]
    out = []
    for k in range(0, len(rows) - 1, 2):
        a, b = rows[k], rows[k + 1]
        if k % 4 == 0:
            out.append({"messages": [{"role": "system", "content": SYSTEM},
                                     {"role": "user", "content": a["prompt"]},
                                     {"role": "assistant", "content": a["completion"]}]})
        else:
            out.append({"messages": [{"role": "user", "content": a["prompt"]},
                                     {"role": "assistant", "content": a["completion"]},
                                     {"role": "user", "content": b["prompt"]},
                                     {"role": "assistant", "content": b["completion"]}]})
    return out


@pytest.fixture(scope="module")
def chat_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("conversations")
    (folder / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _conversations()))
    (folder / "chats.toml").write_text(
        'name = "chats"\n[model]\nscratch = { hidden_size = 64, layers = 2, heads = 4, '
        'vocab_size = 256 }\n[data]\ntrain = "chats.jsonl"\n[method]\nkind = "full"\n'
        '[train]\nepochs = 1\nbatch_size = 16\nlearning_rate = 3e-3\n[search]\ntrials = 1\n'
        '[eval]\nsamples = 6\nmax_new_tokens = 4\n')
    store = folder / "tunelab.duckdb"
    Runner(load_spec(folder / "chats.toml"), store, Quiet()).run()
    return store


def test_a_review_of_the_test_split_keeps_system_prompts_and_turns(chat_store: Path) -> None:
    rows = review.test_prompts(chat_store, "chats", 8)
    kinds = {r["messages"][0]["role"] for r in rows}
    assert kinds == {"system", "user"} and all(r.get("prompt") for r in rows)  # flattened too
    made = review.create(chat_store, "chats", "chats-review", ["base", "best"], rows, "test",
                         max_new_tokens=3)
    items = [i for i in st.review_items(chat_store, made.id) if i.repeat_of is None]
    wanted = {json.dumps(r["messages"][:-1]) for r in rows}  # the turns before the answer
    assert {json.dumps(i.messages) for i in items} == wanted
    for item in items:
        assert item.prompt.startswith(("system: ", "user: "))  # the roles are named
        assert item.prompt == preferences.readable(item.messages)
    assert any(i.prompt.startswith(f"system: {SYSTEM}\n\nuser: ") for i in items)

    # the samples of the trial show the same conversations, not the flattened "S\nQ"
    shown = [r[0] for r in st.query(chat_store, "SELECT prompt FROM samples").rows]
    assert shown and {p.split(":")[0] for p in shown} == {"system", "user"}
    assert all(p in {i.prompt for i in items} or "\n\n" in p for p in shown)

    with st.Spool(chat_store, tag="conversation-votes") as spool:
        spool.write([st.vote_event(made.id, i.item, "ana", "a" if i.model_a == "base" else "b",
                                   1.0) for i in items])
    pairs, _ = preferences.load_pairs("review:chats-review", chat_store)
    assert len(pairs) == len(items) and all(p.messages for p in pairs)

    # the dpo stage's prompt tokens are the generation prompt's, token for token
    source = resolve(chat_store, "chats", "best")
    tokenizer = models.load_tokenizer(source.base, source.experiment)
    template = chat_render.template_text("auto", tokenizer)
    by_turns = {json.dumps(r["messages"][:-1]): r for r in rows}
    for pair in pairs:
        row = {"prompt": pair.prompt, "messages": pair.messages, "chosen": pair.chosen + " x",
               "rejected": pair.rejected + " y"}
        tokens = train_pairs.tokenize_pairs([row], tokenizer, template, 512)[0]
        prompt, _ = chat_render.generation_prompt(by_turns[json.dumps(pair.messages)],
                                                  tokenizer, template)
        assert tokens["prompt_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
