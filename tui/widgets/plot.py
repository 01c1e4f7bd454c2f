"""Line and scatter plots in the terminal (plotext through textual-plotext).

Each series gets its own marker as well as its own colour, so a plot still reads in a
monochrome terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual_plotext import PlotextPlot

MARKERS = ("braille", "x", "o", "+", "*", "#", "@", "%")


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    marker: str | None = None
    lines: bool = True


class LinePlot(PlotextPlot):
    """A plot redrawn from a list of series; `show()` replaces what is drawn."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._series: list[Series] = []
        self._title = ""
        self._xlabel = ""
        self._ylabel = ""
        self._xlog = False
        self._ylog = False
        self._xticks: tuple[Sequence[float], Sequence[str]] | None = None
        self.empty_text = "nothing to plot yet"

    def show(self, series: Sequence[Series], title: str = "", xlabel: str = "", ylabel: str = "",
             xlog: bool = False, ylog: bool = False,
             xticks: tuple[Sequence[float], Sequence[str]] | None = None) -> None:
        self._series = [s for s in series if len(s.xs)]
        self._title, self._xlabel, self._ylabel = title, xlabel, ylabel
        self._xlog, self._ylog, self._xticks = xlog, ylog, xticks
        self._draw()
        self.refresh()

    @property
    def series(self) -> list[Series]:
        return list(self._series)

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(self._title or (self.empty_text if not self._series else ""))
        plt.xlabel(self._xlabel)
        plt.ylabel(self._ylabel)
        for i, s in enumerate(self._series):
            marker = s.marker or MARKERS[i % len(MARKERS)]
            if s.lines:
                plt.plot(list(s.xs), list(s.ys), label=s.label, marker=marker)
            else:
                plt.scatter(list(s.xs), list(s.ys), label=s.label, marker=marker)
        if self._xlog and self._series:
            plt.xscale("log")
        if self._ylog and self._series:
            plt.yscale("log")
        if self._xticks:
            plt.xticks(list(self._xticks[0]), list(self._xticks[1]))

    def render(self):  # noqa: ANN201 - textual's RenderResult
        self._draw()  # clear_figure resets the size; draw again at the widget's size
        return super().render()
