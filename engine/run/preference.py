"""`objective = "preference"`: a sweep steered by a person's blind votes.

Each trial that finishes training enters the experiment's ongoing review (one per sweep, named
after the experiment) against the incumbent, the best model placed so far (the base model at
first): one item per test prompt pairs the trial's stored samples with the incumbent's, sides
random, as every review's items. `tunelab review NAME` and the TUI vote on them; the items of
trials the sweep waits on come first.

A trial that wins against an opponent who is no longer the incumbent (the trials
trained faster than the votes came, so several entered against the base) then faces the
incumbent before it is placed: a ladder, so that the winner has beaten the best placed before
it, not only the base.

Ask-and-tell: the trial stays RUNNING in Optuna and `voting` in the store while the runner
trains the next trials (TPE's constant liar keeps the sampler from proposing the same region
again meanwhile, engine.run.study). A judge thread refits the votes every few seconds and,
when a trial's votes against its opponent place it (engine.review.standing: the rank rule ranks
it apart from its opponent, or `search.votes_per_trial` verdicts are in), tells Optuna its
placement: its rating over the base model at that moment, fixed from then on. A trial that
loses stops waiting for votes and is told its placement as `complete`, not `pruned`: it is a
measurement, and TPE learns where not to search from the bad trials as much as from the good
(a pruned trial would be judged by its last reported loss, which is not what this sweep
maximises). The review's statistics are another number, the current fit of all its votes;
the end of the run names the winner by both, each labelled.

Nothing is lost on Ctrl-C: the votes are in the store, the waiting trials stay RUNNING with
`voting` in their user attributes, and the next `tunelab run` waits for their votes again.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.engine.errors import SpecError
from tunelab.engine.objectives import PREFERENCE
from tunelab.engine.refs import ModelRef
from tunelab.engine.review import standing
from tunelab.engine.review.reviews import _id as prompt_id
from tunelab.engine.review.reviews import as_votes
from tunelab.engine.run import events
from tunelab.engine.run import study as search
from tunelab.engine.run.jobs import TrialResult
from tunelab.engine.spec import Experiment
from tunelab.engine.spec.experiment import preference_mistake
from tunelab.store import (
    EvaluationRow,
    ReviewItemRow,
    ReviewRow,
    Spool,
    TrialRow,
    review_items,
    review_votes,
    samples,
)

JUDGE_EVERY_S = 2.0  # the votes are refitted this often while trials wait
REVIEW_ATTR = "preference_review"  # the study's user attribute holding its review's id


def wanted(exp: Experiment) -> bool:
    return PREFERENCE in exp.search.all_objectives


def check(exp: Experiment) -> None:
    """What a preference sweep needs, said before any trial trains (the rule the file is
    checked by when it loads: an experiment built another way is held to it too)."""
    mistake = preference_mistake(exp)
    if mistake:
        raise SpecError(mistake, "cannot vote on this sweep")


class PreferenceSweep:
    """The review side of one preference sweep: trials enter it, the judge places them."""

    def __init__(self, store: Path, exp: Experiment, spool: Spool, lock: Any,
                 event: Callable[[events.Event], None]) -> None:
        check(exp)
        self.store, self.exp, self.spool, self.lock, self.event = store, exp, spool, lock, event
        self.review_id = ""
        self._seen: dict[int, int] = {}  # trial -> verdicts at its last row, to write on change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._predictor: Any = None  # search.reward_model, loaded at the first trial

    # -- the review
    def open(self, study: Any) -> None:
        """The sweep's review: the one the study names, else a new one named after the
        experiment (a rerun of `tunelab run` finds its own)."""
        with self.lock:
            found = study.user_attrs.get(REVIEW_ATTR)
            if found is None:
                found = uuid.uuid4().hex
                study.set_user_attr(REVIEW_ATTR, found)
        self.review_id = found
        if not any(r.id == found for r in _reviews(self.store)):
            now = time.time()
            self.spool.write([ReviewRow(
                id=found, experiment=self.exp.name, name=self.exp.name, models=json.dumps(["base"]),
                prompt_set="test", status="open", kind="review", created_at=now,
                updated_at=now)])
        self.event(events.PreferenceReview(review=self.exp.name, waiting=len(self._waiting(study))))

    def enter(self, study: Any, trial: Any, row: TrialRow, info: dict[str, Any]) -> TrialResult:
        """A trained trial joins the review against the incumbent and waits for votes."""
        if not self.review_id:
            self.open(study)
        self.spool.ingest(wait=5)  # the trial process's samples
        ref, opponent = str(ModelRef.trial(row.number)), self._incumbent(study)
        pairs = self._pairs(ref, opponent)
        if not pairs:
            return TrialResult("failed", fail_reason="exception", info=info, error=(
                f"no samples of {ref} and {opponent} on the same prompts to vote on"))
        kept = {k: info.get(k) for k in ("values", "cost", "duration_s")}
        with self.lock:
            study._storage.set_trial_user_attr(trial._trial_id, "voting", True)
            study._storage.set_trial_user_attr(trial._trial_id, "opponent", opponent)
            study._storage.set_trial_user_attr(trial._trial_id, "faced", [opponent])
            study._storage.set_trial_user_attr(trial._trial_id, "row", row.event()["row"])
            study._storage.set_trial_user_attr(trial._trial_id, "info", kept)
        self._add_items(ref, opponent, pairs)
        self._predict(row.number, pairs)
        self.spool.write([_with(row, state="voting", value=None)])
        self.event(events.Voting(number=row.number, opponent=opponent, items=len(pairs),
                                 review=self.exp.name))
        return TrialResult("voting", info=info)

    def _pairs(self, ref: str, opponent: str) -> list[tuple[str, str, str]]:
        """(prompt, ref's output, opponent's output) on the test prompts both answered."""
        mine = samples(self.store, self.exp.name, ref, limit=self.exp.eval.samples)
        theirs = {s.prompt: s.output or "" for s in samples(self.store, self.exp.name, opponent,
                                                            limit=self.exp.eval.samples)}
        return [(s.prompt, s.output or "", theirs[s.prompt]) for s in mine
                if s.prompt is not None and s.prompt in theirs]

    def _predict(self, number: int, pairs: list[tuple[str, str, str]]) -> None:
        """search.reward_model: the trial's predicted share of wins against its opponent, kept
        in evaluations (split reward); the review asks first about the highest. The model is
        loaded once, in this process."""
        if not self.exp.search.reward_model:
            return
        from tunelab.engine.review import predicted

        if self._predictor is None:
            self._predictor = predicted.Predictor.load(self.store, self.exp.search.reward_model)
        share = self._predictor.win_share(pairs)
        ref = str(ModelRef.trial(number))
        self.spool.write([EvaluationRow(experiment=self.exp.name, model_ref=ref,
                                        split=predicted.SPLIT, name=predicted.NAME, value=share,
                                        time=time.time())])
        self.event(events.Predicted(number=number, share=share,
                                    model=self._predictor.name))

    def _challenge(self, study: Any, t: Any, row: TrialRow, incumbent: str) -> bool:
        """A waiting trial that won against an opponent who is no longer the incumbent (trials
        trained faster than the votes came, so they all entered against the base) faces the
        incumbent before it is placed: a winner must have beaten the best placed so far, or
        its rating would only say it beat the base. False when there is nothing to vote on."""
        ref = str(ModelRef.trial(t.number))
        pairs = self._pairs(ref, incumbent)
        if not pairs:
            return False
        with self.lock:
            study._storage.set_trial_user_attr(t._trial_id, "opponent", incumbent)
            study._storage.set_trial_user_attr(
                t._trial_id, "faced", [*t.user_attrs.get("faced", []), incumbent])
        self._add_items(ref, incumbent, pairs)
        self.event(events.Voting(number=t.number, opponent=incumbent, items=len(pairs),
                                 review=self.exp.name))
        return True

    def _add_items(self, ref: str, opponent: str, pairs: list[tuple[str, str, str]]) -> None:
        items = review_items(self.store, self.review_id)
        start = max((i.item for i in items), default=-1) + 1
        models = sorted({m for i in items for m in (i.model_a, i.model_b)} | {ref, opponent})
        rng = random.Random(f"{self.review_id}:{ref}")  # sides: a coin flip per item, recorded
        now = time.time()
        rows: list[Any] = [ReviewRow(id=self.review_id, experiment=self.exp.name,
                                     name=self.exp.name, models=json.dumps(models),
                                     prompt_set="test", status="open", kind="review",
                                     updated_at=now)]
        for k, (prompt, mine, theirs) in enumerate(pairs):
            left, right = (ref, opponent) if rng.random() < 0.5 else (opponent, ref)
            outputs = {ref: mine, opponent: theirs}
            rows.append(ReviewItemRow(
                review_id=self.review_id, item=start + k, model_a=left, model_b=right,
                prompt_id=prompt_id(prompt), prompt=prompt, output_a=outputs[left],
                output_b=outputs[right], created_at=now))
        self.spool.write(rows)

    def _incumbent(self, study: Any) -> str:
        """The placed trial rated highest on the votes so far, when it beats the base; else
        the base."""
        placed = {str(ModelRef.trial(t.number)) for t in _trials(study) if t.user_attrs.get("placed")}
        if not placed:
            return standing.BASE
        rated = standing.ratings(self._votes())
        best = max(placed, key=lambda ref: rated.get(ref, float("-inf")))
        return best if rated.get(best, float("-inf")) > 0 else standing.BASE

    def _votes(self) -> list[Any]:
        return as_votes(review_items(self.store, self.review_id),
                        review_votes(self.store, self.review_id))

    # -- the judge
    def _waiting(self, study: Any) -> list[Any]:
        import optuna

        return [t for t in _trials(study) if t.state == optuna.trial.TrialState.RUNNING
                and t.user_attrs.get("voting")]

    def judge(self, study: Any) -> int:
        """Tells Optuna the rating of every waiting trial its votes place; returns how many
        still wait. The trials table shows the others' provisional ratings."""
        waiting = self._waiting(study)
        if not waiting:
            return 0
        votes = self._votes()
        rated = standing.ratings(votes)
        left = 0
        for t in waiting:
            ref, opponent = str(ModelRef.trial(t.number)), t.user_attrs["opponent"]
            found = standing.head_to_head(votes, ref, opponent)
            budget = self.exp.search.votes_per_trial
            how = found.verdict or ("budget" if found.votes >= budget else None)
            row = TrialRow(**t.user_attrs["row"])
            rating = rated.get(ref)
            if how == "won":
                incumbent = self._incumbent(study)
                if incumbent not in {ref, *t.user_attrs.get("faced", [opponent])} and \
                        self._challenge(study, t, row, incumbent):
                    left += 1
                    continue
            if how is None:
                left += 1
                if self._seen.get(t.number) != found.votes:  # a new vote: a new provisional rating
                    self._seen[t.number] = found.votes
                    self.spool.write([_with(row, state="voting", value=rating)])
                continue
            self._tell(study, t, row, rating or 0.0, how, found)
        return left

    def _tell(self, study: Any, t: Any, row: TrialRow, rating: float, how: str,
              found: standing.HeadToHead) -> None:
        import optuna

        info = {**t.user_attrs.get("info", {}), PREFERENCE: rating}
        values = search.objective_values(self.exp, rating if self.exp.search.objective ==
                                         PREFERENCE else row.value, info)
        with self.lock:
            study._storage.set_trial_user_attr(t._trial_id, "voting", False)
            study._storage.set_trial_user_attr(t._trial_id, "placed", how)
            if values is None:  # cannot happen for a trial that entered; said, not hidden
                search.tell(study, t.number, state=optuna.trial.TrialState.FAIL)
            else:
                search.tell(study, t.number, values if len(values) > 1 else values[0])
        now = time.time()
        value = rating if self.exp.search.objective == PREFERENCE else row.value
        self.spool.write([_with(row, state="complete" if values else "failed", value=value,
                                updated_at=now)])
        self.event(events.Placed(number=t.number, rating=rating, how=how,
                                 opponent=found.opponent, votes=found.votes))

    def watch(self, study: Any) -> None:
        """Starts the judge thread (stopped by `stop`)."""
        def loop() -> None:
            while not self._stop.wait(JUDGE_EVERY_S):
                try:
                    self.judge(study)
                except Exception as error:  # noqa: BLE001 - a locked store: the next round
                    self.event(events.JudgeError(error=str(error)))

        self._thread = threading.Thread(target=loop, daemon=True, name="tunelab-judge")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def settle(self, study: Any, outcomes: list[Any]) -> None:
        """Waits (judging) until the outcomes' trials are placed; each voting outcome then
        carries the rating it was told. Ctrl-C stops the wait: the trials keep waiting in the
        study, and a later `tunelab run` places them."""
        numbers = {o.number for o in outcomes if o.result.state == "voting"}
        self.event(events.WaitingVotes(numbers=sorted(numbers), review=self.exp.name))
        while True:
            self.judge(study)
            told = {t.number: t for t in _trials(study) if t.number in numbers}
            if all(not t.user_attrs.get("voting") for t in told.values()):
                break
            time.sleep(JUDGE_EVERY_S)
        k = self.exp.search.all_objectives.index(PREFERENCE)
        for o in outcomes:
            t = told.get(o.number)
            if t is not None and t.values is not None:
                o.result = TrialResult("complete", value=t.values[k], info=o.result.info)

    # -- the end
    def winner(self, study: Any) -> None:
        """Names the search's best trial (the highest placement told to Optuna), with where the
        review's statistics put it now (the current fit of all the votes, with its rank)."""
        import optuna

        from tunelab.engine.review import ranks, words
        from tunelab.engine.review.bradley_terry import ratings

        k = self.exp.search.all_objectives.index(PREFERENCE)
        placed = [t for t in _trials(study) if t.user_attrs.get("placed")
                  and t.state == optuna.trial.TrialState.COMPLETE]
        if not placed:
            return
        best = max(placed, key=lambda t: t.values[k])
        votes = self._votes()
        ref = str(ModelRef.trial(best.number))
        found = standing.head_to_head(votes, ref, best.user_attrs["opponent"])
        rated = ratings(votes)
        now = next((r for r in rated if r.model == ref), None)
        group = sum(1 for r in rated if now and r.group == now.group)
        self.event(events.PreferenceWinner(
            number=best.number, told=best.values[k], rated=words.rating_text(now) if now else "—",
            rank=ranks.text(now.ranks) if now else "—", of=group, votes=found.votes,
            opponent=found.opponent, total=len(votes), review=self.exp.name))


def _with(row: TrialRow, **changes: Any) -> TrialRow:
    import dataclasses

    return dataclasses.replace(row, **{"updated_at": time.time(), **changes})


def _trials(study: Any) -> list[Any]:
    return list(study.get_trials(deepcopy=False))


def _reviews(store: Path) -> list[Any]:
    from tunelab.store import list_reviews

    return list_reviews(store) if store.exists() else []

