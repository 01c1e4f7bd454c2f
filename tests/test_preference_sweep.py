"""objective = "preference": a sweep steered by blind votes, end to end with a scripted rater
whose taste is known (it prefers the longer answer), voting through the store as the review
screen does while the runner trains."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest

from tunelab import store as st
from tunelab.engine.data.preferences import dpo_pairs
from tunelab.engine.errors import SpecError
from tunelab.engine.review import standing
from tunelab.engine.review.reviews import as_votes, next_item
from tunelab.engine.review.votes import Vote
from tunelab.engine.run import events as ev
from tunelab.engine.run import study as search
from tunelab.engine.run.runner import Runner
from tunelab.engine.spec import load_spec

pytestmark = pytest.mark.slow  # preference sweeps train their trials

# The searched key changes what the rater's taste sees: the longest answer a trial may give.
# The base model answers in one token, so a trial can beat it (three epochs teach the tiny
# model to answer "12 + 12 = 1"; one epoch, only to stop at once).
PREFERENCE_SWEEP = """
[method]
kind = "full"
[train]
epochs = 3
batch_size = 16
learning_rate = 3e-3
[eval]
samples = 6
max_new_tokens = 1
[search]
trials = 3
sampler = "grid"
objective = "preference"
votes_per_trial = 6
[search.space]
"eval.max_new_tokens" = [2, 5, 40]
"""


def taste(a: str, b: str) -> str:
    """The rater's vote between answer A and answer B: the longer one, a tie when equal."""
    return "a" if len(a.strip()) > len(b.strip()) else "b" if len(b.strip()) > len(a.strip()) \
        else "tie"


class Events:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def event(self, event: object) -> None:
        self.seen.append(event)


class Rater(threading.Thread):
    """Votes on the items the sweep waits on, as the review screen does: the next item by
    `next_item`, the vote by `store.vote_row` through a spool."""

    def __init__(self, store: Path, experiment: str) -> None:
        super().__init__(daemon=True)
        self.store, self.experiment = store, experiment
        self.done = threading.Event()
        self.waited_on: set[str] = set()  # every model seen in the `voting` state
        self.votes = 0

    def run(self) -> None:
        spool = st.Spool(self.store, tag="rater")
        try:
            while not self.done.wait(0.2):
                if not self.store.exists():
                    continue
                review = st.find_review(self.store, self.experiment)
                waiting = st.waiting_models(self.store, self.experiment)
                if review is None or not waiting:
                    continue
                self.waited_on |= waiting
                items = st.review_items(self.store, review.id)
                votes = st.review_votes(self.store, review.id)
                item = next_item(items, votes, "scripted", waiting=waiting)
                if item is None or not {item.model_a, item.model_b} & waiting:
                    continue  # nothing the sweep waits on is left to vote: wait for the judge
                spool.write([st.vote_row(review.id, item.item, "scripted",
                                         taste(item.output_a, item.output_b), 1.0)])
                self.votes += 1
        finally:
            spool.close()


