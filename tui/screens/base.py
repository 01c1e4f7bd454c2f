"""What every screen that reads the store shares: the live refresh and the store's errors.

A screen asks for data with `reload()`, which starts its named thread worker; the worker posts
a message back and the screen's handler updates the widgets. Every `REFRESH_S` seconds a timer
looks whether anything could have changed: while a trial runs it reads again; when nothing runs
it only compares the store file's modification time (no DuckDB open), so an idle session costs
nothing and still notices a new sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import TabbedContent, Tabs

from tunelab.store.errors import StoreLocked, TunelabError

if TYPE_CHECKING:
    from tunelab.tui.source import Stores

REFRESH_S = 2.0


class StoreScreen(Screen):
    """A screen fed from the store by a worker, refreshed while something runs."""

    @dataclass
    class Failed(Message):
        title: str
        message: str
        locked: bool = False

    live = False  # set by a screen when what it shows is still changing

    def __init__(self) -> None:
        super().__init__()
        self._stamp: tuple[float, ...] | None = None
        self.loaded_once = False

    @property
    def stores(self) -> Stores:
        return self.app.stores  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self._stamp = self.stores.stamp()
        self.reload()
        # kept: a benchmark pauses it to time one refresh without the next landing inside it
        self.refresh_timer = self.set_interval(REFRESH_S, self._tick, name="refresh")

    def _tick(self) -> None:
        if self.app.screen is not self:
            return
        stamp = self.stores.stamp()
        if self.live or stamp != self._stamp:
            self._stamp = stamp
            self.reload()

    def reload(self) -> None:  # pragma: no cover - every screen has its own
        raise NotImplementedError

    def action_reload(self) -> None:
        self.reload()

    def report(self, error: Exception) -> None:
        """From a worker thread: tells the screen why it could not read."""
        if isinstance(error, StoreLocked):
            self.post_message(self.Failed(
                "store locked", f"held by {error.holder}; showing the data read last", True))
        elif isinstance(error, TunelabError):
            self.post_message(self.Failed(error.title, error.message))
        else:
            self.post_message(self.Failed(type(error).__name__, str(error)))

    def on_store_screen_failed(self, event: StoreScreen.Failed) -> None:
        self.notify(event.message, title=event.title, severity="warning" if event.locked else "error",
                    timeout=4 if event.locked else 8)


class TabbedScreen(StoreScreen):
    """A StoreScreen of numbered tabs (one TabbedContent): `tab(n)` shows the nth of TABS, and
    the shown tab's content takes the focus, so j/k/G/End/PageDown scroll it at once (the tab
    bar itself never takes it). A key that acts on one tab only (TAB_KEYS: action -> tab) is
    in the footer on that tab only, and does nothing elsewhere."""

    TABS: tuple[str, ...] = ()
    TAB_KEYS: dict[str, str] = {}
    # focus is given by the shown tab (Textual's default would focus the first focusable
    # widget, and the TabbedContent would then show the tab that holds it)
    AUTO_FOCUS = ""

    def on_mount(self) -> None:
        self.query_one(Tabs).can_focus = False
        super().on_mount()
        self._focus_tab()

    def action_tab(self, n: int | str) -> None:
        n = int(n)
        if 1 <= n <= len(self.TABS):
            self.query_one(TabbedContent).active = self.TABS[n - 1]

    def on_tabbed_content_tab_activated(self, _: TabbedContent.TabActivated) -> None:
        self._focus_tab()
        self.refresh_bindings()

    def _focus_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        pane = tabs.get_pane(tabs.active) if tabs.active else None
        target = next((w for w in pane.query(Widget) if w.can_focus and not w.disabled), None) \
            if pane else None
        self.set_focus(target)  # None on a tab with nothing to move in: keys reach the screen

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self.TAB_KEYS.get(action)
        return tab is None or self.query_one(TabbedContent).active == tab


def ago(when: datetime | None) -> str:
    """`12s ago`, `4m ago`, `3h ago` within a day; the local date before that."""
    if when is None:
        return "—"
    now = datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds >= 86400:
        return when.astimezone().strftime("%Y-%m-%d")
    for size, unit in ((3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
