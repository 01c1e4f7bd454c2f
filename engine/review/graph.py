"""Who was compared with whom, and who beat whom: the two graphs that decide what ratings the
votes can support.

The comparison graph links two models when a counted vote compared them; models in different
connected parts have no rating difference at all. The win graph has an edge i → j when i won
or tied against j (a tie gives both edges); the Bradley–Terry maximum-likelihood ratings of a
set of models are finite exactly when its win graph is strongly connected (Zermelo 1929,
Ford 1957). Any other part of a comparison group is above or below the rest without a bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _parts(models: Sequence[str], edges: Iterable[tuple[str, str]], strong: bool) -> list[list[str]]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    index = {m: k for k, m in enumerate(models)}
    pairs = [(index[a], index[b]) for a, b in edges]
    n = len(models)
    rows = np.array([a for a, _ in pairs], dtype=int)
    cols = np.array([b for _, b in pairs], dtype=int)
    matrix = csr_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(matrix, directed=strong, connection="strong")
    found: dict[int, list[str]] = {}
    for m, label in zip(models, labels, strict=True):
        found.setdefault(int(label), []).append(m)
    return list(found.values())


def comparison_groups(models: Sequence[str], pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The connected parts of the comparison graph, the most models first."""
    parts = _parts(sorted(models), pairs, strong=False)
    return sorted(parts, key=lambda p: (-len(p), p))


def win_parts(models: Sequence[str], beats: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected parts of the win graph (`beats`: (winner or tier, other))."""
    return _parts(sorted(models), beats, strong=True)


def reachable(start: set[str], beats: set[tuple[str, str]]) -> set[str]:
    """Every model below `start` through a chain of wins (start itself excluded)."""
    found, todo = set(), list(start)
    while todo:
        here = todo.pop()
        for winner, loser in beats:
            if winner == here and loser not in found and loser not in start:
                found.add(loser)
                todo.append(loser)
    return found
