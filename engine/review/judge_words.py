"""The judges' statistics as a reviewer reads them: the rows of the agreement and leaning tables
and the sentences under them, written once for `review stats`, `review judge` and the
statistics screen."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tunelab.engine.format import number, percent
from tunelab.engine.review.agreement import Agreement, Leaning
from tunelab.engine.review.judge import is_judge

AGREEMENT_COLUMNS = ("judge", "human", "items", "agree", "w/o ties", "κ")
LEANING_COLUMNS = ("rater", "orders agree", "first wins", "p", "longer wins")


def _share(share: float, of: int) -> str:
    return "—" if math.isnan(share) else f"{percent(share)} of {of}"


def agreement_rows(found: Sequence[Agreement]) -> list[tuple[str, ...]]:
    """judge, human, items both judged, agreement with ties, without ties, κ."""
    return [(a.judge, a.human, str(a.shared), percent(a.with_ties) if a.shared else "—",
             _share(a.without_ties, a.decisive),
             "—" if math.isnan(a.kappa) else f"{a.kappa:.2f}") for a in found]


def leaning_rows(found: Sequence[Leaning]) -> list[tuple[str, ...]]:
    """rater, both orders alike (judges), the share won by the answer shown first and its p,
    the share won by the longer answer."""
    return [(r.rater, _share(r.share_consistent, r.judged) if is_judge(r.rater) else "—",
             _share(r.share_first, r.first_decisive), number(r.p_value),
             _share(r.share_longer, r.length_decisive)) for r in found]


def notes(agreements: Sequence[Agreement], leanings: Sequence[Leaning]) -> list[str]:
    """The sentences under the tables."""
    out = ["agree: the same verdict (a, b or tie; both bad and both good are ties); w/o ties: "
           "among the items both judged decisively; κ: Cohen's, on the three verdicts."]
    for r in leanings:
        if r.first_decisive and r.p_value < 0.05:
            side = "first" if r.share_first > 0.5 else "second"
            out.append(f"{r.rater} favours the answer shown {side} (binomial test p = "
                       f"{number(r.p_value)}).")
        if is_judge(r.rater) and r.judged and r.share_consistent < 0.8:
            out.append(f"{r.rater} gave the same verdict in both orders on only "
                       f"{percent(r.share_consistent)} of items: the others count as ties.")
    if not agreements:
        out.append("No item judged by both a judge and a human yet.")
    return out
