"""`tunelab sql` and the TUI's console are read-only by DuckDB's own settings, not by reading
the query: whatever the statement, and however it is wrapped (EXPLAIN, EXPLAIN ANALYZE, which
runs what it explains), no file changes, no file outside the stores is read, no setting changes,
nothing is downloaded. The documented tables and views still answer; `--allow-files PATH` opens
the files a query names, and only those."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tunelab import store as st
from tunelab.store.console import console

from conftest import Ran, tunelab

SECRET = "s3cr3t-value"

# every kind of statement that writes, reads a file, loads code or changes a setting
STATEMENTS = [
    "INSERT INTO experiments (name) VALUES ('x')",
    "UPDATE trials SET state = 'failed'",
    "DELETE FROM trials",
    "CREATE TABLE x AS SELECT 1 AS a",
    "DROP VIEW best_trials",
    "ALTER TABLE trials ADD COLUMN x INTEGER",
    "CHECKPOINT",
    "COPY (SELECT 'x' AS a) TO 'tunelab.optuna.journal' (FORMAT csv, HEADER false)",
    "COPY trials FROM 'secret.csv'",
    "EXPORT DATABASE 'dump'",
    "ATTACH 'other.duckdb' AS other",
    "ATTACH 'tunelab.duckdb' AS again",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "SELECT * FROM read_csv('secret.csv')",
    "SELECT * FROM read_text('secret.csv')",
    "SELECT * FROM read_blob('secret.csv')",
    "SELECT * FROM read_json('secret.csv')",
    "SELECT * FROM read_ndjson_objects('secret.csv')",
    "SELECT * FROM read_parquet('secret.csv')",
    "SELECT * FROM parquet_metadata('secret.csv')",
    "SELECT * FROM sniff_csv('secret.csv')",
    "SELECT * FROM 'secret.csv'",
    "SELECT * FROM glob('*')",
    "SELECT * FROM glob('/root/**')",
    "SELECT * FROM read_text('/etc/passwd')",
]
PRAGMAS = [
    "PRAGMA enable_profiling",
    "PRAGMA profiling_output = 'profile.txt'",
    "PRAGMA threads = 1",
    "PRAGMA enable_checkpoint_on_shutdown",
]
WRAPPERS = ["{}", "EXPLAIN {}", "EXPLAIN ANALYZE {}"]


def _make_folder(folder: Path) -> Path:
    """A store (and a copy of it) beside a journal and a file the console must not read."""
    store = folder / "tunelab.duckdb"
    with st.Spool(store) as spool:
        spool.write([{"table": "experiments", "row": {"name": "e", "spec_hash": "h"}}])
    (folder / "box2.duckdb").write_bytes(store.read_bytes())
    (folder / "tunelab.optuna.journal").write_text('{"op_code": 0}\n')
    (folder / "secret.csv").write_text(f"a,b\n{SECRET},2\n")
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _make_folder(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the many statements: each must leave it as it was anyway."""
    return _make_folder(tmp_path_factory.mktemp("console"))


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


LOCKED = {"enable_external_access": "false", "lock_configuration": "true",
          "autoload_known_extensions": "false", "autoinstall_known_extensions": "false"}


def _attempt(sql: str, stores: list[Path]) -> str:
    """What a statement got on the console's own connection (no word check before it): the
    error, or the rows it returned. The connection's lock is checked after it, either way."""
    with console(stores) as con:
        try:
            got = repr(con.execute(sql).fetchall())
        except duckdb.Error as error:
            got = f"refused: {error}"
        settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "(SELECT unnest(?))", [list(LOCKED)]).fetchall())
    assert settings == LOCKED, (sql, settings)
    return got


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("statement", STATEMENTS + PRAGMAS)
def test_no_statement_writes_reads_a_file_or_unlocks_however_wrapped(
        shared: Path, monkeypatch: pytest.MonkeyPatch, statement: str, wrapper: str) -> None:
    monkeypatch.chdir(shared)
    before = _files(shared)
    store = shared / "tunelab.duckdb"
    several = [[store, shared / "box2.duckdb"]] if wrapper == "{}" else []
    for stores in [[store], *several]:
        got = _attempt(wrapper.format(statement), stores)
        assert SECRET not in got, got  # nothing of the file came back
        reads = any(word in statement for word in ("secret", "glob", "passwd"))
        if reads and wrapper != "EXPLAIN {}":  # a plan alone reads nothing
            assert got.startswith("refused"), got
        assert _files(shared) == before, got  # nothing written, beside the store or in it


def test_the_reported_attacks_end_in_words_and_change_nothing(folder: Path) -> None:
    """The fault hunt's: EXPLAIN ANALYZE got around the refusal of COPY and overwrote the
    journal; read_text, read_csv and glob read any file the user can."""
    before = _files(folder)
    for sql in ("explain analyze copy (select 'x' as a) to 'tunelab.optuna.journal' "
                "(format csv, header false)", "explain analyze install httpfs",
                "select * from read_text('/etc/shadow')", "select * from read_csv('/etc/passwd')",
                "select * from glob('/root/**')", f"select * from read_csv('{folder}/secret.csv')"):
        done = tunelab("sql", sql, "--store", str(folder / "tunelab.duckdb"), cwd=folder)
        assert done.returncode == 1, (sql, done.stdout)
        assert done.stderr.startswith("read-only\n") and "Traceback" not in done.stderr, done.stderr
        assert SECRET not in done.stdout + done.stderr
    assert _files(folder) == before


def test_the_documented_tables_and_views_answer_on_one_store_and_several(folder: Path) -> None:
    store = folder / "tunelab.duckdb"
    other = folder / "box2.duckdb"
    tables, views = st.schema_names()
    for stores in ([store], [store, other]):
        for name in tables + views:
            assert st.query(stores, f"select count(*) from {name}").rows[0][0] >= 0
    assert st.query([store, other], "select count(*) from box2.experiments").rows == [(1,)]


def test_the_help_and_the_console_list_every_table_of_the_schema(folder: Path) -> None:
    """They listed 10 of the 14 tables (the schema has grown since: the store is the truth)."""
    with st.reading(folder / "tunelab.duckdb") as con:
        found = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()} - {"schema_version"}
        views = {r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND "
            "database_name = current_database()").fetchall()}
    tables, named_views = st.schema_names()
    assert set(tables) == found and len(tables) == len(found)
    assert set(named_views) == views
    done = tunelab("sql", "--help", env={"COLUMNS": "200"})
    said = " ".join(done.stdout.split())
    for name in tables + named_views:
        assert name in said, name


def test_allow_files_opens_the_named_files_and_only_those(folder: Path) -> None:
    data = folder / "extra"
    data.mkdir()
    (data / "x.csv").write_text("a,b\n1,2\n")

    def sql(query: str, *allow: Path) -> Ran:
        args = [a for path in allow for a in ("--allow-files", str(path))]
        return tunelab("sql", query, "--store", str(folder / "tunelab.duckdb"), "--format", "csv",
                       *args, cwd=folder)

    assert sql("select * from read_csv('extra/x.csv')").returncode == 1
    assert sql("select * from read_csv('extra/x.csv')", data).stdout == "a,b\n1,2\n"
    assert sql("select * from read_csv('extra/x.csv')", data / "x.csv").stdout == "a,b\n1,2\n"
    refused = sql("select * from read_csv('secret.csv')", data)
    assert refused.returncode == 1 and SECRET not in refused.stdout
    assert "secret.csv is not among them" in refused.stderr
    missing = sql("select 1", folder / "nothere")
    assert missing.returncode != 0 and "--allow-files" in missing.stderr
