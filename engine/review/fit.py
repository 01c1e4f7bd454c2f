"""The Bradley–Terry likelihood of counted outcomes, as numbers: the maximum-likelihood fit (free,
with a weak prior, or with two models held equal), its gradient and Fisher information, and the
profile likelihood of one rating. What the numbers mean for a reader is said in
`bradley_terry` (ratings and intervals) and `ranks` (who is ranked apart).

P(i beats j) = 1 / (1 + exp(θj − θi)); a tie is half a win each way. Strengths are logits with
mean zero (only differences are defined).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHI2_95 = 3.841458820694124  # the 95 % point of χ² with one degree of freedom


@dataclass(frozen=True)
class Outcomes:
    """Counted verdicts grouped by kind: left model i, right model j, left's score s, seen w
    times. Resampling votes or refitting only changes w, so every fit costs the handful of
    kinds, not every vote."""

    models: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    s: np.ndarray
    w: np.ndarray

    @property
    def design(self) -> np.ndarray:
        """One row per kind: +1 at the left model, −1 at the right."""
        d = np.zeros((len(self.i), len(self.models)))
        d[np.arange(len(self.i)), self.i] = 1.0
        d[np.arange(len(self.i)), self.j] -= 1.0
        return d


def outcomes_of(found: Sequence[tuple[str, str, float]], models: Sequence[str]) -> Outcomes:
    index = {m: k for k, m in enumerate(models)}
    kinds = Counter((index[a], index[b], s) for a, b, s in found)
    keys = list(kinds)
    return Outcomes(tuple(models), np.array([k[0] for k in keys], dtype=int),
                    np.array([k[1] for k in keys], dtype=int),
                    np.array([k[2] for k in keys], dtype=float),
                    np.array([kinds[k] for k in keys], dtype=float))


def probability(o: Outcomes, theta: np.ndarray) -> np.ndarray:
    """P(left wins) of each kind."""
    return 1 / (1 + np.exp(np.clip(theta[o.j] - theta[o.i], -700, 700)))


def gradient(o: Outcomes, theta: np.ndarray) -> np.ndarray:
    """The score: ∂ log-likelihood / ∂θ."""
    residual = o.w * (o.s - probability(o, theta))
    return np.bincount(o.i, residual, len(o.models)) - np.bincount(o.j, residual, len(o.models))


def information(o: Outcomes, theta: np.ndarray) -> np.ndarray:
    """The Fisher information (the negative Hessian); singular along the all-ones direction."""
    p = probability(o, theta)
    d = o.design
    return d.T @ (d * (o.w * p * (1 - p))[:, None])


def loglik(o: Outcomes, theta: np.ndarray) -> float:
    eta = theta[o.i] - theta[o.j]
    # log σ(η) = −log(1 + e^−η), computed without overflow
    return float(np.sum(o.w * (-o.s * np.logaddexp(0, -eta) - (1 - o.s) * np.logaddexp(0, eta))))


def covariance(info: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """The inverse of the information on mean-zero strengths (the ones direction pinned)."""
    n = len(info)
    return np.linalg.inv(info + np.ones((n, n)) / n + ridge * np.eye(n)) - np.ones((n, n)) / n


def fit(o: Outcomes, prior: float = 0.0, start: np.ndarray | None = None,
        iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood strengths (mean zero) by damped Newton steps; `prior` adds a Gaussian
    prior of that precision (logits⁻²), which keeps every strength finite. Without a prior the
    maximum is finite only on a strongly connected win graph (see `graph`); elsewhere the
    strengths run off until the steps are negligible, which the callers allow for."""
    n = len(o.models)
    if n == 0:
        return np.zeros(0)
    return _newton(o, np.eye(n)[None], prior, start, iterations)[0]


def held_equal(o: Outcomes, pairs: Sequence[tuple[int, int]], prior: float = 0.0,
               start: np.ndarray | None = None, iterations: int = 100) -> np.ndarray:
    """One fit per pair (a, b) with the two held at one strength (the null hypothesis of a
    pair test), all at once: row k holds the strengths fitted with pairs[k] equal. `start`:
    one strength vector for every fit, or a row per fit (the last vote's fits, see
    `ranks.Tally`)."""
    n = len(o.models)
    basis = np.zeros((len(pairs), n, n - 1))
    for k, (a, b) in enumerate(pairs):
        free = [x for x in range(n) if x != b]
        basis[k, free, np.arange(n - 1)] = 1.0
        basis[k, b, free.index(a)] = 1.0  # b moves with a
    return _newton(o, basis, prior, start, iterations)


