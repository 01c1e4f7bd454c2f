"""An LLM judge is a rater: a scripted judge behind a stub OpenAI-compatible server on the
loopback (it stands in for vLLM) and a small local model, on a review whose humans vote by a
script; the agreement, κ, position and length figures are checked against an independent count
(scikit-learn's cohen_kappa_score, scipy's binomial test)."""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import pytest
from judge_server import stub_server
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from tunelab import store as st
from tunelab.engine.review import reviews as review
from tunelab.tui.cli import app as cli

from conftest import tunelab

ITEMS = 40
HUMAN = ("good", "good", "good", "bad", "tie", "both_bad", "both_good", "good", "skip", "good")
JUDGE = ("right", "right", "first", "tie", "wrong", "right", "garbled", "right", "right")
LETTER = {"a": "[[A]]", "b": "[[B]]"}


def good_side(i: int) -> str:
    return "a" if i % 2 == 0 else "b"


def texts(i: int) -> tuple[str, str]:
    """(good answer, bad answer) of item i; the good one is longer on two items of three."""
    pad = " and so on" * (i % 3)
    return f"good {i}{pad}", f"bad {i}" + (" and more" * 3 if i % 3 == 0 else "")


def write_review(store: Path) -> str:
    now = time.time()
    events: list[st.Row] = [st.ReviewRow(
        id="rj", experiment="ab", name="judged", models=json.dumps(["x", "y"]),
        prompt_set="test", status="open", kind="review", created_at=now, updated_at=now)]
    for i in range(ITEMS):
        good, bad = texts(i)
        a, b = (good, bad) if good_side(i) == "a" else (bad, good)
        left, right = ("x", "y") if good_side(i) == "a" else ("y", "x")
        events.append(st.ReviewItemRow(review_id="rj", item=i, prompt_id=str(i), prompt=f"q{i}",
                                       model_a=left, model_b=right, output_a=a, output_b=b,
                                       created_at=now))
    # item ITEMS repeats item 1 with the sides swapped
    good, bad = texts(1)
    events.append(st.ReviewItemRow(review_id="rj", item=ITEMS, prompt_id="1", prompt="q1",
                                   model_a="x", model_b="y", output_a=good, output_b=bad,
                                   repeat_of=1, created_at=now))
    with st.Spool(store, tag="judge-test") as spool:
        spool.write(events)
    return "rj"


def human_choice(i: int) -> str:
    kind = HUMAN[i % len(HUMAN)]
    if kind in ("good", "bad"):
        side = good_side(i)
        return side if kind == "good" else ("b" if side == "a" else "a")
    return kind


