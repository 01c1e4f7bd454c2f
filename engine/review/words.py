"""What the statistics of a review mean, in the words a reviewer reads: one place, so that the
statistics screen and `tunelab review stats` say the same thing in the same way (the same
tables, the same columns, the same sentences); the leaderboard's columns are named alike."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunelab.engine import format as fmt
from tunelab.engine.review import intervals, ranks
from tunelab.engine.review.bradley_terry import Rating
from tunelab.engine.review.stats import PairRecord, PositionBias
from tunelab.engine.review.style import StyleFit
from tunelab.engine.review.votes import ties_words

PAIR_COLUMNS = ("model", "vs", "won", "tie", "lost", "win rate", "95 % interval")
LENGTH_COLUMN = "length-ctl"  # the rating with answer length taken out (notes say so)


def rating_text(r: Rating) -> str:
    """The rating column: the fitted rating, or the bound that stands for it, or a dash."""
    if r.rating is None:
        return "—"
    if r.finite:
        return fmt.points(r.rating)
    return f"≥ {fmt.points(r.rating)}" if r.open_side == "above" else f"≤ {fmt.points(r.rating)}"


def rank_text(r: Rating) -> str:
    """The rank column: "2", or "1–3" when the votes allow any of those ranks."""
    return ranks.text(r.ranks)


def styled_text(style: StyleFit | None, model: str) -> str:
    """The length-controlled rating column (only shown when it disagrees with the raw one)."""
    if style is None or model not in style.ratings:
        return "—"
    return fmt.points(style.ratings[model])


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


def them(models: Sequence[str]) -> str:
    return "it" if len(models) == 1 else "them"


def header(votes: int, verdicts: int, items: int, raters: dict[str, int]) -> str:
    """What was counted: the votes cast, the verdicts they make (skips drop out; a rater's
    verdicts on an item and its swapped repeat are one), the items, who voted."""
    who = ", ".join(f"{r} {fmt.number(k)}" for r, k in sorted(raters.items())) or "no one yet"
    counted = "" if verdicts == votes else f" ({fmt.number(verdicts)} verdicts counted)"
    return f"{fmt.number(votes)} votes{counted} on {fmt.number(items)} items · {who}"


def notes(ratings: Sequence[Rating], ties: str = "half", style: StyleFit | None = None) -> list[str]:
    """The sentences that go under every ratings table."""
    if not ratings:
        return ["No counted votes yet (skips count for no one"
                + (", and ties are left out)." if ties == "ignore" else ").")]
    out = [f"Bradley–Terry ratings of all the votes now, 1000 = the average model of a group; "
           f"{ties_words(ties)}; a rater's verdicts on an item and on its swapped repeat count "
           "once."]
    parts = groups(ratings)
    if len(parts) > 1:
        listed = "; ".join(f"group {k} ({', '.join(sorted(p))})" for k, p in enumerate(parts, 1))
        out.append(f"No vote links these groups: {listed}. Each is rated and ranked on its own; "
                   "to join them, vote on "
                   + "; ".join(f"{a} vs {b}" for a, b in joins(ratings)) + ".")
    out += _bound_notes(ratings)
    undecided = [r.model for r in ratings if r.undecided]
    if undecided:
        out.append(f"No decisive votes yet between {names(undecided)}: ties only, so no interval.")
    out += _interval_notes(ratings)
    if style is not None:
        side = "longer" if style.beta > 0 else "shorter"
        order = sorted(style.ratings, key=lambda m: -style.ratings[m])
        raw = [r.model for r in ratings if r.model in style.ratings]
        same = "the same order" if order == raw else f"the order {', '.join(order)}"
        out.append(f"Answer length sways these votes ({side} answers win more, β = "
                   f"{style.beta:.2f} per unit of length share): {LENGTH_COLUMN} is the rating "
                   f"with that sway taken out, which gives {same}. Ranks and intervals are the "
                   "raw ratings'.")
    if len(ratings) > 1:
        out.append("Ranks: two models are ranked apart only when a test of their difference "
                   "says so at 5 % after Holm's correction over every pair of their group; "
                   "1–3 means the votes allow any of those ranks.")
    return out


def _bound_notes(ratings: Sequence[Rating]) -> list[str]:
    """One sentence per part of the win graph that has only a bound, naming both sides."""
    out = []
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for r in ratings:
        if not (r.above or r.below) or (r.above, r.below) in seen:
            continue
        seen.add((r.above, r.below))
        part = [x.model for x in ratings if (x.above, x.below) == (r.above, r.below)]
        did = []
        if r.above:
            did.append(f"won every vote that links {them(part)} to {names(r.above)}")
        if r.below:
            did.append(f"lost every vote that links {them(part)} to {names(r.below)}")
        subject = names(part)
        if r.rating is None and not (math.isfinite(r.low) and math.isfinite(r.high)):
            why = (f"too few votes to bound {'its' if len(part) == 1 else 'their'} rating (it "
                   "takes four or more, all one way)" if r.cut < 4 else
                   "no fitted rating on the other side of that line to measure a bound from")
            out.append(f"{subject} {' and '.join(did)}: {why}.")
            continue
        side = ("a lower bound" if r.open_side == "above" else "an upper bound"
                if r.open_side == "below" else "bounds")
        out.append(f"{subject} {' and '.join(did)}: only {side}, from the {r.pooled} votes "
                   "across that line pooled (Wilson 95 %).")
    return out


def _interval_notes(ratings: Sequence[Rating]) -> list[str]:
    methods = {r.method for r in ratings if r.finite}
    if not methods:
        return []
    how = {"bootstrap": "percentile bootstrap of the votes",
           "profile": f"profile likelihood (fewer than {intervals.MIN_BOOTSTRAP} decisive votes "
                      "for a model: too few for a bootstrap)"}
    return ["Intervals: 95 %, " + "; ".join(how[m] for m in sorted(methods) if m in how)
            + ". They show the spread; ranks come from the differences."]


def pair_rows(pairs: Sequence[PairRecord]) -> list[tuple[str, ...]]:
    """The pairs table (PAIR_COLUMNS): each pair once, from the side of the model that won
    more, the most one-sided first."""
    rows: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for p in sorted(pairs, key=lambda p: (-(0.5 if math.isnan(p.win_rate) else p.win_rate),
                                          p.model, p.other)):
        if frozenset((p.model, p.other)) in seen:
            continue
        seen.add(frozenset((p.model, p.other)))
        rate = "—" if math.isnan(p.win_rate) else fmt.percent(p.win_rate)
        rows.append((p.model, p.other, str(p.wins), str(p.ties), str(p.losses), rate,
                     f"{fmt.percent(p.low)}–{fmt.percent(p.high)}"))
    return rows


def pairs_title(ties: str) -> str:
    return f"Pairs · tie: tie or both bad; {ties_words(ties)}; Wilson 95 % interval"


def bias_text(b: PositionBias) -> tuple[str, bool]:
    """The side-bias sentence, and whether it warns (p < 0.05)."""
    if not b.decisive:
        return "Side bias: no decisive votes yet (ties and skips say nothing about sides).", False
    return (f"Side bias: the left output (A) won {b.left_wins} of {b.decisive} decisive votes "
            f"({fmt.percent(b.share_left)}); binomial test p = {fmt.number(b.p_value)}.",
            b.p_value < 0.05)


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