def test_a_preference_sweep_finds_the_trial_the_raters_taste_implies(
        tmp_path: Path, small_experiment) -> None:
    spec = load_spec(small_experiment(PREFERENCE_SWEEP))
    store = tmp_path / "tunelab.duckdb"
    rater = Rater(store, "tiny")
    rater.start()
    events = Events()
    try:
        Runner(spec, store, events).run()
        best = optuna.load_study(study_name="tiny", storage=search.open_storage(
            str(tmp_path / "tunelab.optuna.journal"))).best_trial.number
        # `tunelab confirm`: the re-run joins the review and waits for its votes
        confirmed = Runner(spec, store, Events()).confirm([(best, 7)])
    finally:
        rater.done.set()
        rater.join()

    study = optuna.load_study(study_name="tiny", storage=search.open_storage(
        str(tmp_path / "tunelab.optuna.journal")))
    (number, outcome), = confirmed
    rerun = study.trials[-1]
    assert number == best and rerun.user_attrs["rerun_of"] == best
    assert outcome.result.state == "complete" and outcome.result.value == rerun.value
    assert rerun.params == study.trials[best].params  # same parameters, another seed
    trials = {t.number: t for t in study.get_trials() if "rerun_of" not in t.user_attrs}
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE
                                    for t in trials.values())
    # every trial waited for votes in the store's `voting` state, then was placed
    assert rater.waited_on == {f"trial:{t.number}" for t in study.trials}
    assert all(t.user_attrs["placed"] in {"won", "lost", "budget"} for t in study.trials)

    # the store agrees with the study: states, told values
    stored = {t.number: t for t in st.list_trials(store, "tiny")}
    everything = {t.number: t for t in study.get_trials()}
    assert {n: t.state for n, t in stored.items()} == dict.fromkeys(everything, "complete")
    for n, t in everything.items():
        assert stored[n].value == pytest.approx(t.value)

    # the votes in the store are what placed each trial against its opponent
    review = st.find_review(store, "tiny")
    assert review is not None
    items = st.review_items(store, review.id)
    votes = as_votes(items, st.review_votes(store, review.id))
    assert len(votes) == rater.votes
    for n, t in everything.items():
        found = standing.head_to_head(votes, f"trial:{n}", t.user_attrs["opponent"])
        assert 1 <= found.votes <= 6
        assert t.user_attrs["placed"] == (found.verdict or "budget")

    # the taste, computed on each model's samples alone, implies the best trial
    def score(ref: str) -> float:
        outputs = [s.output or "" for s in st.samples(store, "tiny", ref, limit=6)]
        return sum(len(o.strip()) for o in outputs) / len(outputs)

    tastes = {n: score(f"trial:{n}") for n in trials}
    assert best == max(trials, key=lambda n: trials[n].value)  # the sweep's best, before confirm
    assert tastes[best] == max(tastes.values())
    assert tastes[best] > score("base")
    assert trials[best].value > 0  # rated above the base model

    winner = [e for e in events.seen if isinstance(e, ev.PreferenceWinner)]
    assert winner and winner[0].number == best
    assert winner[0].votes >= 1
    # the votes are DPO pairs as before
    pairs, _ = dpo_pairs(store, "tiny")
    assert len(pairs) == sum(1 for v in votes if v.choice in {"a", "b"})
    _every_surface_names_its_number(store, events, trials, best, winner[0])


def _every_surface_names_its_number(store: Path, events: Events, trials: dict,
                                    best: int, winner: ev.PreferenceWinner) -> None:
    """Issue 25: one trial read `placed: rating +1110 over the base` in the run log, `winner:
    trial 1 · rating +1520 … interval +514 … no bound` at the end, `+1110` in the trials table,
    `1109.72` in the experiments list and the new-review dialog, `≥ 1092` on the statistics
    screen and `rating 1393.00` in the leaderboard view. Two numbers now, each named on every
    surface: the placement told to the search, and the review's current fit."""
    import re

    from typer.testing import CliRunner

    from tunelab.engine import format as fmt
    from tunelab.engine.review import reviews as review
    from tunelab.engine.review import words
    from tunelab.engine.review.bradley_terry import ratings
    from tunelab.tui.cli import app as cli
    from tunelab.tui.cli.output import console
    from tunelab.tui.cli.reporter import ConsoleReporter

    reporter = ConsoleReporter("tiny", "maximize", "preference")
    with console.capture() as captured:
        for event in events.seen:
            if isinstance(event, ev.PreferenceReview | ev.Voting | ev.Placed
                          | ev.PreferenceWinner):
                reporter.event(event)
    log = " ".join(captured.get().split())
    for number, t in trials.items():  # the run log: each placement as told to the search
        assert f"trial {number} placed {fmt.rating(t.value)} over the base, told to the search" \
            in log
    told = fmt.rating(trials[best].value)
    assert f"winner: trial {best} · placed {told} over the base (told to the search when" in log
    # the winner line's second number: the statistics' fit of the votes in at the end of the
    # run (`tunelab confirm` added votes since: the first `total` are those)
    found = st.find_review(store, "tiny")
    assert found is not None
    then = as_votes(st.review_items(store, found.id),
                    st.review_votes(store, found.id)[:winner.total])
    fitted = ratings(then)
    at_end = next(r for r in fitted if r.model == f"trial:{best}")
    assert winner.rated == words.rating_text(at_end)
    assert winner.rank == words.rank_text(at_end)
    assert (f"· the review now, on all {winner.total} votes: trial {best} rated "
            f"{words.rating_text(at_end)}, rank {words.rank_text(at_end)} of {len(fitted)} "
            "(1000 = the average model") in log
    stats = review.stats(store, "tiny", bootstrap=200)  # the statistics screen, now
    now = next(r for r in stats.ratings if r.model == f"trial:{best}")
    assert not re.search(r"\d\.\d\d\b", log), log  # no raw floats
    board = {row[0]: row[1:] for row in st.query(
        store, "SELECT model_ref, rating, rating_is FROM leaderboard WHERE experiment = 'tiny'"
    ).rows}
    rating, rating_is = board[f"trial:{best}"]
    assert words.rating_text(now) in {str(rating), f"≥ {rating}", f"≤ {rating}", "—"}
    assert rating_is in {"fitted", "at least", "at most", "no bound", "between", "ties only"}
    shown = CliRunner().invoke(cli, ["trials", "tiny", "--store", str(store)])
    assert shown.exit_code == 0, shown.output
    table = " ".join(shown.output.split())
    top = max(st.list_trials(store, "tiny"), key=lambda t: t.value or float("-inf"))  # confirm's
    assert "placed" in table and f"placed {fmt.rating(top.value)} over the base" in table
    assert f"{top.value:.2f}" not in table


