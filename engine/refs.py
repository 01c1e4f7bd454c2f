"""A model reference, parsed once: what `tunelab chat --model`, `--arena`, `tunelab export`, a
judge and a review's models name. Light (errors only): any layer may parse a ref.

- `base`: the experiment's base model (for a dpo stage, the trial it started from)
- `best`: the experiment's best complete trial
- `trial:N`, or a bare `N`: trial N of the experiment
- `EXPERIMENT:N`, `EXPERIMENT:best`: a trial of another experiment of the store
- anything else, where a plain model is allowed (a judge): a folder or a hub id

`str(ref)` is the text the store keeps (`base`, `trial:3`; a review's `base+3shot` is a few-shot
variant of `base`, written by the review, never parsed here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tunelab.engine.errors import TrainError

# an experiment's name, as engine.spec's Experiment.name allows it
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
WORDS = "base, best, trial:N (or N), EXPERIMENT:N or EXPERIMENT:best"


@dataclass(frozen=True)
class ModelRef:
    kind: Literal["base", "best", "trial", "plain"]
    number: int | None = None  # a trial's
    experiment: str | None = None  # another experiment than the one in hand (EXPERIMENT:N)
    plain: str | None = None  # a folder or a hub id

    @classmethod
    def parse(cls, text: str, plain: bool = False) -> ModelRef:
        """The ref `text` names; with `plain`, what is no ref of the store is a folder or a hub
        id. A TrainError names the forms for any other text."""
        text = text.strip()
        if text == "base":
            return cls("base")
        if text == "best":
            return cls("best")
        if text.isdigit():
            return cls("trial", int(text))
        name, colon, which = text.partition(":")
        if colon and name == "trial" and which.isdigit():
            return cls("trial", int(which))
        if colon and name != "trial" and _NAME.fullmatch(name) and (
                which == "best" or which.isdigit()):
            return cls("best", experiment=name) if which == "best" else \
                cls("trial", int(which), experiment=name)
        if plain and text:
            return cls("plain", plain=text)
        raise TrainError(f"{text!r} is not a model: give {WORDS}"
                         + (", a folder or a hub id" if plain else ""), "unknown model")

    @classmethod
    def trial(cls, number: int) -> ModelRef:
        return cls("trial", number)

    def __str__(self) -> str:
        if self.kind == "plain":
            return self.plain or ""
        own = f"trial:{self.number}" if self.kind == "trial" else self.kind
        if self.experiment is None:
            return own
        return f"{self.experiment}:{self.number if self.kind == 'trial' else 'best'}"

    def of(self, experiment: str) -> tuple[str, ModelRef]:
        """(the experiment it names, the ref within that experiment): `other:3` read in `mine`
        is trial 3 of `other`; `trial:3` is trial 3 of `mine`."""
        if self.experiment is None:
            return experiment, self
        return self.experiment, ModelRef(self.kind, self.number)
