"""Arena chat with real tiny models: both replies stream at once (on a shared base through
peft's mixed-adapter batch, the same text as each model alone), the screen stays blind until
the reveal, and each turn and vote lands in a review of kind 'arena' that the statistics and
the leaderboard count."""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.engine.review import arena
from tunelab.engine.review import reviews as review
from tunelab.engine.serve.chat import Settings, stream_reply
from tunelab.engine.serve.refs import ModelSource, resolve
from tunelab.engine.serve.side_by_side import load_pair, stream_pair

GREEDY = Settings(temperature=0, max_new_tokens=16)
ASK = [{"role": "user", "content": "What is 3 plus 4?"}]
ASK_MORE = [{"role": "user", "content": "What is 9 minus 2?"},
            {"role": "assistant", "content": "9 - 2 = 7"},
            {"role": "user", "content": "What is 12 plus 30?"}]


@pytest.fixture
def store(trained_store: Path, tmp_path: Path) -> Path:
    """A copy of the trained store (the checkpoints stay where they are): votes counted here
    are this test's only."""
    import duckdb

    st.flush_orphans(trained_store)
    copy = tmp_path / "tunelab.duckdb"
    shutil.copy(trained_store, copy)
    # trial folders are recorded relative to the store: its runs folder goes beside the copy
    (tmp_path / "tunelab-runs").symlink_to(trained_store.parent / "tunelab-runs")
    with duckdb.connect(str(copy)) as con:  # other tests' reviews of the shared store: not ours
        for table in ("votes", "review_items", "reviews", "review_ratings"):
            con.execute(f"DELETE FROM {table}")
    return copy


