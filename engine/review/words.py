"""What the ratings mean, in the words a reviewer reads: one place, so that the statistics
screen, `tunelab review stats` and the leaderboard's notes say the same thing."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunelab.engine.review.bradley_terry import Rating
from tunelab.engine.review.style import StyleFit
from tunelab.engine.review.votes import ties_words


def rating_text(r: Rating) -> str:
    """The rating column: the fitted rating, or the bound that stands for it, or a dash."""
    if r.rating is None:
        return "—"
    if r.finite:
        return f"{r.rating:.0f}"
    return f"≥ {r.rating:.0f}" if r.open_side == "above" else f"≤ {r.rating:.0f}"


def styled_text(style: StyleFit | None, model: str) -> str:
    """The length-controlled rating column (only shown when it disagrees with the raw one)."""
    if style is None or model not in style.ratings:
        return "—"
    return f"{style.ratings[model]:.0f}"


def groups(ratings: Sequence[Rating]) -> list[list[str]]:
    found: dict[int, list[str]] = {}
    for r in ratings:
        found.setdefault(r.group, []).append(r.model)
    return [found[g] for g in sorted(found)]


def joins(ratings: Sequence[Rating]) -> list[tuple[str, str]]:
    """The pairs whose votes would link the groups into one: the most-voted model of the first
    group against the most-voted model of each other group."""
    votes = {r.model: r.votes for r in ratings}
    parts = groups(ratings)
    if len(parts) < 2:
        return []
    hub = max(parts[0], key=lambda m: (votes[m], m))
    return [(hub, max(p, key=lambda m: (votes[m], m))) for p in parts[1:]]


def names(models: Sequence[str]) -> str:
    models = list(models)
    return models[0] if len(models) == 1 else f"{', '.join(models[:-1])} and {models[-1]}"


def notes(ratings: Sequence[Rating], ties: str = "half", style: StyleFit | None = None) -> list[str]:
    """The sentences that go under every ratings table."""
    if not ratings:
        return ["No counted votes yet (skips count for no one"
                + (", and ties are left out)." if ties == "ignore" else ").")]
    out = [f"Bradley–Terry ratings, 1000 = the average model of a group; {ties_words(ties)}; "
           "a rater's verdicts on an item and on its swapped repeat count once."]
    parts = groups(ratings)
    if len(parts) > 1:
        out.append("Cannot be compared: no votes link " + "; ".join(names(p) for p in parts)
                   + ". Each group is rated and ranked on its own.")
        out.append("To join them, vote on " + "; ".join(f"{a} vs {b}" for a, b in joins(ratings))
                   + ".")
    bounded = [r for r in ratings if r.above or r.below]
    if bounded:
        out.append(f"No finite rating for {names([r.model for r in bounded])}: each won (or lost) "
                   "every vote against the models named, so the votes give only a bound; the "
                   "other ratings are fitted without them.")
    undecided = [r.model for r in ratings if r.undecided]
    if undecided:
        out.append(f"No decisive votes yet between {names(undecided)}: ties only, so no interval.")
    if style is not None:
        side = "longer" if style.beta > 0 else "shorter"
        out.append(f"Answer length sways these votes ({side} answers win more, β = "
                   f"{style.beta:.2f} per unit of length share): the length-controlled column "
                   "is the fit with that sway taken out.")
    ranks = {(r.group, r.rank) for r in ratings}
    if len(ratings) > 1 and len(ranks) == len(parts):
        out.append("The intervals overlap: the votes do not yet tell these models apart; "
                   "the same rank means not separated.")
    elif len(ratings) > 1:
        out.append("A model ranks below another only when its whole 95 % interval lies below "
                   "that model's; the same rank means not separated.")
    return out


def kappa_text(kappa: float) -> str:
    """Cohen's κ with Landis and Koch's plain words, or why it is undefined."""
    if math.isnan(kappa):
        return "κ undefined (both raters gave the same single verdict throughout: nothing to " \
               "agree on beyond chance)"
    for bound, words in ((0.0, "no better than chance"), (0.2, "slight"), (0.4, "fair"),
                         (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return f"κ {kappa:.2f} ({words})"
    return f"κ {kappa:.2f} (almost perfect)"
