"""Line and scatter plots in the terminal (plotext through textual-plotext).

Each series gets its own marker as well as its own colour, so a plot still reads in a
monochrome terminal. The legend is a line of text under the plot, never inside it (plotext
draws its own over the data, in the corner where a loss curve starts), and the axes are padded
so that a point at the end of the range sits off the axis line, where it can be seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region
from textual.widgets import Static
from textual_plotext import PlotextPlot

MARKERS = ("braille", "x", "o", "+", "*", "#", "@", "%")
# a single point drawn with braille is one dot: it takes the first of these free
POINT_MARKERS = ("o", "+", "*", "#", "@", "%", "x")
# (plotext's colour, rich's name for it): the same colour in the plot and in its legend
COLORS = (("cyan", "cyan"), ("magenta", "magenta"), ("green", "green"), ("yellow", "yellow"),
          ("blue", "blue"), ("red", "red"), ("white", "white"))
REFERENCE_COLOR = ("gray", "grey50")
PAD_CELLS = 1.5  # cells of room between the data and each axis


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    marker: str | None = None
    lines: bool = True
    reference: bool = False  # a reference line (the baseline): drawn under the data


class _Canvas(PlotextPlot):
    """The plotting area of a LinePlot: drawn from what the LinePlot holds, at its own size."""

    def render(self):  # noqa: ANN201 - textual's RenderResult
        plot = self.parent
        assert isinstance(plot, LinePlot)
        plot.draw(self)  # clear_figure resets the size: draw again at the widget's size
        return super().render()


class LinePlot(Vertical):
    """A plot redrawn from a list of series; `show()` replaces what is drawn. The legend is the
    line under it."""

    DEFAULT_CSS = """
    LinePlot { height: 1fr; }
    LinePlot > _Canvas { height: 1fr; }
    LinePlot > .legend { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._series: list[Series] = []
        self._title = ""
        self._xlabel = ""
        self._ylabel = ""
        self.log_x = False
        self.log_y = False
        self._xticks: tuple[Sequence[float], Sequence[str]] | None = None
        self.limits: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1 as drawn
        self.empty_text = "nothing to plot yet"

    def compose(self) -> ComposeResult:
        yield _Canvas()
        yield Static("", classes="legend")

    def show(self, series: Sequence[Series], title: str = "", xlabel: str = "", ylabel: str = "",
             xlog: bool = False, ylog: bool = False,
             xticks: tuple[Sequence[float], Sequence[str]] | None = None) -> None:
        self._series = [s for s in series if len(s.xs)]
        self._title, self._xlabel, self._ylabel = title, xlabel, ylabel
        self.log_x, self.log_y, self._xticks = xlog, ylog, xticks
        self.query_one(_Canvas).refresh()
        self.query_one(".legend", Static).update(self.legend())

    @property
    def series(self) -> list[Series]:
        return list(self._series)

    @property
    def canvas_region(self) -> Region:
        return self.query_one(_Canvas).region

    def marker_of(self, series: Series) -> str:
        index = self._series.index(series)
        marker = series.marker or MARKERS[index % len(MARKERS)]
        if marker == "braille" and len(series.xs) == 1:
            taken = {s.marker or MARKERS[i % len(MARKERS)] for i, s in enumerate(self._series)}
            marker = next((m for m in POINT_MARKERS if m not in taken), "o")
        return marker

    def _color(self, series: Series) -> tuple[str, str]:
        if series.reference:
            return REFERENCE_COLOR
        data = [s for s in self._series if not s.reference]
        return COLORS[data.index(series) % len(COLORS)]

    def legend(self) -> Text:
        """`⣀⣀ train loss   x validation loss   ── baseline`: marker, colour, label."""
        text = Text()
        for series in self._series:
            marker = self.marker_of(series)
            glyph = "──" if series.reference else "⣀⣀" if marker == "braille" else marker
            if text:
                text.append("   ")
            text.append(glyph, style=f"bold {self._color(series)[1]}")
            text.append(f" {series.label}")
        return text

    def draw(self, canvas: PlotextPlot) -> None:
        plt = canvas.plt
        plt.clear_figure()
        plt.title(self._title or (self.empty_text if not self._series else ""))
        plt.xlabel(self._xlabel)
        plt.ylabel(self._ylabel)
        if not self._series:
            self.limits = None
            return
        # reference lines first: the data is drawn over them
        for series in sorted(self._series, key=lambda s: not s.reference):
            marker, color = self.marker_of(series), self._color(series)[0]
            if series.lines and len(series.xs) > 1:
                plt.plot(list(series.xs), list(series.ys), marker=marker, color=color)
            else:
                plt.scatter(list(series.xs), list(series.ys), marker=marker, color=color)
        # the plotting area: the canvas less the axes' labels and ticks, the title, the label
        width, height = canvas.size.width - 8, canvas.size.height - 5
        xs = [x for s in self._series for x in s.xs]
        # categories (ticks given) sit in the middle of their own slot
        x0, x1 = (min(xs) - 0.5, max(xs) + 0.5) if self._xticks else _padded(xs, self.log_x,
                                                                              width)
        y0, y1 = _padded([y for s in self._series for y in s.ys], self.log_y, height)
        self.limits = (x0, x1, y0, y1)
        # on a log axis plotext takes its limits as powers of ten
        plt.xlim(*((math.log10(x0), math.log10(x1)) if self.log_x else (x0, x1)))
        plt.ylim(*((math.log10(y0), math.log10(y1)) if self.log_y else (y0, y1)))
        if self.log_x:
            plt.xscale("log")
        else:  # round numbers inside the padded range, not its ends (44.9, 722.1)
            at, labels = self._xticks or _ticks(x0, x1, max(2, width // 10))
            plt.xticks(list(at), list(labels))
        if self.log_y:
            plt.yscale("log")
        else:
            plt.yticks(*_ticks(y0, y1, max(2, height // 2)))


def _ticks(low: float, high: float, most: int) -> tuple[list[float], list[str]]:
    """At most `most` round values (1, 2 or 5 times a power of ten apart) in [low, high], and
    their labels."""
    span = high - low
    if span <= 0 or not math.isfinite(span):
        return [low], [f"{low:g}"]
    step = 10 ** math.floor(math.log10(span / most))
    step = next(step * k for k in (1, 2, 5, 10) if span / (step * k) <= most)
    first = math.ceil(low / step) * step
    values = [first + i * step for i in range(int((high - first) / step) + 1)]
    digits = max(0, -math.floor(math.log10(step)))
    return values, [f"{v:.{digits}f}" for v in values]


def _padded(values: list[float], log: bool, cells: int) -> tuple[float, float]:
    """The range of `values` widened by PAD_CELLS cells of `cells` each side (in log space on
    a log axis); a single value gets a range around it."""
    if log:
        values = [math.log10(v) for v in values if v > 0] or [0.0]
    low, high = min(values), max(values)
    span = high - low or (abs(high) * 0.1 or 1.0)
    pad = span * PAD_CELLS / max(cells - 2 * PAD_CELLS, 4)
    low, high = low - pad, high + pad
    return (10 ** low, 10 ** high) if log else (low, high)
