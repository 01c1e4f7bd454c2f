"""The search space checked as the runner will use it: every value a trial can take makes a
valid experiment, and Optuna accepts every dimension as written. So that a space `tunelab check`
accepts never fails in `tunelab run` (in Optuna's distributions, or in a trial whose sampled
values break a rule across keys, such as a micro-batch that does not divide the batch).

The values tried: every choice of a list; a range's ends, middle and, for whole numbers or a
step, its grid (at most GRID values). First each key alone (the others as the file sets them),
then the trials the space can make, each key sampled only where its condition holds, up to
COMBINATIONS of them: the first that is not valid is reduced to the keys that make it so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

from tunelab.engine.spec.conditions import choices, conditions, holds, order
from tunelab.engine.spec.experiment import Experiment
from tunelab.engine.spec.overrides import set_path
from tunelab.engine.spec.schema import close_match, field_is_int, field_is_number, model_at, path_exists
from tunelab.engine.spec.sections import ChoiceSpec, RangeSpec

GRID = 16  # values of a stepped or whole-number range tried one by one
COMBINATIONS = 256  # trials of the space tried together

Dimension = RangeSpec | ChoiceSpec | list[Any]
# (the raw file values) -> the mistakes of that file, as `load._validate` finds them
Validate = Callable[[dict[str, Any]], list[str]]


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) \
        else str(value).lower() if isinstance(value, bool) else str(value)


def dimension_problem(name: str, dim: Dimension) -> str | None:
    """What Optuna (or the key) would refuse in a dimension as written, or None."""
    where = f"search.space.{name}"
    if not path_exists(name) or name.startswith("search."):
        parts = name.split(".")
        hint = close_match(model_at(parts), parts[-1])
        guess = f"; did you mean {'.'.join([*parts[:-1], hint])!r}?" if hint else ""
        return f"search.space: {name!r} is not a key of the experiment{guess}"
    if not isinstance(dim, RangeSpec):
        values = choices(dim) or []
        if not values:
            return f"{where}: the list of choices is empty"
        odd = [v for v in values if not isinstance(v, (str, int, float, bool))]
        if odd:  # Optuna's categorical values are scalars
            return (f"{where}: a choice must be a number, a string or true/false (found "
                    f"{odd[0]!r}); a list as one value cannot be searched")
        return None
    if not field_is_number(name):
        return (f"{where}: {name} is not a number, so it cannot be searched over a range; "
                "give a list of its values")
    if field_is_int(name):
        if dim.step is not None and dim.step != int(dim.step):
            return f"{where}: {name} holds whole numbers: step must be one (found {dim.step:g})"
        if dim.log and dim.step not in (None, 1):
            return f"{where}: a log range of whole numbers takes no step but 1 (Optuna's rule)"
    elif dim.log and dim.step is not None:
        return (f"{where}: a log range takes no step (Optuna samples it continuously): drop "
                "step, or log")
    return None


def candidates(name: str, dim: Dimension) -> list[Any]:
    """Values a trial can take: every choice; a range's ends, middle and grid (see GRID)."""
    found = choices(dim)
    if found is not None:
        return found
    assert isinstance(dim, RangeSpec)
    grid: list[Any]
    if field_is_int(name):
        low, high, step = int(dim.low), int(dim.high), int(dim.step or 1)
        grid = list(range(low, high + 1, step))
        return grid if len(grid) <= GRID else sorted({low, grid[len(grid) // 2], grid[-1]})
    if dim.step:
        count = int(math.floor((dim.high - dim.low) / dim.step + 1e-9)) + 1
        grid = [round(dim.low + i * dim.step, 12) for i in range(count)]
        return grid if len(grid) <= GRID else [grid[0], grid[len(grid) // 2], grid[-1]]
    middle = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
    return [dim.low, middle, dim.high] if dim.low != dim.high else [dim.low]


def trials(exp: Experiment) -> Iterator[dict[str, Any]]:
    """The parameters of the trials the space can make (each key only where its condition
    holds, as engine.run.study.sample draws them), over the candidate values."""
    space = exp.search.space
    when = conditions(exp)

    def grow(keys: list[str], values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if not keys:
            yield values
            return
        name, rest = keys[0], keys[1:]
        if not holds(when[name], values, exp):
            yield from grow(rest, values)
            return
        for value in candidates(name, space[name]):
            yield from grow(rest, {**values, name: value})

    yield from grow(order(exp), {})


def _with(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in values.items():
        raw = set_path(raw, dotted, value)
    return raw


def _fewest(raw: dict[str, Any], values: dict[str, Any], validate: Validate) -> dict[str, Any]:
    """The keys of a trial that is not valid that make it so: each one is left to the file in
    turn, and kept out while the rest still fails."""
    kept = dict(values)
    for name in list(values):
        fewer = {k: v for k, v in kept.items() if k != name}
        if validate(_with(raw, fewer)):
            kept = fewer
    return kept


def value_mistakes(exp: Experiment, raw: dict[str, Any], validate: Validate
                   ) -> list[tuple[str, str]]:
    """(searched key, what is wrong) for each dimension of the space of a valid file, and for
    each value it can take with the rest of the file as it is."""
    found: list[tuple[str, str]] = []
    for name, dim in exp.search.space.items():
        problem = dimension_problem(name, dim)
        if problem:
            found.append((name, problem))
            continue
        bad = [(value, what) for value in candidates(name, dim)
               for what in validate(set_path(raw, name, value))[:1]]
        if bad:  # one message per key: the values it cannot take, and why the first cannot
            values = [_shown(value) for value, _ in bad]
            listed = (f"the value {values[0]} is" if len(values) == 1 else
                      f"the values {', '.join(values[:-1])} and {values[-1]} are")
            found.append((name, f"search.space.{name}: {listed} not valid here: "
                                f"{bad[0][1].split(': ', 1)[-1]}"))
    return found


def trial_mistakes(exp: Experiment, raw: dict[str, Any], validate: Validate
                   ) -> list[tuple[str, str]]:
    """The first trial of a space whose keys and conditions are valid that is itself not valid
    (a rule across keys), reduced to the keys that break it."""
    for values in itertools.islice(trials(exp), COMBINATIONS):
        problems = validate(_with(raw, values))
        if problems:
            fewest = _fewest(raw, values, validate)
            taken = " and ".join(f"{k} = {_shown(v)}" for k, v in fewest.items())
            what = validate(_with(raw, fewest))[0].split(": ", 1)[-1]
            return [(next(iter(fewest)), f"search.space: a trial can take {taken}, which is not "
                                         f"valid: {what}")]
    return []