def _newton(o: Outcomes, basis: np.ndarray, prior: float, start: np.ndarray | None,
            iterations: int) -> np.ndarray:
    """Newton steps on θ = basis · z, for a stack of bases (one fit per basis), each step
    halved until it raises the penalised log-likelihood (far from the optimum a full step can
    overshoot into a cycle: the objective is concave, so a rising step always exists)."""
    n = len(o.models)
    fits, size = basis.shape[0], basis.shape[2]
    if fits == 0:
        return np.zeros((0, n))
    design = o.design
    counts = basis.sum(axis=1)  # how many models each free strength moves
    starts = None if start is None else np.broadcast_to(start, (fits, n))
    z = np.zeros((fits, size)) if starts is None else \
        np.einsum("fnc,fn->fc", basis, starts) / counts
    # strengths are defined up to a constant: without a prior the Hessian is singular along the
    # all-ones z (every strength shifted alike), and the step is taken with that direction
    # pinned. With a prior it is not, and a pin there would shrink the step along it (to
    # prior / (prior + 1) of Newton's): the fits stalled short of the maximum
    pin = (np.ones((size, size)) / size if prior == 0 else 0.0) + 1e-12 * np.eye(size)

    def objective(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.einsum("fnc,fc->fn", basis, z)
        eta = theta @ design.T
        value = -(o.w * (o.s * np.logaddexp(0, -eta) + (1 - o.s) * np.logaddexp(0, eta))).sum(1)
        return value - prior / 2 * (theta * theta).sum(1), theta

    value, theta = objective(z)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(np.clip(-(theta @ design.T), -700, 700)))
        g = (o.w * (o.s - p)) @ design - prior * theta
        h = np.einsum("kn,fk,km->fnm", design, o.w * p * (1 - p), design) + prior * np.eye(n)
        gz = np.einsum("fnc,fn->fc", basis, g)
        hz = np.einsum("fnc,fnm,fmd->fcd", basis, h, basis) + pin
        step = np.linalg.solve(hz, gz[..., None])[..., 0]
        scale = np.ones(fits)
        for _ in range(30):
            tried, _ = objective(z + step * scale[:, None])
            worse = tried < value - 1e-12
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        z = z + step * scale[:, None]
        value, theta = objective(z)
        if float(np.max(np.abs(step * scale[:, None]), initial=0.0)) < 1e-9:
            break
    return theta - theta.mean(axis=1, keepdims=True)


def profile(o: Outcomes, model: int, at: float, start: np.ndarray) -> tuple[float, np.ndarray]:
    """The highest log-likelihood with the model's strength over the mean held at `at` (the
    profile likelihood of one centred rating), and the strengths that reach it."""
    n = len(o.models)
    contrast = -np.ones(n) / n
    contrast[model] += 1.0
    constraints = np.vstack([contrast, np.ones(n)])
    # θ = θ0 + N z: θ0 meets both constraints, N spans what they leave free
    theta0 = np.linalg.pinv(constraints) @ np.array([at, 0.0])
    free = np.linalg.svd(constraints)[2][2:].T
    z = free.T @ (start - theta0)
    for _ in range(60):
        theta = theta0 + free @ z
        if free.shape[1] == 0:
            break
        g = free.T @ gradient(o, theta)
        h = free.T @ information(o, theta) @ free
        step = np.linalg.solve(h + 1e-10 * np.eye(len(z)), g)
        longest = float(np.max(np.abs(step), initial=0.0))
        if longest > 4:
            step *= 4 / longest
        z = z + step
        if longest < 1e-9:
            break
    theta = theta0 + free @ z
    return loglik(o, theta), theta


def profile_interval(o: Outcomes, theta: np.ndarray, model: int,
                     reach: float = 12.0) -> tuple[float, float]:
    """The 95 % profile-likelihood interval of one model's strength over the mean: where twice
    the drop in log-likelihood from the maximum reaches χ²₁(95 %). An end the likelihood does
    not reach within `reach` logits of the estimate (about 2,000 rating points) is open."""
    best = loglik(o, theta)
    centre = float(theta[model])
    se = math.sqrt(max(float(covariance(information(o, theta))[model, model]), 1e-6))
    ends = []
    for side in (-1.0, 1.0):
        guess = theta

        def drop(at: float, side: float = side) -> float:
            nonlocal guess
            value, guess = profile(o, model, at, guess)
            return 2 * (best - value) - CHI2_95

        near, far = centre, centre + side * min(se, reach)
        while drop(far) < 0 and abs(far - centre) < reach:
            near, far = far, centre + side * min(2 * abs(far - centre), reach)
        if drop(far) < 0:
            ends.append(side * math.inf)
            continue
        # bisection, not brentq: each profile is a warm-started Newton fit, so two evaluations
        # at one point can differ a little, and brentq refused a bracket whose near end then
        # read above the line ("f(a) and f(b) must have different signs"); the outer end of
        # the last bracket is kept (the wider interval)
        while abs(far - near) > 1e-4:
            middle = (near + far) / 2
            if drop(middle) < 0:
                near = middle
            else:
                far = middle
        ends.append(far)
    return ends[0], ends[1]
