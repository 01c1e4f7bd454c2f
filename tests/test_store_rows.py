"""The store owns its rows: one typed row per table, and no other layer spells a table or column."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest

from tunelab import store as st
from tunelab.store.ingest import RULES, _ingest_file_sql, ingest_events, ingest_file
from tunelab.store.rows import ROW_TYPES

ROOT = Path(__file__).resolve().parent.parent


def _events_spelled_outside_the_store(folder: Path, root: Path = ROOT) -> list[str]:
    """`{"table": …}` literals and `dict(table=…)` calls: events built by hand."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            spelled = (
                isinstance(node, ast.Dict)
                and any(isinstance(k, ast.Constant) and k.value == "table" for k in node.keys)
            ) or (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "dict" and any(k.arg == "table" for k in node.keywords)
            )
            if spelled:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


@pytest.mark.parametrize("layer", ["engine", "tui"])
def test_no_layer_but_the_store_builds_an_event_by_hand(layer: str) -> None:
    found = _events_spelled_outside_the_store(ROOT / layer)
    assert not found, "store rows built by hand (use tunelab.store.rows): " + ", ".join(found)


def test_the_check_finds_a_hand_built_event(tmp_path: Path) -> None:
    # the test above can fail: a module with a hand-built event is found
    (tmp_path / "x.py").write_text('e = {"table": "metrics", "row": {}}\nf = dict(table="t")\n')
    assert _events_spelled_outside_the_store(tmp_path, tmp_path) == ["x.py:1", "x.py:2"]