class LateRater(Rater):
    """A person who starts voting only once every trial has trained: they all entered the
    review against the base model."""

    def __init__(self, store: Path, experiment: str, trials: int) -> None:
        super().__init__(store, experiment)
        self.trials = trials

    def run(self) -> None:
        while not self.done.wait(0.2):
            if self.store.exists() and len(st.waiting_models(self.store, self.experiment)) \
                    >= self.trials:
                break
        super().run()


def test_trials_that_beat_the_base_face_the_incumbent_before_they_are_placed(
        tmp_path: Path, small_experiment) -> None:
    """Trials trained faster than the votes came: each that beats the base then faces the best
    placed so far (a ladder), so the ratings tell the trials apart, not only from the base."""
    spec = load_spec(small_experiment(PREFERENCE_SWEEP))
    store = tmp_path / "tunelab.duckdb"
    rater = LateRater(store, "tiny", trials=3)
    rater.start()
    try:
        Runner(spec, store, Events()).run()
    finally:
        rater.done.set()
        rater.join()
    study = optuna.load_study(study_name="tiny", storage=search.open_storage(
        str(tmp_path / "tunelab.optuna.journal")))
    trials = {t.number: t for t in study.get_trials()}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials.values())
    assert all(t.user_attrs["faced"][0] == "base" for t in trials.values())  # all entered late
    review = st.find_review(store, "tiny")
    assert review is not None
    items = st.review_items(store, review.id)
    # trials were compared with each other, not only with the base
    assert any("base" not in {i.model_a, i.model_b} for i in items)
    # the first trial placed as a winner faced only the base; every later winner faced a trial
    winners = [t for t in trials.values() if t.user_attrs["placed"] == "won"]
    assert sum(t.user_attrs["faced"] == ["base"] for t in winners) <= 1
    # and the longest answers (the rater's taste) are rated highest, above the others
    def score(ref: str) -> float:
        outputs = [s.output or "" for s in st.samples(store, "tiny", ref, limit=6)]
        return sum(len(o.strip()) for o in outputs) / len(outputs)

    best = max(trials, key=lambda n: trials[n].value)
    assert score(f"trial:{best}") == max(score(f"trial:{n}") for n in trials)