def vote_humans(store: Path) -> None:
    with st.Spool(store, tag="humans") as spool:
        spool.write([st.vote_row("rj", i, "ana", human_choice(i), 1.0) for i in range(ITEMS)])
        spool.write([st.vote_row("rj", ITEMS, "ana", "a", 1.0)])  # item 1's repeat, consistent
        # bo votes on the first half only, always for the good answer
        spool.write([st.vote_row("rj", i, "bo", good_side(i), 1.0) for i in range(ITEMS // 2)])


def script(first: str, second: str) -> str:
    """The scripted judge: what it answers, by the item the answers come from."""
    i = int(first.split()[1])
    kind = JUDGE[i % len(JUDGE)]
    said = "Answer one is fine. "
    if kind == "right":
        return said + ("[[A]]" if first.startswith("good") else "[[B]]")
    if kind == "wrong":
        return said + ("[[A]]" if first.startswith("bad") else "[[B]]")
    if kind == "first":
        return said + "[[A]]"
    if kind == "tie":
        return said + "[[C]]"
    return "I cannot decide which one is better."


def judge_orders(i: int) -> tuple[str | None, str | None]:
    """The scripted judge's verdict in each order, in the item's sides, counted by hand."""
    kind = JUDGE[i % len(JUDGE)]
    side = good_side(i)
    other = "b" if side == "a" else "a"
    return {"right": (side, side), "wrong": (other, other), "first": ("a", "b"),
            "tie": ("tie", "tie"), "garbled": (None, None)}[kind]


@pytest.fixture(scope="module")
def judged_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[dict]]:
    """The review judged by the scripted judge, once for the module: (the store, what `review
    judge` printed, the requests the server received). Tests read a copy (`judged`)."""
    store = tmp_path_factory.mktemp("judged") / "tunelab.duckdb"
    write_review(store)
    vote_humans(store)
    with pytest.MonkeyPatch.context() as patched:
        patched.setenv("JUDGE_KEY", "sk-test-secret-key")
        with stub_server(script, key="sk-test-secret-key") as (url, received):
            done = CliRunner().invoke(cli, ["review", "judge", "judged", "--endpoint", url,
                                            "--key-env", "JUDGE_KEY", "--store", str(store)])
    assert done.exit_code == 0, done.output
    return store, done.output, received


@pytest.fixture
def judged(judged_once: tuple[Path, str, list[dict]], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, list[dict]]:
    """A copy of the judged review's folder (every file the judging left in it) for one test,
    which may add votes or ratings to it."""
    store, output, received = judged_once
    folder = tmp_path / "judged"
    shutil.copytree(store.parent, folder)
    monkeypatch.setenv("JUDGE_KEY", "sk-test-secret-key")
    return folder / store.name, output, copy.deepcopy(received)


def test_the_judges_votes_combine_both_orders_as_mt_bench_counts_them(judged) -> None:
    store, output, received = judged
    assert len(received) == 2 * ITEMS  # both orders of every original, not the repeat
    assert all(r["model"] == "stub-judge-7b" and r["temperature"] == 0 for r in received)
    votes = {v.item: v.choice for v in st.review_votes(store, "rj")
             if v.rater == "judge:stub-judge-7b"}
    expected = {}
    for i in range(ITEMS):
        shown, swapped = judge_orders(i)
        expected[i] = "skip" if None in (shown, swapped) else shown if shown == swapped else "tie"
    assert votes == expected
    orders = {(j.item, j.shown): j.verdict for j in st.judgements(store, "rj")}
    assert orders == {(i, s): v for i in range(ITEMS)
                      for s, v in zip(("as shown", "swapped"), judge_orders(i), strict=True)}
    assert "judged 40 items in both orders" in output


def test_agreement_kappa_and_position_match_an_independent_count(judged) -> None:
    store, output, _ = judged
    found = review.review_judges(store, "rj")
    by_human = {a.human: a for a in found.agreements}
    assert set(by_human) == {"ana", "bo"}

    def label(choice: str) -> str:
        return choice if choice in ("a", "b") else "tie"

    judge = {}
    for i in range(ITEMS):
        shown, swapped = judge_orders(i)
        if None not in (shown, swapped):
            judge[i] = shown if shown == swapped else "tie"
    humans = {"ana": {i: human_choice(i) for i in range(ITEMS) if human_choice(i) != "skip"},
              "bo": {i: good_side(i) for i in range(ITEMS // 2)}}
    for name, given in humans.items():
        shared = sorted(set(given) & set(judge))
        ours = [label(given[i]) for i in shared]
        theirs = [judge[i] for i in shared]
        a = by_human[name]
        assert a.shared == len(shared)
        same = [x == y for x, y in zip(ours, theirs, strict=True)]
        assert a.with_ties == pytest.approx(sum(same) / len(shared))
        decisive = [(x, y) for x, y in zip(ours, theirs, strict=True) if "tie" not in (x, y)]
        assert a.decisive == len(decisive)
        assert a.without_ties == pytest.approx(sum(x == y for x, y in decisive) / len(decisive))
        assert a.kappa == pytest.approx(cohen_kappa_score(ours, theirs))

    # position: of the judge's decisive verdicts in single orders, those for the first shown
    singles = [(order, v) for i in range(ITEMS) for order, v in
               zip(("as shown", "swapped"), judge_orders(i), strict=True) if v in ("a", "b")]
    first = sum((v == "a") == (order == "as shown") for order, v in singles)
    lean = {r.rater: r for r in found.leanings}["judge:stub-judge-7b"]
    assert (lean.first_decisive, lean.first_wins) == (len(singles), first)
    assert lean.p_value == pytest.approx(binomtest(first, len(singles), 0.5).pvalue)
    both = [i for i in range(ITEMS) if None not in judge_orders(i)]
    assert (lean.judged, lean.consistent) == (
        len(both), sum(judge_orders(i)[0] == judge_orders(i)[1] for i in both))
    # length: of its decisive votes between answers of different length, those the longer won
    longer = []
    for i, v in judge.items():
        good, bad = texts(i)
        if v in ("a", "b") and len(good) != len(bad):
            longer.append((v == good_side(i)) == (len(good) > len(bad)))
    assert (lean.length_decisive, lean.longer_wins) == (len(longer), sum(longer))
    # and the table says them
    ana = by_human["ana"]
    assert f"{ana.kappa:.2f}" in output and "judges and humans" in output


def test_judge_votes_are_found_by_rater_and_its_key_is_never_stored(judged) -> None:
    store, _, _ = judged
    done = CliRunner().invoke(cli, ["sql", "--store", str(store), "select rater, count(*) "
                                    "from votes group by rater order by rater"])
    assert done.exit_code == 0, done.output
    assert "judge:stub-judge-7b" in done.output and "40" in done.output
    st.flush_orphans(store)
    for path in [store, *store.parent.rglob("*")]:
        if path.is_file():
            assert b"sk-test-secret-key" not in path.read_bytes(), path


def test_ratings_come_from_humans_unless_the_judge_is_asked_for(judged) -> None:
    store, _, _ = judged
    board = st.query(store, "select model_ref, votes from leaderboard where experiment = 'ab' "
                            "order by model_ref")
    # ana's verdicts (her consistent repeat of item 1 folds into it, as review stats counts it;
    # it stands alone only where she skipped the original) and bo's
    repeat = 1 if human_choice(1) == "skip" else 0
    humans = sum(1 for i in range(ITEMS) if human_choice(i) != "skip") + repeat + ITEMS // 2
    assert dict(board.rows) == {"x": humans, "y": humans}  # the judge's votes are not in it


def test_a_bad_prompt_file_or_an_unreachable_server_is_told_in_a_line(tmp_path: Path) -> None:
    store = tmp_path / "tunelab.duckdb"
    write_review(store)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Which is better? {answer_a} or {answer_b}\n")
    base = ["review", "judge", "judged", "--store", str(store), "--endpoint",
            "http://127.0.0.1:9/v1"]
    for extra, said in ((["--prompt", str(prompt)], "the judging prompt has no {question}"),
                        (["--model", "m"], "cannot reach the judge's server at")):
        done = tunelab(*base, *extra)
        assert done.returncode == 1 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    assert not [v for v in st.review_votes(store, "rj") if v.rater.startswith("judge:")]


def test_a_local_model_folder_judges_every_item_in_both_orders(trained_store: Path,
                                                               tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "tunelab.duckdb"
    st.flush_orphans(trained_store)
    shutil.copy(trained_store, store)
    # trial folders are recorded relative to the store: its runs folder goes beside the copy
    (tmp_path / "tunelab-runs").symlink_to(trained_store.parent / "tunelab-runs")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {k} plus {k}?"}) + "\n"
                               for k in range(6)))
    made = review.create(store, "tiny", "local", ["base", "best"],
                         review.file_prompts(prompts, 6), str(prompts), max_new_tokens=4)
    folder = Path(st.list_trials(store, "tiny")[0].artifact_dir or "") / "best"
    done = CliRunner().invoke(cli, ["review", "judge", "local", "--model", str(folder), "--as",
                                    "tiny", "--max-new-tokens", "6", "--store", str(store)])
    assert done.exit_code == 0, done.output
    originals = [i.item for i in st.review_items(store, made.id) if i.repeat_of is None]
    orders = st.judgements(store, made.id)
    assert sorted((j.item, j.shown) for j in orders) == sorted(
        (i, s) for i in originals for s in ("as shown", "swapped"))
    # a small model rarely writes the format: the likeliest verdict after its words is taken
    assert all(j.verdict in ("a", "b", "tie") for j in orders)
    votes = {v.item: v.choice for v in st.review_votes(store, made.id) if v.rater == "judge:tiny"}
    by_item: dict[int, dict[str, str | None]] = {}
    for j in orders:
        by_item.setdefault(j.item, {})[j.shown] = j.verdict
    assert votes == {i: o["as shown"] if o["as shown"] == o["swapped"] else "tie"
                     for i, o in by_item.items()}


def test_the_next_item_for_a_person_is_where_the_judge_doubts(judged) -> None:
    store, _, _ = judged
    items = st.review_items(store, "rj")
    judgements = st.judgements(store, "rj")
    unsure = [i for i in range(ITEMS) if None not in judge_orders(i)
              and judge_orders(i)[0] != judge_orders(i)[1]]
    # the good answer is always model x, which the people rate higher: a "wrong" verdict of
    # the judge contradicts their ratings
    against = [i for i in range(ITEMS) if JUDGE[i % len(JUDGE)] == "wrong"]
    votes = [v for v in st.review_votes(store, "rj")]
    seen = []
    for _ in range(len(unsure) + len(against) + 1):
        item = review.next_item(items, votes, "cy", "adaptive", judged=judgements)
        assert item is not None
        seen.append(item.item)
        votes.append(st.VoteRecord(f"v{item.item}", "rj", item.item, "cy", good_side(item.item),
                                   1.0, False))
    assert seen[:len(unsure)] == unsure  # first where it disagreed with itself
    assert seen[len(unsure):-1] == against  # then where it contradicts the people's ratings
    assert seen[-1] not in unsure + against  # then the adaptive order as before
    # the random order and the judge itself are not steered
    first = review.next_item(items, [], "dee", "random", judged=judgements)
    assert first is not None and first.item == 0


def test_the_ratings_count_humans_by_default_and_judges_or_all_on_request(judged) -> None:
    store, _, _ = judged
    people = review.stats(store, "judged", bootstrap=50)
    assert set(people.per_rater) == {"ana", "bo"} and people.raters == "humans"
    saved = st.query(store, "select model_ref, votes from review_ratings where scope = 'rj'")
    judges = review.stats(store, "judged", bootstrap=50, raters="judges")
    assert set(judges.per_rater) == {"judge:stub-judge-7b"}
    everyone = review.stats(store, "judged", bootstrap=50, raters="all")
    assert set(everyone.per_rater) == {"ana", "bo", "judge:stub-judge-7b"}
    # only the people's fit is saved: the leaderboard stays theirs
    assert st.query(store, "select model_ref, votes from review_ratings where scope = 'rj'"
                    ).rows == saved.rows
    done = CliRunner().invoke(cli, ["review", "stats", "judged", "--raters", "judges",
                                    "--store", str(store)])
    assert done.exit_code == 0 and "(judges' votes; not saved)" in done.output


async def test_the_statistics_screen_shows_the_judges(judged) -> None:
    from test_tui_review import screen_text
    from tui_pilot import settle

    from tunelab.tui.app import TunelabApp
    from tunelab.tui.screens.review_stats import ReviewStatsScreen

    store, _, _ = judged
    found = review.review_judges(store, "rj")
    app = TunelabApp([store], lambda: ReviewStatsScreen(store, st.find_review(store, "judged")))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app.screen)
        ana = next(a for a in found.agreements if a.human == "ana")
        row = next(line.split() for line in text.splitlines()
                   if line.split()[:2] == ["judge:stub-judge-7b", "ana"])
        assert row[2] == str(ana.shared) and row[-1] == f"{ana.kappa:.2f}"
        assert "Judges · LLM raters, left out of the ratings above" in text
        await pilot.press("q")