def test_every_table_has_one_row_type_whose_fields_are_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path) as con:
        columns = {t: {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_catalog = current_database()", [t]).fetchall()} for t in RULES}
    assert sorted(r.TABLE for r in ROW_TYPES) == sorted(RULES)
    for row_type in ROW_TYPES:
        fields = dataclasses.fields(row_type)
        names = {f.name for f in fields}
        assert names == columns[row_type.TABLE], row_type.__name__
        required = {f.name for f in fields if f.default is dataclasses.MISSING}
        assert set(RULES[row_type.TABLE].key) <= required, row_type.__name__


def test_ingest_reads_its_rules_from_the_row_types_and_each_key_is_the_tables_primary_key(
        tmp_path: Path) -> None:
    # the keys are spelled once, on the row types; RULES is read from them in their order
    assert [row.TABLE for row in ROW_TYPES] == list(RULES)
    for row in ROW_TYPES:
        rule = RULES[row.TABLE]
        assert (rule.key, rule.order, rule.keep_on_update, rule.mostly_new) == (
            row.KEY, row.NEWEST_BY, row.KEEP_ON_UPDATE, row.MOSTLY_NEW), row.__name__
    with st.writing(tmp_path / "s.duckdb") as con:
        primary = {table: set(columns) for table, columns in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database()"
        ).fetchall()}
    for row in ROW_TYPES:
        assert set(row.KEY) == primary[row.TABLE], row.__name__
        assert row.NEWEST_BY is None or row.NEWEST_BY in {f.name for f in dataclasses.fields(row)}


def _one_of_each(now: float) -> list[st.Row]:
    return [
        st.ExperimentRow(name="e", spec={"name": "e"}, objective="eval_loss", direction="minimize",
                         created_at=now, updated_at=now),
        st.TrialRow(experiment="e", number=0, state="complete", params={"method.r": 8},
                    value=1.5, success=False, updated_at=now),
        st.TrialParamRow(experiment="e", number=0, name="method.r", value_num=8.0,
                         value_text="8"),
        st.MetricRow(experiment="e", trial=0, step=1, split="train", name="loss", value=2.0,
                     time=now),
        st.EvaluationRow(experiment="e", model_ref="trial:0", split="test", name="loss",
                         value=1.4, time=now),
        st.SampleRow(experiment="e", model_ref="trial:0", prompt_id="p1", position=0,
                     prompt="hi", output="hello", settings={"do_sample": False}, time=now),
        st.DataReportRow(experiment="e", fingerprint="f", sources=["a.jsonl"], rows_read=3,
                         findings=[], report={"rows_read": 3}, created_at=now),
        st.ReviewRow(id="r", experiment="e", name="n", models=["base", "trial:0"],
                     status="open", kind="review", created_at=now, updated_at=now),
        st.ReviewItemRow(review_id="r", item=0, model_a="base", model_b="trial:0",
                         prompt="hi", messages=[{"role": "user", "content": "x"}],
                         created_at=now),
        st.vote_row("r", 0, "ann", "a", 1.5),
        st.JudgementRow(review_id="r", item=0, rater="judge:j", shown="swapped", verdict="b",
                        answer="[[A]]", model="gpt", prompt_sha="abc", created_at=now),
        st.ChatRow(id="c", experiment="e", model_ref="base", messages=[], settings={},
                   created_at=now, updated_at=now),
        st.RatingRow(experiment="e", scope="all", model_ref="base", rating=1000.0, rank=1,
                     votes=1, fitted_at=now),
        st.WatchSampleRow(experiment="e", trial=0, step=4, position=0, epoch=1.0,
                          prompt_id="p1", prompt="hi", output="hello", time=now),
        st.ExampleLossRow(experiment="e", trial=0, split="train", position=0,
                          origin="data.jsonl:3", source_row=3, tokens=5, loss=2.5, time=now),
    ]


def test_each_row_type_lands_in_its_table_by_both_ingest_paths(tmp_path: Path) -> None:
    now = time.time()
    rows = _one_of_each(now)
    assert {r.TABLE for r in rows} == set(RULES)
    fast, slow = tmp_path / "fast.duckdb", tmp_path / "slow.duckdb"
    spooled = tmp_path / "rows.jsonl"
    with st.Spool(tmp_path / "unused.duckdb") as spool:
        spool.write(rows, ingest=False)  # the spool's own encoding of the rows
        shutil.copy(spool.path, spooled)
    with st.writing(fast) as con:  # DuckDB's JSON reader, without the per-row fallback
        con.execute("BEGIN")
        _ingest_file_sql(con, spooled, None)
        con.execute("COMMIT")
    with st.writing(slow) as con:
        ingest_events(con, [r.event() for r in rows])
    for path in (fast, slow):
        for table in RULES:
            assert st.query(path, f"select count(*) from {table}").rows[0][0] == 1, (path, table)
        trial = st.list_trials(path, "e")[0]
        assert (trial.state, trial.value) == ("complete", 1.5)
        got = st.query(path, "select models, json_extract(messages, '$[0].role') from reviews "
                             "join review_items on id = review_id").rows[0]
        assert got[1] == '"user"' and '"trial:0"' in got[0]
        assert st.query(path, "select success from trials").rows[0][0] is False


def test_a_field_left_out_does_not_blank_what_an_earlier_row_wrote(tmp_path: Path) -> None:
    vote = st.vote_row("r", 0, "ann", "a", 1.5, comment="clearer")
    later = st.vote_row("r", 0, "ann", "a", 1.5, vote_id=vote.id, undone=True)
    assert "comment" not in later.event()["row"]
    for ingest in ("sql", "per-row"):  # both ingest paths keep the comment
        path = tmp_path / f"{ingest}.duckdb"
        for n, row in enumerate((vote, later)):
            with st.writing(path) as con:
                if ingest == "sql":
                    spool_file = tmp_path / f"{ingest}-{n}.jsonl"
                    spool_file.write_text(json.dumps(row.event()) + "\n")
                    ingest_file(con, spool_file)
                else:
                    ingest_events(con, [row.event()])
        assert st.review_votes(path, "r", include_undone=True)[0].undone, ingest
        assert st.query(path, "select comment from votes").rows == [("clearer",)], ingest