@pytest.fixture(scope="module")
def adapters(trained_store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ModelSource]:
    """Two LoRA adapters on the tiny model's base, with random (non-zero) weights, saved as a
    trial keeps them: the case where both sides share one base."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tunelab.engine.train import model as models

    base = resolve(trained_store, "tiny", "base")
    found = []
    for k in (1, 2):
        torch.manual_seed(k)
        peft = get_peft_model(models.load_model(base.base, base.experiment),
                              LoraConfig(r=4, target_modules="all-linear",
                                         init_lora_weights=False))
        folder = tmp_path_factory.mktemp(f"adapter{k}")
        peft.save_pretrained(folder)
        models.load_tokenizer(base.base, base.experiment).save_pretrained(folder)
        found.append(ModelSource(f"trial:{90 + k}", base.base, str(folder), True, base.experiment))
    return found


def _alone(source: ModelSource, messages: list[dict[str, str]]) -> str:
    """The reply of one model loaded on its own, through the plain chat path."""
    from tunelab.engine.serve.refs import ModelPool

    model, tokenizer = ModelPool().get(source)
    return "".join(stream_reply(model, tokenizer, messages, GREEDY, threading.Event(),
                                source.experiment.data.template))


def test_two_adapters_on_one_base_stream_at_once_as_each_would_alone(adapters, trained_store):
    pair = load_pair(*adapters)
    assert pair.shared and pair.sides[0].model is pair.sides[1].model  # one copy of the base
    snapshots = list(stream_pair(pair, (ASK, ASK_MORE), GREEDY, threading.Event()))
    assert len(snapshots) > 2
    assert any(0 < len(a) < len(snapshots[-1][0]) for a, _ in snapshots)  # A came in pieces
    assert any(0 < len(b) < len(snapshots[-1][1]) for _, b in snapshots)  # and so did B
    final = snapshots[-1]
    assert final[0] != final[1]
    assert final == (_alone(adapters[0], ASK), _alone(adapters[1], ASK_MORE))
    # the bare base as one side of the batch ("__base__") answers as the base model alone
    base = resolve(trained_store, "tiny", "base")
    mixed = load_pair(base, adapters[0])
    assert mixed.shared and mixed.sides[0].adapter == "__base__"
    last = list(stream_pair(mixed, (ASK_MORE, ASK), GREEDY, threading.Event()))[-1]
    assert last == (_alone(base, ASK_MORE), _alone(adapters[0], ASK))


def test_a_stop_ends_both_replies(adapters) -> None:
    stop = threading.Event()
    stop.set()  # the stop is checked after every token: at most one comes
    last = list(stream_pair(load_pair(*adapters), (ASK, ASK),
                            Settings(temperature=1.0, max_new_tokens=200, seed=1), stop))[-1]
    assert all(len(text) <= 8 for text in last)


def test_sides_are_a_coin_flip_per_arena() -> None:
    rng = random.Random(0)
    lefts = [arena.new("x", ("base", "trial:0"), rng).left for _ in range(2000)]
    assert 0.46 < lefts.count("base") / len(lefts) < 0.54
    assert arena.refs_of("best, 3") == ("best", "trial:3")
    with pytest.raises(st.TunelabError):
        arena.refs_of("best")


def test_the_same_model_twice_is_refused(store: Path) -> None:
    with pytest.raises(st.TunelabError, match="same model"):
        arena.resolve_pair(store, "tiny", ("best", "trial:0"))


def test_turns_and_votes_land_in_a_review_of_kind_arena(store: Path) -> None:
    refs = arena.resolve_pair(store, "tiny", ("base", "best"))
    pair = load_pair(*(resolve(store, "tiny", r) for r in refs))
    assert not pair.shared  # a full fine-tune and the base: two models
    found = arena.new("tiny", refs)
    with st.Spool(store, tag="arena-test") as spool:
        for turn, (ask, choice) in enumerate([(ASK, "a"), (ASK_MORE, "both_bad")]):
            a, b = list(stream_pair(pair, (ask, ask), GREEDY, threading.Event()))[-1]
            arena.record_turn(spool, found, turn, ask[-1]["content"], a, b)
            arena.record_vote(spool, found, turn, "ana", choice, 1.5)
    record = st.find_review(store, found.name)
    assert record is not None and record.kind == "arena" and record.experiment == "tiny"
    assert sorted(record.models) == sorted(refs)
    items = st.review_items(store, found.id)
    assert [(i.prompt, i.model_a, i.model_b) for i in items] == [
        ("What is 3 plus 4?", found.left, found.right),
        ("What is 12 plus 30?", found.left, found.right)]
    assert [(v.choice, v.rater) for v in st.review_votes(store, found.id)] == [
        ("a", "ana"), ("both_bad", "ana")]
    stats = review.stats(store, found.name, bootstrap=20)
    assert stats.votes == 2 and {r.model for r in stats.ratings} == set(refs)
    board = dict(st.query(store, "select model_ref, wins from leaderboard "
                                 "where experiment = 'tiny'").rows)
    assert board == {found.left: 1, found.right: 0}


def _screen_text(app) -> str:  # noqa: ANN001
    """Everything a person can read on the screen: titles, texts, inputs, keys, notices."""
    from textual.widgets import Input, Markdown, Static

    screen = app.screen
    parts = [str(app.title), str(app.sub_title), str(screen.title), str(screen.sub_title)]
    for w in screen.walk_children():
        parts.append(str(w.border_title or ""))
        if isinstance(w, Static):
            parts.append(str(w.render()))
        elif isinstance(w, Markdown):
            parts.append(w.source)
        elif isinstance(w, Input):
            parts += [w.placeholder, w.value]
    parts += [b.binding.description for b in screen.active_bindings.values()]
    parts += [n.message for n in app._notifications]
    return "\n".join(parts)


async def _send(pilot, text: str) -> None:  # noqa: ANN001
    from textual.widgets import Input

    box = pilot.app.screen.query_one("#message", Input)
    if box.disabled:  # after a vote: Enter opens the box for the next message
        await pilot.press("enter")
    box.value = text
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_arena_screen_is_blind_until_the_reveal_and_stores_the_votes(store) -> None:
    from textual.widgets import Markdown

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.arena import ArenaScreen

    app = TunelabApp([store], lambda: ArenaScreen(store, "tiny", ("base", "trial:0"), "pilot"))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()  # both models loaded
        await pilot.pause()
        screen = app.screen
        screen.settings = GREEDY
        shown: list[tuple[str, str]] = []
        original = screen._show
        screen._show = lambda a, b, texts: (shown.append(texts), original(a, b, texts))[1]
        for turn, (text, key) in enumerate([("What is 3 plus 4?", "a"),
                                            ("What is 9 minus 2?", "t")]):
            await _send(pilot, text)
            seen = _screen_text(app)
            for word in ("base", "trial", "tiny/", "best"):
                assert word not in seen.lower(), word
            assert f"turn {turn + 1}: which answer is better?" in seen
            for side, history in zip("ab", screen.histories, strict=True):
                replies = screen.query_one(f"#side-{side}").query(Markdown)
                assert len(replies) == turn + 1  # a reply per turn in each pane
                assert replies.last().source == (history[-1]["content"] or "(no answer)")
            await pilot.press(key)
            await pilot.pause()
            if turn == 0:  # taken back and given again: one live vote stays
                await pilot.press("u", "b")
                await pilot.pause()
        assert any(0 < len(a) < len(shown[-1][0]) for a, _ in shown)  # streamed in pieces
        assert any(0 < len(b) < len(shown[-1][1]) for _, b in shown)
        chosen = screen.arena
        await pilot.press("r")
        await pilot.pause()
        revealed = _screen_text(app)
        assert f"A · {chosen.left}" in revealed and f"B · {chosen.right}" in revealed
        await pilot.press("b")  # ignored: no more votes once the models are known
        await app.workers.wait_for_complete()
    st.flush_orphans(store)
    items = st.review_items(store, chosen.id)
    assert [(i.model_a, i.model_b) for i in items] == [(chosen.left, chosen.right)] * 2
    assert [i.prompt for i in items] == ["What is 3 plus 4?", "What is 9 minus 2?"]
    assert [v.choice for v in st.review_votes(store, chosen.id)] == ["b", "tie"]
    assert len(st.review_votes(store, chosen.id, include_undone=True)) == 3
    assert review.stats(store, chosen.name, bootstrap=20).votes == 2
    board = st.query(store, "select model_ref, votes from leaderboard where experiment = 'tiny' "
                            "order by 1").rows
    assert board == [("base", 2), ("trial:0", 2)]


async def test_A_on_the_trials_screen_opens_an_arena_and_escape_comes_back(store) -> None:
    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.arena import ArenaScreen
    from tunelab.tui.screens.trials import TrialsScreen

    app = TunelabApp([store])
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("enter", "j", "A"):  # the experiment, the row under the baseline: trial 0
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press(key)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ArenaScreen)
        assert app.screen.models is not None and set(app.screen.models) == {"base", "trial:0"}
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TrialsScreen)


def test_the_arena_command_refuses_the_same_model_twice_in_a_line(store: Path) -> None:

    from conftest import tunelab

    done = tunelab("chat", "tiny", "--arena", "best,0", "--store", str(store))
    assert done.returncode != 0
    assert "are the same model (trial:0)" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
