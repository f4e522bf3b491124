"""What the metric panels share: the base that reads the one state's run histories and redraws
when they change, one run's plot items, and the curve helpers.

The histories live in :attr:`AppState.histories <rnnviz.gui.state.app_state.AppState>`, one
per run, truncated there on a rollback; a panel keeps only its plot items, created once per run
and updated with ``setData``, and draws when the window's redraw scheduler calls ``redraw()``
and something it shows changed.

Log-scale plots never receive NaN, inf or values <= 0 (pyqtgraph would drop the whole curve
or warn): such steps are masked out of the curve and marked with a red ``x`` at the top of
the data instead, so a divergence is visible rather than a blank plot.

A plot's context-menu export goes through ``gui.exports.guard_exports``.

Not a panel: the panels' modules import it. All methods run in the GUI thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem, QWidget

from rnnviz.core.history import MetricHistory
from rnnviz.gui.plotting import style_plot
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.theme import run_colour

# what an empty training plot says: how to start, or, for a model opened from a file, why
# nothing will come
EMPTY_HINT = "no steps yet: press ▶ Play (Space) or Step (→)"
READ_ONLY_HINT = "an opened model: nothing trains it here (Reset trains a new one)"


def empty_hint(state: AppState) -> str:
    return READ_ONLY_HINT if state.read_only else EMPTY_HINT


NONFINITE_COLOUR = "#e31a1c"
LEFT_AXIS_WIDTH = 72  # equal on stacked plots, so their x axes line up


def positive_finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points a log-y plot can draw (finite and > 0)."""
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    return np.asarray(x, dtype=np.float64)[keep], y[keep]


def finite_top(*arrays: np.ndarray) -> float:
    """The largest finite positive value of the arrays (1.0 if none): where markers go."""
    tops = [
        float(a[np.isfinite(a) & (a > 0)].max()) for a in arrays if np.any(np.isfinite(a) & (a > 0))
    ]
    return max(tops) if tops else 1.0


def legend_entry(plot: pg.PlotItem, item: pg.PlotDataItem, name: str, show: bool) -> None:
    """Name ``item`` in the plot's legend only while it has something to show."""
    legend = plot.legend
    if legend is None:
        return
    listed = any(sample.item is item for sample, _ in legend.items)
    if show and not listed:
        legend.addItem(item, name)
    elif listed and not show:
        legend.removeItem(item)


def style_metric_plot(plot: pg.PlotItem, left: str | tuple[str, str], bottom: str | None) -> None:
    """``left``: the axis's name, or (name, short name) where a small screen or a large
    font can make the plot shorter than the name (see plotting.label_axis)."""
    if bottom:
        style_plot(plot, left=left, bottom=bottom)
    else:
        style_plot(plot, left=left)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMouseEnabled(x=True, y=True)
    for name in ("left", "bottom"):
        # "(x0.001)" next to a log axis reads as part of the name; plain numbers instead
        plot.getAxis(name).enableAutoSIPrefix(False)
    plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)


def cache_step_axes(*plots: pg.PlotItem) -> None:
    """Keep each step axis's drawing in a pixmap until its range changes (see x_range_top)."""
    for plot in plots:
        plot.getAxis("bottom").setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def curve(
    colour: str,
    width: float = 2.0,
    style: Qt.PenStyle = Qt.PenStyle.SolidLine,
    name: str | None = None,
) -> pg.PlotDataItem:
    item = pg.PlotDataItem(pen=pg.mkPen(colour, width=width, style=style), name=name)
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)
    # the data is sanitised before setData: no NaN/inf ever reaches the item
    item.setSkipFiniteCheck(True)
    return item


def markers(symbol: str, colour: str, size: int = 9, name: str | None = None) -> pg.PlotDataItem:
    return pg.PlotDataItem(
        pen=None,
        symbol=symbol,
        symbolSize=size,
        symbolPen=pg.mkPen(colour, width=2),
        symbolBrush=pg.mkBrush(colour),
        name=name,
    )


def mark_nonfinite(
    plot: pg.PlotItem,
    item: pg.PlotDataItem,
    steps: np.ndarray,
    bad: np.ndarray,
    *arrays: np.ndarray,
) -> None:
    """Red crosses at the non-finite steps, at the top of the finite data of ``arrays``."""
    legend_entry(plot, item, "non-finite step (skipped)", bool(bad.any()))
    if bad.any():
        top = finite_top(*arrays)
        item.setData(steps[bad].astype(np.float64), np.full(int(bad.sum()), top))
    else:
        item.setData([], [])


def x_range_top(last_step: int) -> int:
    """The smallest of 10, 15, 20, 30, 40, 50, 70, 100, 150, ... that leaves 5 % room after
    ``last_step``: the axis changes rarely, and the curve fills at least ~2/3 of the width."""
    need = max(10.0, last_step * 1.05)
    scale = 10 ** math.floor(math.log10(need))
    for mantissa in (1, 1.5, 2, 3, 4, 5, 7, 10):
        if mantissa * scale >= need:
            return int(mantissa * scale)
    return int(10 * scale)  # pragma: no cover - the loop always returns


