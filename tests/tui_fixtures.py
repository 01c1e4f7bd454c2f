"""The TUI tests' fixtures, as a plugin: `pytest_plugins = ("tui_fixtures",)` in a test module
gives it the demo store and a private SQL history."""

from __future__ import annotations

from pathlib import Path

import pytest
import tui_store


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tui_store's five trials, written once per session (the tests only read it)."""
    return tui_store.build(tmp_path_factory.mktemp("tui"))


@pytest.fixture(autouse=True)
def sql_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL console remembers its queries in the test's own folder."""
    monkeypatch.setenv("TUNELAB_SQL_HISTORY", str(tmp_path / "history.json"))
