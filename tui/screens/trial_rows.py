"""The rows of the trials table, apart from the screen that shows them: what a baseline's row
and a trial's row show and what they sort and filter by, and the filter's terms."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from tunelab import store as st
from tunelab.engine import baselines
from tunelab.engine import format as fmt
from tunelab.tui.states import STATE_STYLE


@dataclass(frozen=True)
class Row:
    """One line of the table: what is shown and what it sorts and filters by."""

    key: str
    cells: dict[str, Any]   # column key -> shown cell
    values: dict[str, Any]  # column key -> value to sort and filter by


@dataclass(frozen=True)
class Shape:
    """What every row has a cell for: the experiment's objective, the searched parameters and
    the test metrics shown."""

    objective: str
    params: tuple[str, ...]
    metrics: tuple[str, ...]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    "=": operator.eq, "~": lambda a, b: str(b).lower() in str(a).lower()}
TERM = re.compile(r"^([\w.#]+)(>=|<=|!=|>|<|=|~)(.+)$")


def matches(row: Row, terms: list[str], titles: dict[str, str]) -> bool:
    """`state=complete lr<1e-3 lora` keeps rows where every term holds.

    A term is COLUMN OP VALUE (OP one of = != < <= > >= ~, ~ meaning "contains"; COLUMN is a
    column title or key) or a bare word that some cell must contain.
    """
    if not terms:
        return True  # no filter: every row (1,000 of them each refresh)
    by_name = {**{k: k for k in titles}, **{t.lower(): k for k, t in titles.items()}}
    for term in terms:
        found = TERM.match(term)
        if found and found.group(1).lower() in by_name:
            column = by_name[found.group(1).lower()]
            op, wanted = OPS[found.group(2)], found.group(3)
            have = row.values.get(column)
            try:
                number = _num(have)
                if number is not None and found.group(2) != "~":
                    ok = op(number, float(wanted))
                else:
                    ok = op(str(have).lower(), wanted.lower()) if found.group(2) in ("=", "!=", "~") \
                        else False
            except ValueError:
                ok = False
            if not ok:
                return False
        elif not any(term.lower() in str(v).lower() for v in row.values.values() if v is not None):
            return False
    return True


def joined(parts: list[str], width: int) -> str:
    """`a · b · c`, a new line where the next part would not fit: no part is cut in two."""
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + 3 + len(part) > width:
            lines.append("")
        lines[-1] += (" · " if lines[-1] else "") + part
    return "\n".join(lines)


def sort_key(value: Any) -> tuple[int, Any]:
    number = _num(value)
    if number is not None and not math.isnan(number):
        return (0, number)
    if value is None:
        return (2, "")
    return (1, str(value))


def row_of_baseline(baseline: baselines.Baseline, shape: Shape, objective_key: str) -> Row:
    """The base model's row, or the base with examples in its prompts (eval.baseline_shots);
    `objective_key` is where the objective's metric is in its evaluations."""
    base, shots = baseline.values, baseline.shots
    base_value = base.get(objective_key)
    cells = {"mark": Text("base", style="bold magenta"), "number": "—",
             "state": Text(f"{shots}-shot" if shots else "baseline", style="magenta"),
             "method": "—",
             **{f"p:{k}": "" for k in shape.params}, "objective": fmt.number(base_value),
             **{f"m:{m}": fmt.number(base.get(f"test/{m}")) for m in shape.metrics},
             "success": "", "progress": f"{shots} examples in prompt" if shots else "untrained",
             "duration": "", "cost": ""}
    if shape.objective == "preference" and not shots:  # the ratings are over the base model: 0
        base_value, cells["objective"] = 0.0, "+0"
    return Row(baseline.ref, cells, {"state": "baseline", "objective": base_value})


def _objective_and_progress(o: st.TrialOverview, objective: str, best: bool) -> tuple[Text, str]:
    """The objective cell (a running trial's best so far, a voting trial's placement so far)
    and the progress cell."""
    if o.state == "running":
        value = Text("~" + fmt.number(o.best_value), style="italic") if o.best_value is not None \
            else Text("—", style="dim")
        progress = " · ".join(x for x in (
            f"step {o.last_step}" if o.last_step is not None else "starting",
            f"loss {fmt.number(o.last_train_loss)}" if o.last_train_loss is not None else "") if x)
        return value, progress
    if o.state == "voting":  # where the votes would place it now: not placed yet
        value = Text("~" + fmt.rating(o.value), style="italic") if o.value is not None \
            else Text("no votes", style="dim")
        return value, "waiting for votes"
    shown = fmt.objective_value(objective, o.value)
    return Text(shown, style="bold" if best else ""), f"{o.steps} steps" if o.steps else ""


def row_of_trial(key: str, o: st.TrialOverview, evaluations: Mapping[str, float], shape: Shape,
              best: bool, selected: bool) -> Row:
    """A trial's row: `evaluations` its test metrics, `best` whether it is the best trial,
    `selected` whether it is selected for comparison."""
    mark = Text()
    if selected:
        mark.append("●", style="bold")
    if best:
        mark.append("★", style="bold yellow")
    state = Text(o.state, style=STATE_STYLE.get(o.state, ""))
    if o.state == "failed" and o.fail_reason:
        state.append(f" ({o.fail_reason})")
    value, progress = _objective_and_progress(o, shape.objective, best)
    success = Text("—", style="dim") if o.success is None else (
        Text("✓", style="green") if o.success else Text("✗", style="red"))
    cells = {"mark": mark, "number": str(o.number), "state": state,
             "method": o.method_kind or "—",
             # a key the trial did not sample (its condition was false): a dim dash
             **{f"p:{k}": fmt.number(o.params[k]) if k in o.params
                else Text("–", style="dim") for k in shape.params},
             "objective": value,
             **{f"m:{m}": fmt.number(evaluations.get(f"test/{m}")) for m in shape.metrics},
             "success": success, "progress": progress, "duration": fmt.duration(o.duration_s),
             "cost": f"${o.cost:.2f}" if o.cost else "—"}
    values = {"mark": "★" if best else "", "number": o.number,
              "state": o.state, "method": o.method_kind,
              **{f"p:{k}": o.params.get(k) for k in shape.params},
              "objective": o.value if o.value is not None else o.best_value,
              **{f"m:{m}": evaluations.get(f"test/{m}") for m in shape.metrics},
              "success": o.success, "progress": o.last_step, "duration": o.duration_s,
              "cost": o.cost}
    return Row(key, cells, values)