class RunItems:
    """One run's plot items; each remembers its plot so the run can be removed.

    ``suffix`` is the run's name as the items' legend entries carry it: a run whose name
    changes (the main run becomes "main" once a compare run appears) gets new items.
    """

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self._placed: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []

    def place(self, plot: pg.PlotItem, *items: pg.GraphicsObject) -> None:
        for item in items:
            plot.addItem(item)
            self._placed.append((plot, item))

    def remove(self) -> None:
        for plot, item in self._placed:
            plot.removeItem(item)  # also takes it out of the plot's legend
        self._placed.clear()


class MetricPanel(QWidget):
    """The runs' metric histories of the state, drawn when they (or what else a panel shows)
    changed since the last draw."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._items: dict[int, Any] = {}  # run_id -> that run's RunItems (a subclass's)
        self._drawn: object = None  # the _draw_key() of what is on screen
        self._layout_drawn = -1  # the histories' layout_version the items were made for
        self._x_top = -1  # the step axis's current top (see _grow_x_range)

    @property
    def state(self) -> AppState:
        return self._state

    def run_ids(self) -> list[int]:
        """The runs that have a history (0 is the main run)."""
        return self._state.histories.run_ids()

    def last_step(self, run_id: int = MAIN_RUN) -> int | None:
        """The newest step recorded for a run (None: none yet)."""
        return self._state.histories.last_step(run_id)

    def history(self, run_id: int = MAIN_RUN) -> MetricHistory | None:
        """The run's metric history in the state (None: the run has none); read only."""
        histories = self._state.histories
        # never histories.run(): it would add an empty history, a change the panels redraw on
        return histories.metrics(run_id) if histories.has(run_id) else None

    def run_name(self, run_id: int) -> str:
        return self._state.run_name(run_id)

    @property
    def dirty(self) -> bool:
        """Whether the next redraw() would draw."""
        return self._draw_key() != self._drawn

    def redraw(self) -> bool:
        """Draw if something shown changed since the last draw; True if it drew."""
        key = self._draw_key()
        if key == self._drawn:
            return False
        self._drawn = key
        histories = self._state.histories
        ids = histories.run_ids()
        if histories.layout_version != self._layout_drawn:
            # runs came or went (a new main run clears them all): the items of the runs gone
            # go, and the step axis is set again
            self._layout_drawn = histories.layout_version
            self._x_top = -1
            for run_id in [r for r in self._items if r not in ids]:
                self._remove_run_items(run_id)
        has_data = False
        for run_id in ids:
            metrics = histories.metrics(run_id)
            has_data = has_data or len(metrics) > 0
            self._draw_run(run_id, metrics.columns())
        self._after_draw(has_data)
        self._grow_x_range()
        return True

    def _draw_key(self) -> tuple[object, ...]:
        """What the drawing depends on: the histories, the runs' names, whether the main run
        is an opened model (the empty plots say so), a subclass's own."""
        histories = self._state.histories
        names = tuple(self._legend_suffix(r) for r in histories.run_ids())
        return (histories.version(), names, self._state.read_only, *self._own_key())

    def _own_key(self) -> tuple[object, ...]:
        """Hook: what else a subclass draws from (θ, the parameters shown)."""
        return ()

    def _drawn_runs(self) -> list[int]:
        """The runs with at least one step."""
        histories = self._state.histories
        return [r for r in histories.run_ids() if len(histories.metrics(r))]

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        """Hook: the plots whose x axis is the optimizer step."""
        return []

    def _grow_x_range(self) -> None:
        """The step axis grows in steps of x_range_top, not with every new step: an axis whose range
        did not change keeps its cached drawing, and redrawing axes is most of a paint."""
        histories = self._state.histories
        last = max((histories.last_step(r) or 0 for r in histories.run_ids()), default=0)
        top = x_range_top(last)
        if top == self._x_top:
            return
        self._x_top = top
        for plot in self._step_axis_plots():
            plot.enableAutoRange(x=False)
            plot.setXRange(0, top, padding=0.02)

    def _after_draw(self, has_data: bool) -> None:
        """Hook: adjust hints and legends once the runs are drawn."""

    def curve_items(self, run_id: int = MAIN_RUN) -> Any:
        """The plot items of one run (tests read their data); empty ones for a new run."""
        return self._items_for(run_id)

    def _legend_suffix(self, run_id: int) -> str:
        """`` (name)`` after a curve's legend name; none while the main run is alone."""
        label = self._state.legend_label(run_id)
        if not label and run_id != MAIN_RUN:
            label = self._state.run_name(run_id)
        return f" ({label})" if label else ""

    def _items_for(self, run_id: int) -> Any:
        suffix = self._legend_suffix(run_id)
        items = self._items.get(run_id)
        if items is not None and items.suffix != suffix:
            self._remove_run_items(run_id)  # renamed: new items with the new legend names
            items = None
        if items is None:
            items = self._make_items(run_colour(run_id), suffix)
            self._items[run_id] = items
        return items

    def _remove_run_items(self, run_id: int) -> None:
        items = self._items.pop(run_id, None)
        if items is not None:
            items.remove()

    # subclasses
    def _make_items(self, colour: str, suffix: str) -> RunItems:
        raise NotImplementedError

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


# ------------------------------------------------------------------------- export
