"""`trial_summary`: one wide row per trial, one column per sampled parameter.

A SQL view has a fixed set of columns, and the parameters of a sweep are only
known once trials sample them. So the writer regenerates the view whenever it
ingests `trial_params` (in the same transaction): a column per parameter name
seen in the store, named by its dotted key with dots as underscores
(`train.learning_rate` → `train_learning_rate`), DOUBLE when every value of
that parameter is a number, VARCHAR otherwise. A parameter that a trial did not
sample (or an experiment does not have) is NULL. `method.kind` is not repeated:
the `method_kind` column already holds it.
"""

from __future__ import annotations

import re

import duckdb

BASE_COLUMNS = (
    "experiment", "number", "state", "method_kind", "objective", "value", "rank",
    "test_loss", "test_perplexity", "duration_s", "fail_reason", "started_at", "finished_at",
)


def column_name(param: str) -> str:
    """The trial_summary column of a parameter: `train.learning_rate` → `train_learning_rate`."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", param)


def trial_summary_sql(params: list[tuple[str, bool]]) -> str:
    """The view for these (name, numeric) parameters."""
    taken = set(BASE_COLUMNS)
    pivots, columns = [], []
    for name, numeric in sorted(params):
        column = column_name(name)
        if column in taken:  # method.kind → method_kind, already a column
            continue
        taken.add(column)
        source = "value_num" if numeric else "value_text"
        literal = name.replace("'", "''")
        pivots.append(f"max({source}) FILTER (WHERE name = '{literal}') AS \"{column}\"")
        columns.append(f', p."{column}"')
    param_select = "".join(columns)
    param_join = ""
    if pivots:
        param_join = ("LEFT JOIN (SELECT experiment, number, " + ", ".join(pivots)
                      + " FROM trial_params GROUP BY experiment, number) p "
                      "ON p.experiment = t.experiment AND p.number = t.number")
    return f"""CREATE OR REPLACE VIEW trial_summary AS
SELECT t.experiment, t.number, t.state, t.method_kind, e.objective, t.value,
       CASE WHEN t.state = 'complete' AND t.value IS NOT NULL THEN
           rank() OVER (PARTITION BY t.experiment, t.state = 'complete' AND t.value IS NOT NULL
                        ORDER BY CASE WHEN e.direction = 'maximize' THEN -t.value ELSE t.value END)
       END AS rank,
       ev.test_loss, ev.test_perplexity, t.duration_s, t.fail_reason, t.started_at, t.finished_at
       {param_select}
FROM trials t
LEFT JOIN (SELECT DISTINCT ON (name) name, objective, direction
           FROM experiments ORDER BY name, updated_at DESC) e ON e.name = t.experiment
LEFT JOIN (SELECT experiment, model_ref,
                  max(value) FILTER (WHERE split = 'test' AND name = 'loss') AS test_loss,
                  max(value) FILTER (WHERE split = 'test' AND name = 'perplexity') AS test_perplexity
           FROM evaluations GROUP BY experiment, model_ref) ev
       ON ev.experiment = t.experiment AND ev.model_ref = 'trial:' || t.number
{param_join}
ORDER BY t.experiment, t.number"""


def refresh_trial_summary(con: duckdb.DuckDBPyConnection) -> None:
    """Regenerates `trial_summary` from the parameters now in `trial_params`."""
    rows = con.execute(
        "SELECT name, bool_and(value_num IS NOT NULL OR value_text IS NULL) "
        "FROM trial_params GROUP BY name"
    ).fetchall()
    con.execute(trial_summary_sql([(name, bool(numeric)) for name, numeric in rows]))
