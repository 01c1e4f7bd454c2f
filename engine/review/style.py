"""Style control: longer answers win more votes whatever their quality, so the length
difference enters the Bradley–Terry fit as a covariate, as Chatbot Arena's style control does:

    P(left wins) = 1 / (1 + exp(−(θleft − θright + β · d))),  d = (len_l − len_r) / (len_l + len_r)

β says how much length alone sways a vote; θ are the ratings with that sway taken out. Fitted
on the models with a finite raw rating only (see `bradley_terry`), where the maximum exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunelab.engine.review.bradley_terry import Rating, elo
from tunelab.engine.review.votes import Vote, counted

DISAGREE = 25.0  # rating points: below this the two fits say the same thing
# Past this (in logits, ~1,700 rating points) the fit is running off to infinity: the votes
# separate, e.g. the shorter answer won every vote, so length and quality cannot be told apart.
DIVERGED = 10.0


@dataclass(frozen=True)
class StyleFit:
    ratings: dict[str, float]  # model -> style-controlled rating (the raw fit's centre)
    beta: float  # logit per unit of normalised length difference; > 0: longer answers win
    votes: int

    def disagrees(self, raw: Sequence[Rating]) -> bool:
        """Does controlling for length change the order, or a rating by DISAGREE points?"""
        finite = [r for r in raw if r.finite and r.model in self.ratings and r.rating is not None]
        by_raw = [r.model for r in sorted(finite, key=lambda r: -(r.rating or 0))]
        by_style = sorted(by_raw, key=lambda m: -self.ratings[m])
        return by_raw != by_style or any(
            abs(self.ratings[r.model] - (r.rating or 0)) > DISAGREE for r in finite)


def length_share(left: str, right: str) -> float:
    total = len(left) + len(right)
    return (len(left) - len(right)) / total if total else 0.0


def style_fit(votes: Sequence[Vote], raw: Sequence[Rating], ties: str = "half") -> StyleFit | None:
    """The fit with the length covariate on the finite models of the first group; None when
    there are fewer than two, no length differences to learn from, or when the votes do not
    pin the fit down (it has no finite maximum: shown as no length-controlled column rather
    than as ratings tens of thousands of points apart)."""
    finite = [r for r in raw if r.finite and r.group == 1 and r.rating is not None]
    if len(finite) < 2:
        return None
    models = [r.model for r in finite]
    index = {m: k for k, m in enumerate(models)}
    rows = []
    for v in counted(votes):
        if v.left not in index or v.right not in index:
            continue
        score = {"a": 1.0, "b": 0.0}.get(v.choice, 0.5 if ties == "half" else None)
        if score is not None:
            rows.append((index[v.left], index[v.right], score, v.length))
    if not rows or not any(d for *_, d in rows):
        return None
    i = np.array([r[0] for r in rows])
    j = np.array([r[1] for r in rows])
    s = np.array([r[2] for r in rows])
    d = np.array([r[3] for r in rows])
    n = len(models)
    x = np.zeros(n + 1)  # θ (mean zero) and β
    design = np.zeros((len(rows), n + 1))  # one row per vote: +1 left, −1 right, d
    design[np.arange(len(rows)), i] = 1.0
    design[np.arange(len(rows)), j] = -1.0
    design[:, n] = d
    converged = False
    for _ in range(100):
        eta = x[i] - x[j] + x[n] * d
        p = 1 / (1 + np.exp(-eta))
        r = s - p
        w = p * (1 - p)
        grad = np.zeros(n + 1)
        np.add.at(grad, i, r)
        np.add.at(grad, j, -r)
        grad[n] = float(np.sum(r * d))
        info = design.T @ (design * w[:, None])
        pin = np.zeros(n + 1)
        pin[:n] = 1 / n  # θ defined up to a constant: pin the mean (as in `bradley_terry`)
        step = np.linalg.solve(info + np.outer(pin, pin) * n + 1e-9 * np.eye(n + 1), grad)
        x += step
        x[:n] -= x[:n].mean()
        if np.max(np.abs(x)) > DIVERGED:
            return None
        if np.max(np.abs(step)) < 1e-10:
            converged = True
            break
    if not converged:
        return None
    centre = float(np.mean([r.rating for r in finite if r.rating is not None]))
    styled = elo(x[:n]) - 1000 + centre
    return StyleFit({m: float(styled[k]) for m, k in index.items()}, float(x[n]), len(rows))
