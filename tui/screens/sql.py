"""The SQL console: a query box with history, the results in a table, errors inline. Read-only,
by DuckDB's own settings (`store.console`: the stores attached read-only, no file, no setting)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static

from tunelab import store as st
from tunelab.engine import format as fmt
from tunelab.tui import keys
from tunelab.tui.widgets.footer import KeyFooter
from tunelab.tui.widgets.table import VimTable
from tunelab.tui.widgets.title import ScreenTitle

MAX_ROWS = 1000
EXAMPLE = "select experiment, number, state, method_kind, value from trials order by value limit 20"


def history_file() -> Path:
    """Where queries are remembered between sessions (TUNELAB_SQL_HISTORY to move it)."""
    explicit = os.environ.get("TUNELAB_SQL_HISTORY")
    if explicit:
        return Path(explicit)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "tunelab" / "sql_history.json"


class QueryBox(Input):
    """An Input that walks the history with up/down (ctrl+p stays the command palette's)."""

    BINDINGS = [
        Binding("up", "older", "Older query", show=False),
        Binding("down", "newer", "Newer query", show=False),
    ]

    def __init__(self, history: list[str], **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.history = history
        self.position = len(history)

    def action_older(self) -> None:
        if self.position > 0:
            self.position -= 1
            self.value = self.history[self.position]
            self.cursor_position = len(self.value)

    def action_newer(self) -> None:
        if self.position < len(self.history) - 1:
            self.position += 1
            self.value = self.history[self.position]
        else:
            self.position = len(self.history)
            self.value = ""
        self.cursor_position = len(self.value)


def _cell(value: object) -> str | Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, float):
        return fmt.number(value)
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


class SqlScreen(Screen):
    KEYS_OF = "SQL"
    BINDINGS = keys.bindings(KEYS_OF)

    @dataclass
    class Answered(Message):
        sql: str
        page: st.QueryPage | None
        error: str | None
        seconds: float

    def __init__(self, initial: str = "") -> None:
        super().__init__()
        self.history: list[str] = self._read_history()
        self.initial = initial

    def compose(self) -> ComposeResult:
        names = ", ".join(p.name for p in self.app.stores.paths)  # type: ignore[attr-defined]
        self.title = f"SQL (read-only) · {names}"
        yield ScreenTitle(id="title")
        yield QueryBox(self.history, value=self.initial, placeholder=EXAMPLE, id="query")
        tables, views = st.schema_names()  # the schema's own list, never one short
        yield Static(Text(f"Enter runs the query · ↑/↓ history · tables: {', '.join(tables)} · "
                          f"views: {', '.join(views)}", style="dim"), id="sql-status")
        yield VimTable(id="results", cursor_type="cell")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(QueryBox).focus()

    def _read_history(self) -> list[str]:
        try:
            found = json.loads(history_file().read_text())
            return [q for q in found if isinstance(q, str)][-200:]
        except (OSError, ValueError):
            return []

    def _remember(self, sql: str) -> None:
        if self.history and self.history[-1] == sql:
            return
        self.history.append(sql)
        box = self.query_one(QueryBox)
        box.position = len(self.history)
        try:
            path = history_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.history[-200:]))
        except OSError:
            pass  # no writable state folder: the history lasts for this session

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def action_run(self) -> None:
        sql = self.query_one(QueryBox).value.strip() or EXAMPLE
        self.query_one(QueryBox).value = sql
        self._remember(sql)
        self.query_one("#sql-status", Static).update(Text("running…", style="dim"))
        self._run(sql)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sql")
    def _run(self, sql: str) -> None:
        start = time.perf_counter()
        paths = self.app.stores.existing()  # type: ignore[attr-defined]
        try:
            if not paths:
                raise st.StoreError("no store to query", "no store")
            page = st.query_page(paths, sql, max_rows=MAX_ROWS)
            self.post_message(self.Answered(sql, page, None, time.perf_counter() - start))
        except Exception as error:  # noqa: BLE001 - DuckDB's message, shown as it is
            message = getattr(error, "message", None) or str(error)
            self.post_message(self.Answered(sql, None, message, time.perf_counter() - start))

    def on_sql_screen_answered(self, event: Answered) -> None:
        status = self.query_one("#sql-status", Static)
        table = self.query_one("#results", VimTable)
        if event.error is not None:
            status.update(Text(event.error, style="bold red"))
            return
        page = event.page
        assert page is not None
        # keyed by name too: another query's columns start at their own width
        columns = [(f"{i}:{name}", name) for i, name in enumerate(page.columns)]
        table.fill(columns, [(str(i), [_cell(v) for v in row]) for i, row in enumerate(page.rows)])
        more = f" (first {MAX_ROWS:,}; add a LIMIT or narrow the query)" if page.truncated else ""
        status.update(f"{len(page.rows):,} rows{more} · {len(page.columns)} columns · "
                      f"{event.seconds * 1000:.0f} ms")

    def action_focus_query(self) -> None:
        self.query_one(QueryBox).focus()

    def action_focus_results(self) -> None:
        self.query_one("#results", VimTable).focus()

    def action_copy(self) -> None:
        """y in the results: the cell under the cursor (in the query box y is a letter)."""
        self.query_one("#results", VimTable).copy_cell()

    def commands(self):  # noqa: ANN201
        yield ("Run the query", "Enter in the query box", self.action_run)
        yield ("Copy the cell", "the results' cell under the cursor, through OSC 52",
               self.action_copy)
