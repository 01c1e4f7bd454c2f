"""A trained reward model (a trial of a `stage = "reward"` experiment) predicting a person's
preference: after a vote, the review can say what it predicted (never before: the review stays
blind), and a preference sweep votes first on the trial it expects to win (`search.reward_model`).

P(A better) = σ(r(A) − r(B)), the Bradley–Terry model its rewards were trained under."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.engine.errors import TrainError
from tunelab.engine.format import percent
from tunelab.engine.refs import ModelRef
from tunelab.engine.spec import Experiment
from tunelab.store import ReviewItem, best_trial, experiment_spec, get_experiment, list_trials

# where a preference sweep keeps each waiting trial's predicted share of wins (evaluations)
SPLIT, NAME = "reward", "predicted_win"


def reward_folder(store: Path, ref: str) -> tuple[str, Path]:
    """(EXPERIMENT:N, the trial's folder) of a reward model named EXPERIMENT:N or
    EXPERIMENT:best; a TrainError says what is wrong with the name."""
    try:
        parsed: ModelRef | None = ModelRef.parse(ref)
    except TrainError:
        parsed = None
    if parsed is None or parsed.experiment is None:
        raise TrainError(f"{ref!r}: a reward model is named EXPERIMENT:best or EXPERIMENT:N "
                         "(a trial of a stage = \"reward\" experiment)", "no reward model")
    name, which = parsed.experiment, "best" if parsed.kind == "best" else str(parsed.number)
    record = get_experiment(store, name) if store.exists() else None
    plain = experiment_spec(store, name) if record else {}
    if not plain or Experiment.model_validate(plain).method.stage != "reward":
        raise TrainError(f"{name} is not a reward stage in {store}: train one with "
                         "[method] stage = \"reward\"", "no reward model")
    trials = list_trials(store, name)
    trial = (best_trial(trials, record.direction if record else None) if which == "best"
             else next((t for t in trials if t.number == int(which)), None))
    if trial is None or trial.state != "complete" or not trial.artifact_dir:
        raise TrainError(f"{name} has no complete trial {which}", "no reward model")
    return f"{name}:{trial.number}", Path(trial.artifact_dir)


@dataclass
class Predictor:
    """A reward model loaded to predict the preference between two answers."""

    name: str  # EXPERIMENT:N
    scorer: Any  # engine.train.reward.RewardScorer

    @classmethod
    def load(cls, store: Path, ref: str) -> Predictor:
        from tunelab.engine.train.reward import RewardScorer

        name, folder = reward_folder(store, ref)
        return cls(name, RewardScorer.load(folder))

    def prefers_a(self, item: ReviewItem) -> float:
        """P(A is better) for a review item."""
        return float(self.scorer.prefers_a(item.prompt, item.messages, item.output_a or "",
                                           item.output_b or ""))

    def win_share(self, pairs: Sequence[tuple[str, str, str]]) -> float:
        """The mean P(first answer better) over (prompt, answer, other answer) triples."""
        found = [self.scorer.prefers_a(p, None, a, b) for p, a, b in pairs]
        return sum(found) / len(found) if found else 0.5


def words(p_a: float, name: str) -> str:
    """What the reward model predicted for an item, said after the vote."""
    side, p = ("A", p_a) if p_a >= 0.5 else ("B", 1 - p_a)
    return f"the reward model {name} predicted {side} ({percent(p)})"


def first_waiting(waiting: set[str], evaluations: dict[str, dict[str, float]]) -> set[str]:
    """The waiting models a preference sweep asks about first: the one its reward model expects
    to win (all of them when none was predicted)."""
    key = f"{SPLIT}/{NAME}"
    predicted = {m: evaluations.get(m, {}).get(key) for m in waiting}
    known = {m: p for m, p in predicted.items() if p is not None}
    if not known:
        return waiting
    return {max(known, key=lambda m: (known[m], m))}
