"""A refill that changes a few cells redraws only their rows (VimTable._update_rows): what the
table shows is what a table filled from scratch with the same cells shows, the rows that did
not change keep their rendered lines, and a widened column keeps the other columns' rendered
cells (DataTable.update_cell would render every visible cell again: ~70 ms a frame for a
screen of the trials table)."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from tunelab.tui.widgets.table import VimTable

COLUMNS = [("number", "#"), ("state", "state"), ("progress", "progress")]


def rows(progress: dict[int, str]) -> list[tuple[str, list[object]]]:
    return [(str(n), [str(n), Text("running" if n in progress else "complete", style="cyan"),
                      progress.get(n, f"{n * 10} steps")]) for n in range(40)]


class Tables(App[None]):
    CSS = "VimTable { height: 14; width: 60; }"

    def compose(self) -> ComposeResult:
        yield VimTable(id="live")
        yield VimTable(id="fresh")


def lines(table: VimTable) -> list[str]:
    """The table's lines as the screen has them (through the widget's own cache of lines)."""
    return [strip.text for strip in table.render_lines(Region(0, 0, *table.size))]


def test_a_changed_cell_redraws_its_row_alone_and_shows_what_a_fresh_fill_shows() -> None:

    async def run() -> None:
        app = Tables()
        async with app.run_test(size=(70, 32)) as pilot:
            live, fresh = app.query_one("#live", VimTable), app.query_one("#fresh", VimTable)
            live.fill(COLUMNS, rows({3: "step 40 · loss 2.31"}))
            await pilot.pause()
            count = live._update_count
            # row 5's rendered line, as the next frame would take it from the cache
            five = next(k for k in live._row_render_cache.keys() if k[0].value == "5")
            kept = live._row_render_cache.get(five)
            assert kept is not None

            # a narrower cell, then a new state: the column keeps its width
            after = rows({3: "step 45 · loss 2.3", 4: "starting"})
            live.fill(COLUMNS, after)
            fresh.fill(COLUMNS, after)
            await pilot.pause()
            assert live._update_count == count  # no change of the whole table
            assert live._row_render_cache.get(five) is kept  # not rendered again
            assert [s.rstrip() for s in lines(live)] == [s.rstrip() for s in lines(fresh)]
            assert "step 45 · loss 2.3" in "\n".join(lines(live))
            assert "starting" in "\n".join(lines(live))

            # a wider cell widens its column: every line is put together again, the other
            # columns' cells from their renders, and the table reads as a fresh one
            number = next(k for k in live._cell_render_cache.keys()
                          if k[0].value == "5" and k[1].value == "number")
            rendered = live._cell_render_cache.get(number)
            wider = rows({3: "step 1000 · ep 2.50 · loss 2.29", 4: "starting"})
            live.fill(COLUMNS, wider)
            fresh.clear(columns=True)
            fresh._shape = ((), ())
            fresh.fill(COLUMNS, wider)
            await pilot.pause()
            assert live._update_count == count
            assert live._cell_render_cache.get(number) is rendered
            assert lines(live) == lines(fresh)
            assert live.virtual_size == fresh.virtual_size
            assert "step 1000 · ep 2.50 · loss 2.29" in "\n".join(lines(live))

    asyncio.run(run())
