"""`[search]` of an experiment file: the sampler, the pruner, the objectives and the search
space (its ranges, its lists of choices and their conditions), as strict, frozen pydantic
models. Part of engine.spec.sections, which re-exports every name here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from tunelab.engine.objectives import Direction, default_direction
from tunelab.engine.spec.strict import SEED_MAX, StrictModel


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _names_a_key(value: Any) -> Any:
    if isinstance(value, dict) and not value:
        raise ValueError("when = {} names no key: write when = { KEY = [values] }, or remove it")
    return value


# `when = { "method.kind" = ["lora", "qlora"] }`: the key is searched only in trials whose
# method.kind is one of these (a single value is a list of one). Checked against the space and
# the file in engine.spec.conditions, which also holds the rule for sampling it.
When = Annotated[dict[str, Annotated[list[Any], BeforeValidator(_as_list)]],
                 BeforeValidator(_names_a_key)]


class RangeSpec(StrictModel):
    low: float
    high: float
    log: bool = False
    step: float | None = None
    # left out of dumps when absent, so that a file without conditions keeps its spec hash
    when: When | None = Field(None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0 (found {self.step:g})")
        return self


PrunerKind = Literal["median", "percentile", "successive_halving", "hyperband", "none"]


class PrunerSpec(StrictModel):
    """`[search.pruner]`: when a trial whose validation loss lags is stopped early. Steps are
    evaluations (one per epoch by default).

    The default stops only the clear losers: a trial in the worst tenth of the finished trials
    at the same evaluation, once two have finished. Replayed on the quickstart's unpruned
    24-trial sweeps (bench/replay_pruners.py), no setting of Optuna's pruners saves half the
    steps and keeps the best (within 1 %) on both the 3- and the 12-epoch sweep: at 12 epochs
    the best trial trails at epoch 1 and by 2x at epoch 8, so every median, percentile or
    halving setting that saves 50 % there stops it. This one keeps both bests, also in 99 % and
    68 % of 200 shuffled orders of the same trials, and saves 28 % and 38 % of the steps. The
    median after 2 trials (the default before) saved 43 % and 68 % but lost the 12-epoch best
    (0.0115 against 0.0094); Hyperband kept both (19 % and 58 % saved) by luck of its brackets,
    a hash of the study name: 46 % of the shuffled orders.
    """

    kind: PrunerKind = "percentile"
    # median/percentile: trials that finish before any is pruned (only finished trials are
    # compared with, so with 1 the first trial is the yardstick of every other)
    startup_trials: int = Field(2, ge=0)
    warmup_epochs: int = Field(0, ge=0)  # median/percentile: evaluations before a trial may be pruned
    percentile: float = Field(90.0, gt=0, lt=100)  # percentile: kept if in the best PERCENTILE %
    min_resource: int | Literal["auto"] = "auto"  # halving/hyperband: evaluations before the first rung
    max_resource: int | Literal["auto"] = "auto"  # hyperband: evaluations of a full trial
    reduction_factor: int = Field(3, ge=2)  # halving/hyperband: 1/FACTOR of trials go up a rung


class ChoiceSpec(StrictModel):
    """A list of choices with a condition: `{ values = [8, 16], when = { "method.kind" = "lora" } }`
    (a plain list is the same without one)."""

    values: list[Any]
    when: When | None = Field(None, exclude_if=lambda v: v is None)


def _dimension_kind(value: Any) -> str | None:
    """Which kind of searched key a value is, by its shape; None for none of them (one message
    then, not one per key a range would have missed)."""
    if isinstance(value, list):
        return "list[choices]"
    if isinstance(value, ChoiceSpec) or (isinstance(value, dict) and "values" in value):
        return "ChoiceSpec"
    if isinstance(value, RangeSpec) or (isinstance(value, dict) and {"low", "high"} & set(value)):
        return "RangeSpec"
    return None


# A searched key: a list of choices, a range, or a list of choices with a condition. Told apart
# by the value's shape, so that a bad range is reported as a range only (not also as "Input
# should be a valid list").
Dimension = Annotated[
    Annotated[RangeSpec, Tag("RangeSpec")] | Annotated[list[Any], Tag("list[choices]")]
    | Annotated[ChoiceSpec, Tag("ChoiceSpec")],
    Discriminator(_dimension_kind, custom_error_type="dimension",
                  custom_error_message="expected a list of choices, a range "
                                       "{ low = …, high = … } or { values = […], when = … }"),
]


SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
MULTI_OBJECTIVE_SAMPLERS = ("nsga2", "random", "tpe", "gp")


class SearchSpec(StrictModel):
    trials: int = Field(8, ge=1)  # finished (complete or pruned) trials to reach
    timeout: float | None = Field(None, gt=0)  # seconds; no new trial starts after it
    # seconds one trial may run; a trial still running then is killed and recorded failed
    trial_timeout: float | None = Field(None, gt=0)
    sampler: Literal["tpe", "random", "grid", "cmaes", "gp", "nsga2"] = "tpe"
    # the default: PrunerSpec's (the measured figures are there)
    pruner: PrunerKind | PrunerSpec = "percentile"
    objective: str = "eval_loss"  # eval_loss, or a metric of [eval] metrics (on validation)
    direction: Direction = "minimize"
    # several objectives (a Pareto front): e.g. ["eval_loss", "cost"]; the first is `objective`
    objectives: list[str] = []
    directions: list[Direction] = []  # one per objective
    seed: int = Field(0, ge=0, le=SEED_MAX)
    workers: int | None = Field(None, ge=1)  # trials at once on this machine; None: one per device
    # objective "preference": the most verdicts a trial waits for against its opponent
    votes_per_trial: int = Field(12, ge=1)
    # objective "preference": a reward model ("EXPERIMENT:N" or "EXPERIMENT:best" of a reward
    # stage) that predicts each waiting trial's wins; the one it expects to win is voted first
    # (left out of dumps when absent, so that a file without it keeps its spec hash)
    reward_model: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]*:(best|[0-9]+)$",
                                     exclude_if=lambda v: v is None)
    space: dict[str, Dimension] = {}

    @model_validator(mode="before")
    @classmethod
    def _first_objective_is_the_objective(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("objective") == "preference" \
                and "direction" not in data:  # votes: a higher rating is better
            data = {**data, "direction": "maximize"}
        if not isinstance(data, dict) or not data.get("objectives"):
            return data
        objectives, given = data["objectives"], data.get("directions")
        if not (isinstance(objectives, list) and all(isinstance(o, str) for o in objectives)
                and (given is None or isinstance(given, list))):
            return data  # not lists of names: the fields' own validation says so
        objectives = list(objectives)
        directions = list(given or [default_direction(o) for o in objectives])
        if len(directions) != len(objectives):
            raise ValueError(f"search.directions has {len(directions)} entries for "
                             f"{len(objectives)} objectives")
        if len(set(objectives)) != len(objectives):
            raise ValueError("search.objectives names an objective twice")
        for key, first in (("objective", objectives[0]), ("direction", directions[0])):
            if key in data and data[key] != first:
                raise ValueError(f"search.{key} is {data[key]!r} but search.{key}s starts with "
                                 f"{first!r}; give only search.{key}s")
        return {**data, "objectives": objectives, "directions": directions,
                "objective": objectives[0], "direction": directions[0]}

    @model_validator(mode="after")
    def _sampler_fits(self) -> SearchSpec:
        if len(self.objectives) > 1 and self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
            raise ValueError(f"the {self.sampler} sampler takes one objective; for several use "
                             f"{', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
        if self.sampler == "grid":
            for name, dim in self.space.items():
                if isinstance(dim, RangeSpec) and dim.step is None:
                    raise ValueError(f"the grid sampler needs a list or a step for {name}")
        return self

    @property
    def pruner_spec(self) -> PrunerSpec:
        return self.pruner if isinstance(self.pruner, PrunerSpec) else PrunerSpec(kind=self.pruner)

    @property
    def pruner_off(self) -> str | None:
        """Why no trial of this sweep is pruned whatever [search.pruner] says; None if it may be."""
        if len(self.all_objectives) > 1:
            return "a sweep of several objectives is not pruned (Optuna has no pruning for a front)"
        if "preference" in self.all_objectives:  # the loss is not what the votes maximise
            return "a preference sweep is not pruned on the loss"
        return None

    @property
    def all_objectives(self) -> list[str]:
        return self.objectives or [self.objective]

    @property
    def all_directions(self) -> list[Direction]:
        return self.directions or [self.direction]