def test_a_preference_sweep_needs_samples_and_a_baseline(tmp_path: Path, small_experiment) -> None:
    for body, words in ((PREFERENCE_SWEEP.replace("samples = 6", "samples = 0"), "eval.samples"),
                        (PREFERENCE_SWEEP.replace("[eval]", "[eval]\nbaseline = false"),
                         "eval.baseline")):
        with pytest.raises(SpecError, match=words):  # said when the file loads, as check says it
            Runner(load_spec(small_experiment(body)), tmp_path / "tunelab.duckdb", Events())


def test_a_stopped_preference_sweep_resumes_waiting_for_votes(
        tmp_path: Path, small_experiment) -> None:
    """The first run ends (search.timeout) while its trial waits for votes: the trial stays
    RUNNING and `voting`, nothing is failed; the next run places it once the votes come."""
    one = PREFERENCE_SWEEP.replace("trials = 3", "trials = 1\ntimeout = 1")
    store = tmp_path / "tunelab.duckdb"
    Runner(load_spec(small_experiment(one)), store, Events()).run()
    journal = str(tmp_path / "tunelab.optuna.journal")
    (waiting,) = optuna.load_study(study_name="tiny", storage=search.open_storage(journal)).trials
    assert waiting.state == optuna.trial.TrialState.RUNNING and waiting.user_attrs["voting"]
    assert [t.state for t in st.list_trials(store, "tiny")] == ["voting"]

    rater = Rater(store, "tiny")
    rater.start()
    events = Events()
    try:
        Runner(load_spec(small_experiment(one.replace("timeout = 1", ""))), store, events).run()
    finally:
        rater.done.set()
        rater.join()
    (placed,) = optuna.load_study(study_name="tiny", storage=search.open_storage(journal)).trials
    assert placed.state == optuna.trial.TrialState.COMPLETE and rater.votes >= 1
    assert not [e for e in events.seen if isinstance(e, ev.Stale | ev.TrialStart)]
    assert [(t.state, t.value) for t in st.list_trials(store, "tiny")] == [
        ("complete", pytest.approx(placed.value))]


def test_placed_by_four_unanimous_votes_or_the_budget() -> None:
    def votes(choices: str) -> list[Vote]:
        return [Vote(k, "r", c, "trial:0", "base") for k, c in enumerate(choices)]

    assert standing.placed(votes("aaa"), "trial:0", "base", budget=12) is None
    assert standing.placed(votes("aaaa"), "trial:0", "base", budget=12) == "won"
    assert standing.placed(votes("bbbb"), "trial:0", "base", budget=12) == "lost"
    assert standing.placed(votes("abab"), "trial:0", "base", budget=4) == "budget"
    rated = standing.ratings(votes("aaaa"))
    assert rated["base"] == 0 and rated["trial:0"] > 0  # finite although unanimous


def test_the_items_the_sweep_waits_on_come_first() -> None:
    from tunelab.store import ReviewItem

    items = [ReviewItem("r", k, None, f"p{k}", a, b, "x", "y", None)
             for k, (a, b) in enumerate([("base", "trial:0")] * 3 + [("trial:0", "trial:1")] * 2)]
    found = next_item(items, [], "me", waiting={"trial:1"})
    assert found is not None and "trial:1" in (found.model_a, found.model_b)
    assert next_item(items, [], "me") is not None


def test_preference_with_cost_is_a_front_sampled_with_the_constant_liar(small_experiment) -> None:
    body = PREFERENCE_SWEEP.replace('objective = "preference"',
                                    'objectives = ["preference", "cost"]').replace(
        'sampler = "grid"', 'sampler = "tpe"')
    exp = load_spec(small_experiment(body)).experiment
    assert exp.search.all_directions == ["maximize", "minimize"]
    assert search.build_sampler(exp)._constant_liar  # waiting trials count as the worst seen
    assert isinstance(search.build_pruner(exp), optuna.pruners.NopPruner)
    info = {"cost": 0.25, "preference": 140.0}
    assert search.objective_values(exp, None, info) == [140.0, 0.25]
    assert search.objective_values(exp, None, {"cost": 0.25}) is None  # not placed yet
    plain = load_spec(small_experiment(body.replace(
        'objectives = ["preference", "cost"]', 'objective = "eval_loss"'))).experiment
    assert not search.build_sampler(plain)._constant_liar
