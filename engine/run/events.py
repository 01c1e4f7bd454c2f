"""What a run tells whoever shows it, one frozen dataclass per event.

The runner, the launcher, resume and the preference judge send these to a `Reporter`; the
CLI's reporter matches on the class with `assert_never` in its last case, so an event added
here and shown nowhere is a type error (mypy), not a line the user silently never reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # annotations only: this module is imported before the training stack
    from tunelab.engine.data.preferences import PreferenceReport
    from tunelab.engine.data.report import DataReport
    from tunelab.engine.run.outcomes import TrialOutcome


# -- before the sweep

@dataclass(frozen=True)
class TrustRemoteCode:
    """model.trust_remote_code is set: the model's own Python runs in every trial."""
    model: str


@dataclass(frozen=True)
class DataPrepared:
    report: DataReport
    smoke: bool = False


@dataclass(frozen=True)
class PreferencesPrepared:
    """A preference stage's pairs (a kto stage's answers), checked; `parent` is the trial it
    starts from."""
    report: PreferenceReport
    parent: str | None
    smoke: bool = False


@dataclass(frozen=True)
class BuildingBase:
    """The scratch model and its tokenizer are being made (once per data fingerprint)."""


@dataclass(frozen=True)
class Stale:
    """Trial `number` was left running by a run that stopped: marked failed."""
    number: int


@dataclass(frozen=True)
class Retry:
    """Failed trial `number` is queued again with its parameters (--retry-failed)."""
    number: int


@dataclass(frozen=True)
class BaselineStart:
    pass


@dataclass(frozen=True)
class Baseline:
    values: dict[str, float]
    cached: bool  # measured by an earlier run of the study
    # every baseline by model ref: "base" and the few-shot "base+3shot" (engine.baselines)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    meets: str | None = None  # "the base model with 3 examples meets …" (baselines.meets_words)


@dataclass(frozen=True)
class Warned:
    """Something the run does that is likely not what was meant (e.g. a batch larger than the
    training split): said, and the run goes on."""
    text: str


@dataclass(frozen=True)
class Remade:
    """The run folder `runs` was deleted during the sweep: its prepared data and base model were
    made again; the folders of the finished trials `lost` went with it."""
    runs: str
    lost: tuple[int, ...]


@dataclass(frozen=True)
class Settled:
    """Trial `number` ended (`state`, as the study has it) but its end never reached the store
    (a full disk): recorded now."""
    number: int
    state: str


# -- the sweep

@dataclass(frozen=True)
class Sweep:
    trials: int  # finished (complete or pruned) trials the study asks for
    finished: int  # of them, before this run
    workers: int = 1
    threads: int | None = None  # CPU threads per trial process
    pruning: bool = False  # a pruner may stop trials early (their durations differ)


@dataclass(frozen=True)
class SweepTimeout:
    """search.timeout passed: no new trial starts."""
    seconds: float


@dataclass(frozen=True)
class Stopping:
    """Ctrl-C: once, the running trials stop after their evaluation; twice (`now`), at once."""
    running: list[int]
    now: bool = False


@dataclass(frozen=True)
class TrialStart:
    number: int
    params: dict[str, Any]
    epochs: int
    worker: int = 0


# what a trial process says while it runs (engine.train): its training starts, a logged loss,
# an evaluation, its rows being tokenized, its last evaluation, a micro-batch out of memory
ProgressKind = Literal["start", "log", "eval", "tokenizing", "evaluate", "oom"]


@dataclass(frozen=True)
class TrialProgress:
    number: int
    kind: str  # a ProgressKind; a str because it crosses a process boundary unchecked
    data: dict[str, Any]


@dataclass(frozen=True)
class TrialTimeout:
    """Trial `number` ran past search.trial_timeout and is being killed."""
    number: int
    seconds: float


@dataclass(frozen=True)
class TrialEnd:
    outcome: TrialOutcome


# -- a preference sweep (engine.run.preference)

@dataclass(frozen=True)
class PreferenceReview:
    """The sweep's votes go to review `review`; `waiting` trials wait for votes already."""
    review: str
    waiting: int


@dataclass(frozen=True)
class Voting:
    """Trial `number` waits for votes: `items` of its answers beside `opponent`'s."""
    number: int
    opponent: str
    items: int
    review: str


@dataclass(frozen=True)
class Predicted:
    """search.reward_model predicts that trial `number` wins `share` of its votes; the review
    asks about the waiting trial with the highest share first."""
    number: int
    share: float
    model: str  # EXPERIMENT:N of the reward model


@dataclass(frozen=True)
class Placed:
    """The votes placed trial `number`: its placement (the rating over the base told to the
    search), and why it stopped waiting."""
    number: int
    rating: float
    how: str  # "won" or "lost" (the rank rule ranks it apart from the opponent), or "budget"
    opponent: str
    votes: int


@dataclass(frozen=True)
class WaitingVotes:
    """The sweep trained its trials; these wait for votes before it ends."""
    numbers: list[int]
    review: str


@dataclass(frozen=True)
class JudgeError:
    error: str


@dataclass(frozen=True)
class PreferenceWinner:
    """The search's best trial: its placement, and where the review's statistics put it now."""
    number: int
    told: float  # the placement: what the search was told when the trial was placed
    rated: str  # its rating in the review's current fit, as the statistics show it ("≥ 1092")
    rank: str  # its rank there ("1", "1–3")
    of: int  # the models of its comparison group
    votes: int
    opponent: str
    total: int
    review: str


Event = (TrustRemoteCode | DataPrepared | PreferencesPrepared | BuildingBase | Stale | Retry
         | BaselineStart | Baseline | Warned | Remade | Settled | Sweep | SweepTimeout | Stopping | TrialStart
         | TrialProgress | TrialTimeout | TrialEnd | PreferenceReview | Voting | Predicted
         | Placed | WaitingVotes | JudgeError | PreferenceWinner)


class Reporter(Protocol):
    """Whoever shows a run (the CLI prints it; tests collect it)."""

    def event(self, event: Event) -> None: ...
