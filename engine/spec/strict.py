"""The base of every section of an experiment file: strict (no unknown key, no nan or inf) and
frozen once validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # nan and inf are refused everywhere: no key of the file means "not a number", and a nan
    # passes every comparison a range check makes (low > high is false for nan)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


SEED_MAX = 2**32 - 1  # numpy's, torch's and Optuna's samplers' seeds are 32-bit
