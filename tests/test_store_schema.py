"""The store's SQL schema as a product: migrations with a backup, the views, several stores read
as one, the two ingest paths agreeing, and the typed reads the TUI uses."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import duckdb
import pytest

from tunelab import store as st
from tunelab.store.ingest import ingest_events, ingest_file, read_events


def _trial(number: int, state: str, value: float | None, params: dict, at: float = 100.0,
           experiment: str = "e") -> list[dict]:
    kind = params.get("method.kind", "full")
    return [{"table": "trials", "row": {
        "experiment": experiment, "number": number, "state": state, "method_kind": kind,
        "params": json.dumps(params), "value": value, "started_at": at, "updated_at": at}}] + [
        {"table": "trial_params", "row": {
            "experiment": experiment, "number": number, "name": k,
            "value_num": v if isinstance(v, (int, float)) else None, "value_text": str(v)}}
        for k, v in params.items()]


def _experiment(name: str = "e", direction: str = "minimize") -> dict:
    return {"table": "experiments", "row": {"name": name, "objective": "eval_loss",
                                            "direction": direction, "created_at": 1.0,
                                            "updated_at": 1.0}}


def _metric(trial: int, step: int, value: float, split: str = "train", name: str = "loss",
            experiment: str = "e") -> dict:
    return {"table": "metrics", "row": {"experiment": experiment, "trial": trial, "step": step,
                                        "epoch": step / 10, "tokens": step * 64, "split": split,
                                        "name": name, "value": value, "time": time.time()}}


def _write(path: Path, events: list[dict]) -> None:
    with st.Spool(path) as spool:
        spool.write(events)


def _rows(path: Path | list[Path], sql: str) -> list[tuple]:
    return st.query(path, sql).rows


def _sweep_store(path: Path, experiment: str = "e") -> None:
    _write(path, [
        _experiment(experiment),
        *_trial(0, "complete", 0.9, {"train.learning_rate": 1e-3, "method.kind": "full"},
                experiment=experiment),
        *_trial(1, "complete", 0.5, {"train.learning_rate": 3e-4, "method.kind": "lora",
                                     "method.r": 16}, experiment=experiment),
        *_trial(2, "pruned", 1.4, {"train.learning_rate": 1e-5, "method.kind": "lora",
                                   "method.r": 8}, experiment=experiment),
        *[_metric(1, s, 2.0 / s, experiment=experiment) for s in range(1, 6)],
        _metric(1, 5, 0.5, "validation", experiment=experiment),
        {"table": "evaluations", "row": {"experiment": experiment, "model_ref": "trial:1",
                                         "split": "test", "name": "loss", "value": 0.55,
                                         "time": 1.0}},
        {"table": "evaluations", "row": {"experiment": experiment, "model_ref": "base",
                                         "split": "validation", "name": "loss", "value": 4.0,
                                         "time": 1.0}},
    ])


# ---------------------------------------------------------------- migrations


def _v1_store(path: Path) -> None:
    """A store as tunelab 0.1 (schema version 1) left it, made with plain DuckDB."""
    sql = (resources.files("tunelab.store") / "migrations" / "001_initial.sql").read_text()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ DEFAULT now())")
    con.execute(sql)
    con.execute("INSERT INTO schema_version (version) VALUES (1)")
    con.execute("INSERT INTO trials (experiment, number, state, value) VALUES ('e', 0, 'complete', 0.7)")
    con.execute("INSERT INTO trial_params VALUES ('e', 0, 'train.learning_rate', 0.001, '0.001')")
    con.close()


def test_an_older_store_is_migrated_on_first_write_and_a_backup_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.duckdb"
    _v1_store(path)
    # before any write, the new views already answer over the old file (read-only, in memory)
    assert _rows(path, "select number, train_learning_rate from trial_summary") == [(0, 0.001)]
    assert _rows(path, "select max(version) from schema_version") == [(1,)]

    _write(path, [_metric(0, 1, 1.0)])

    assert "migrating it to schema" in caplog.text
    backup = tmp_path / "s.duckdb.v1.bak"
    old = duckdb.connect(str(backup), read_only=True)
    assert old.execute("select max(version) from schema_version").fetchall() == [(1,)]
    assert old.execute("select count(*) from trials").fetchall() == [(1,)]
    assert "votes" not in {r[0] for r in old.execute("show tables").fetchall()}
    old.close()
    assert _rows(path, "select max(version) from schema_version") == [(st.SCHEMA_VERSION,)]
    assert _rows(path, "select number, value from best_trials") == [(0, 0.7)]
    assert _rows(path, "select count(*) from votes") == [(0,)]
    assert _rows(path, "select count(*) from metrics") == [(1,)]
    # a second write migrates nothing and copies nothing
    _write(path, [_metric(0, 2, 1.0)])
    assert sorted(p.name for p in tmp_path.glob("s.duckdb.v*")) == ["s.duckdb.v1.bak"]


def test_a_new_store_has_every_table_and_view(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with st.writing(path):
        pass
    names = {r[0] for r in _rows(path, "select table_name from information_schema.tables")}
    assert {"experiments", "trials", "trial_params", "metrics", "evaluations", "reviews",
            "review_items", "votes", "schema_version", "best_trials", "curves", "trial_summary",
            "leaderboard"} <= names
    assert not list(tmp_path.glob("*.bak"))  # nothing to back up in a new file


# ---------------------------------------------------------------- views


def test_best_trials_picks_the_best_complete_trial_by_direction(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _sweep_store(path)
    _write(path, [_experiment("up", "maximize"),
                  *_trial(0, "complete", 0.2, {}, experiment="up"),
                  *_trial(1, "complete", 0.8, {}, experiment="up"),
                  *_trial(2, "pruned", 0.9, {}, experiment="up")])
    rows = _rows(path, "select experiment, number, value, test_loss, baseline_validation_loss "
                       "from best_trials order by 1")
    assert rows == [("e", 1, 0.5, 0.55, 4.0), ("up", 1, 0.8, None, None)]


def test_curves_put_train_and_validation_loss_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _sweep_store(path)
    rows = _rows(path, "select step, tokens, train_loss, validation_loss from curves "
                       "where experiment = 'e' and trial = 1 order by step")
    assert rows[0] == (1, 64, 2.0, None)
    assert rows[-1] == (5, 320, 0.4, 0.5)


def test_trial_summary_has_a_column_per_parameter_regenerated_as_new_ones_appear(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _sweep_store(path)
    result = st.query(path, "select * from trial_summary order by number")
    assert "train_learning_rate" in result.columns and "method_r" in result.columns
    assert "method_kind" in result.columns and "method.kind" not in result.columns
    types = dict(zip(result.columns, result.types, strict=True))
    assert types["train_learning_rate"] == "DOUBLE"
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert [r["method_r"] for r in rows] == [None, 16.0, 8.0]
    assert [r["rank"] for r in rows] == [2, 1, None]  # pruned trials are not ranked
    assert rows[1]["test_loss"] == 0.55

    _write(path, _trial(3, "running", None, {"train.scheduler": "cosine"}))
    result = st.query(path, "select number, train_scheduler from trial_summary where number = 3")
    assert result.rows == [(3, "cosine")] and result.types[1] == "VARCHAR"


def _vote(vid: str, item: int, choice: str, undone: bool = False, rater: str = "ana") -> dict:
    return {"table": "votes", "row": {"id": vid, "review_id": "r1", "item": item, "rater": rater,
                                      "choice": choice, "undone": undone, "created_at": 1.0,
                                      "updated_at": 2.0 if undone else 1.0}}


def test_leaderboard_counts_ties_and_both_bad_as_half_and_ignores_undone_votes(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    items = [{"table": "review_items", "row": {
        "review_id": "r1", "item": i, "prompt": f"p{i}", "model_a": a, "model_b": b}}
        for i, (a, b) in enumerate([("base", "trial:1"), ("trial:1", "base"),
                                    ("base", "trial:1"), ("trial:1", "base")])]
    _write(path, [
        {"table": "reviews", "row": {"id": "r1", "experiment": "e", "models": '["base", "trial:1"]',
                                     "status": "open", "created_at": 1.0, "updated_at": 1.0}},
        *items,
        _vote("v0", 0, "b"), _vote("v1", 1, "a"), _vote("v2", 2, "tie"), _vote("v3", 3, "both_bad"),
        _vote("v4", 0, "a"),
    ])
    _write(path, [_vote("v4", 0, "a", undone=True)])  # undo, later: the newer row wins
    rows = _rows(path, "select model_ref, votes, wins, losses, ties, both_bad, win_rate, rank "
                       "from leaderboard")
    # a tie and "both bad" count half, as in the Bradley-Terry fit; no rank before a fit (the
    # rank rule is the fit's: `tunelab review stats` saves it), listed by win rate meanwhile
    assert rows == [("trial:1", 4, 2, 0, 1, 1, pytest.approx(3 / 4), None),
                    ("base", 4, 0, 2, 1, 1, pytest.approx(1 / 4), None)]
    low, high = _rows(path, "select win_rate_low, win_rate_high from leaderboard "
                            "where model_ref = 'trial:1'")[0]
    assert 0 < low < 3 / 4 < high < 1


# ---------------------------------------------------------------- several stores as one


def test_several_stores_are_queried_as_one_and_each_by_its_name(tmp_path: Path) -> None:
    box1, box2 = tmp_path / "box1.duckdb", tmp_path / "box2.duckdb"
    _sweep_store(box1, "alpha")
    _sweep_store(box2, "beta")
    both = [box1, box2]
    assert _rows(both, "select experiment, count(*) from trials group by 1 order by 1") == [
        ("alpha", 3), ("beta", 3)]
    assert _rows(both, "select experiment, number from best_trials order by 1") == [
        ("alpha", 1), ("beta", 1)]
    assert _rows(both, "select count(*) from box2.trials") == [(3,)]
    assert "train_learning_rate" in st.query(both, "select * from trial_summary").columns
    with pytest.raises(st.StoreError, match="read-only"):
        st.query(both, "create table x (a int)")


# ---------------------------------------------------------------- ingest


EVENTS = [
    _experiment(),
    *_trial(0, "running", None, {"train.learning_rate": 1e-3}, at=100.0),
    *_trial(0, "complete", 0.4, {"train.learning_rate": 1e-3}, at=200.0),
    *_trial(1, "complete", 0.6, {"train.learning_rate": 1e-4}, at=150.0),
    *_trial(1, "running", None, {"train.learning_rate": 1e-4}, at=120.0),  # older, arrives later
    *[_metric(t, s, 1.0 / (s + 1)) for t in (0, 1) for s in range(20)],
    _metric(0, 3, 99.0),  # the same key again (a retry after out-of-memory): the later one wins
    {"table": "evaluations", "row": {"experiment": "e", "model_ref": "trial:0", "split": "test",
                                     "name": "loss", "value": 0.41, "time": 1.0}},
]

SNAPSHOT = ["select * from trials order by all", "select * from trial_params order by all",
            "select * from metrics order by all", "select * from evaluations order by all",
            "select * from experiments order by all"]


def test_the_fast_and_the_per_row_ingest_paths_agree(tmp_path: Path) -> None:
    spool = tmp_path / "events.jsonl"
    spool.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    fast, slow = tmp_path / "fast.duckdb", tmp_path / "slow.duckdb"
    with st.writing(fast) as con:
        ingest_file(con, spool)
    with st.writing(slow) as con:
        ingest_events(con, read_events(spool))
    for sql in SNAPSHOT:
        assert _rows(fast, sql) == _rows(slow, sql), sql
    assert _rows(fast, "select number, state from trials order by 1") == [
        (0, "complete"), (1, "complete")]
    assert _rows(fast, "select value from metrics where trial = 0 and step = 3") == [(99.0,)]
    with st.writing(fast) as con:  # again: nothing changes
        ingest_file(con, spool)
    for sql in SNAPSHOT:
        assert _rows(fast, sql) == _rows(slow, sql), sql


def test_a_spool_with_a_broken_line_or_a_torn_end_loses_only_those(tmp_path: Path) -> None:
    spool = tmp_path / "events.jsonl"
    good = [json.dumps(_metric(0, s, 1.0)) + "\n" for s in range(10)]
    spool.write_text("".join(good[:5]) + "{not json\n" + "".join(good[5:]) + '{"table": "metr')
    path = tmp_path / "s.duckdb"
    with st.writing(path) as con:
        ingest_file(con, spool)
    assert _rows(path, "select count(*) from metrics") == [(10,)]


def test_an_event_for_an_unknown_table_is_refused_when_written(tmp_path: Path) -> None:
    with st.Spool(tmp_path / "s.duckdb") as spool:
        with pytest.raises(st.StoreError, match="unknown table"):
            spool.write([{"table": "nope", "row": {}}])


# ---------------------------------------------------------------- typed reads


def test_list_trials_gives_a_running_trial_its_best_validation_value_so_far(
        tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _sweep_store(path)
    _write(path, [*_trial(3, "running", None, {}),
                  _metric(3, 10, 0.8, "validation"), _metric(3, 20, 0.6, "validation"),
                  _metric(3, 30, 0.7, "validation"), _metric(3, 30, 0.1, "train")])
    trials = {t.number: t for t in st.list_trials(path, "e")}
    assert trials[3].best_value == 0.6 and trials[3].value is None
    assert trials[1].best_value == trials[1].value == 0.5


def test_trial_curve_downsamples_long_series_and_keeps_their_end(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _write(path, [_experiment(),
                  *[_metric(0, s, float(s)) for s in range(1, 1001)],
                  *[_metric(0, s, 1.0, "validation") for s in (250, 500, 750, 1000)]])
    curve = st.trial_curve(path, "e", 0, max_points=100)
    train = curve.get("train", "loss")
    assert train is not None and train.total_points == 1000
    assert len(train.steps) == 100 and train.steps[-1] == 1000 and train.tokens[-1] == 64000
    assert train.values[0] == pytest.approx(5.5)  # the mean of steps 1..10
    validation = curve.get("validation", "loss")
    assert validation is not None and validation.steps == (250, 500, 750, 1000)
    only = st.trial_curve(path, "e", 0, names=["nothing"])
    assert only.series == ()
