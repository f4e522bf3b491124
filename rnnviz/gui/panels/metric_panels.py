"""Live metric plots: training curves and gradient norms.

Both panels take batches of :class:`~rnnviz.core.messages.StepRecord` (``append``), keep them in
bounded buffers (:class:`rnnviz.core.history.MetricHistory`: a recent ring plus a thinned
whole-run tier) and draw only when the main window's redraw timer calls ``redraw()`` and
something changed. Plot items are created once per run and updated with ``setData``.

Log-scale plots never receive NaN, inf or values <= 0 (pyqtgraph would drop the whole curve
or warn): such steps are masked out of the curve and marked with a red ``x`` at the top of
the data instead, so a divergence is visible rather than a blank plot.

All methods run in the GUI thread.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.history import PARAM_PREFIX, MetricHistory
from rnnviz.core.messages import StepRecord
from rnnviz.gui import theme
from rnnviz.gui.theme import (
    BASE_POINT_SIZE,
    PLOT_BACKGROUND,
    RUN_COLOURS,
    SteadyLabel,
    plain_number,
    style_plot,
)

D2L_REFERENCE_PPL = 7.3
D2L_REFERENCE_LABEL = "d2l (Time Machine) ≈ 7.3"
CLIP_RATE_WINDOW = 100
EMPTY_HINT = "no steps yet: press ▶ Play (Space) or Step (→)"
NONFINITE_COLOUR = "#e31a1c"
CLIP_MARKER_COLOUR = "#ff9900"
THETA_COLOUR = "#d62728"
REFERENCE_COLOUR = "#555555"
AFTER_CLIP_DARKER = 160  # the after-clipping curve: the run colour, darker
SPEED_SCALE = 1000.0  # the tokens/s plot is in thousands
LEFT_AXIS_WIDTH = 72  # equal on stacked plots, so their x axes line up
# per-parameter curves: ColorBrewer Dark2, readable as check-box text on a grey panel
PARAM_COLOURS = ("#1B9E77", "#D95F02", "#7570B3", "#E7298A", "#66A61E", "#A6761D", "#666666")


def run_colour(run_id: int) -> str:
    return RUN_COLOURS[run_id % len(RUN_COLOURS)]


def positive_finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points a log-y plot can draw (finite and > 0)."""
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    return np.asarray(x, dtype=np.float64)[keep], y[keep]


def _finite_top(*arrays: np.ndarray) -> float:
    """The largest finite positive value of the arrays (1.0 if none): where markers go."""
    tops = [
        float(a[np.isfinite(a) & (a > 0)].max()) for a in arrays if np.any(np.isfinite(a) & (a > 0))
    ]
    return max(tops) if tops else 1.0


class LogAxis(pg.AxisItem):
    """A log axis labelled with plain numbers (20, 10, 9) instead of 2·10¹, 10¹, 9·10⁰.

    Minor ticks (2..9 × 10^k) keep their label only where it does not run into another
    label: pyqtgraph would otherwise print 10, 9 and 8 on top of each other.
    """

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not values:
            return []
        numbers = [10.0 ** float(v) * scale for v in values]
        strings = [_plain_number(x) for x in numbers]
        if spacing is not None:  # a major level (whole decades): every label fits
            return strings
        lo, hi = self.range
        horizontal = self.orientation in ("top", "bottom")
        pixels = max(self.size().width() if horizontal else self.size().height(), 1.0)
        gap = BASE_POINT_SIZE * 1.6 * max(hi - lo, 1e-12) / pixels  # a label, in log10 units
        # whole decades first, then 2 and 5, then the rest: each kept only if it has room
        order = sorted(range(len(values)), key=lambda i: (_mantissa_rank(numbers[i]), values[i]))
        kept: list[float] = []
        labels = [""] * len(values)
        for i in order:
            if all(abs(values[i] - k) >= gap for k in kept):
                kept.append(values[i])
                labels[i] = strings[i]
        return labels


def _mantissa_rank(x: float) -> int:
    mantissa = round(x / 10.0 ** math.floor(math.log10(x)), 3) if x > 0 else 0.0
    return {1.0: 0, 2.0: 1, 5.0: 1}.get(mantissa, 2)


def _plain_number(x: float) -> str:
    """A log-axis tick label (empty for 0 and non-finite ticks)."""
    if x == 0 or not math.isfinite(x):
        return ""
    return plain_number(x)


def _legend_entry(plot: pg.PlotItem, item: pg.PlotDataItem, name: str, show: bool) -> None:
    """Name ``item`` in the plot's legend only while it has something to show."""
    legend = plot.legend
    if legend is None:
        return
    listed = any(sample.item is item for sample, _ in legend.items)
    if show and not listed:
        legend.addItem(item, name)
    elif listed and not show:
        legend.removeItem(item)


def _ratio_text(ratio: float) -> str:
    return plain_number(ratio) if math.isfinite(ratio) else "non-finite"


def _grad_key_html() -> str:
    """The gradient plot's key: line styles (colours are the runs', as in the curves' legend)."""
    c = RUN_COLOURS[0]
    after = QColor(c).darker(AFTER_CLIP_DARKER).name()
    return (
        f"<span style='color:{c}'>━━</span> ‖g‖ before clipping &nbsp; "
        f"<span style='color:{after}'>╍╍</span> after clipping &nbsp; "
        f"<span style='color:{CLIP_MARKER_COLOUR}'>▲</span> clipping engaged &nbsp; "
        f"<span style='color:{THETA_COLOUR}'>╍╍</span> θ &nbsp; "
        f"<span style='color:{NONFINITE_COLOUR}'>✕</span> non-finite step"
    )


def _style_plot(plot: pg.PlotItem, left: str, bottom: str | None) -> None:
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


def _curve(
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


def _markers(symbol: str, colour: str, size: int = 9, name: str | None = None) -> pg.PlotDataItem:
    return pg.PlotDataItem(
        pen=None,
        symbol=symbol,
        symbolSize=size,
        symbolPen=pg.mkPen(colour, width=2),
        symbolBrush=pg.mkBrush(colour),
        name=name,
    )


def _mark_nonfinite(
    plot: pg.PlotItem,
    item: pg.PlotDataItem,
    steps: np.ndarray,
    bad: np.ndarray,
    *arrays: np.ndarray,
) -> None:
    """Red crosses at the non-finite steps, at the top of the finite data of ``arrays``."""
    _legend_entry(plot, item, "non-finite step (skipped)", bool(bad.any()))
    if bad.any():
        top = _finite_top(*arrays)
        item.setData(steps[bad].astype(np.float64), np.full(int(bad.sum()), top))
    else:
        item.setData([], [])


class _RunItems:
    """One run's plot items; each remembers its plot so the run can be removed."""

    def __init__(self) -> None:
        self._placed: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []

    def place(self, plot: pg.PlotItem, *items: pg.GraphicsObject) -> None:
        for item in items:
            plot.addItem(item)
            self._placed.append((plot, item))

    def remove(self) -> None:
        for plot, item in self._placed:
            plot.removeItem(item)  # also takes it out of the plot's legend
        self._placed.clear()


def x_range_top(last_step: int) -> int:
    """The smallest of 10, 15, 20, 30, 40, 50, 70, 100, 150, ... that leaves 5 % room after
    ``last_step``: the axis changes rarely, and the curve fills at least ~2/3 of the width."""
    need = max(10.0, last_step * 1.05)
    scale = 10 ** math.floor(math.log10(need))
    for mantissa in (1, 1.5, 2, 3, 4, 5, 7, 10):
        if mantissa * scale >= need:
            return int(mantissa * scale)
    return int(10 * scale)  # pragma: no cover - the loop always returns


class _MetricPanel(QWidget):
    """Histories per run, a dirty flag, and the append / clear / redraw protocol."""

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent)
        self._capacity = capacity
        self._histories: dict[int, MetricHistory] = {}
        self._items: dict[int, Any] = {}  # run_id -> that run's plot items
        self._labels: dict[int, str] = {}
        self._dirty = False
        self._x_top = -1  # the step axis's current top (see _grow_x_range)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def history(self, run_id: int = 0) -> MetricHistory:
        if run_id not in self._histories:
            self._histories[run_id] = MetricHistory(capacity=self._capacity)
        return self._histories[run_id]

    def run_ids(self) -> list[int]:
        return sorted(self._histories)

    def append(self, records: Sequence[StepRecord], run_id: int = 0) -> None:
        if not records:
            return
        # a step that goes back (after a rollback): the abandoned continuation goes
        self.truncate_after(run_id, int(records[0].step) - 1)
        self.history(run_id).append(records)
        self._dirty = True

    def clear(self, run_id: int | None = None) -> None:
        """Forget every run's data (``run_id`` None) or one run's."""
        ids = list(self._histories) if run_id is None else [run_id]
        for rid in ids:
            self._histories.pop(rid, None)
            self._remove_run_items(rid)
        self._x_top = -1
        self._dirty = True

    def redraw(self) -> bool:
        """Draw if something changed since the last draw; True if it drew."""
        if not self._dirty:
            return False
        self._dirty = False
        for run_id, hist in self._histories.items():
            self._draw_run(run_id, hist.columns(), hist)
        self._after_draw(any(len(h) for h in self._histories.values()))
        self._grow_x_range()
        return True

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        """Hook: the plots whose x axis is the optimizer step."""
        return []

    def _grow_x_range(self) -> None:
        """The step axis grows in steps of x_range_top, not with every new step: an axis whose range
        did not change keeps its cached drawing, and redrawing axes is most of a paint."""
        last = max((self.last_step(r) or 0 for r in self._histories), default=0)
        top = x_range_top(last)
        if top == self._x_top:
            return
        self._x_top = top
        for plot in self._step_axis_plots():
            plot.enableAutoRange(x=False)
            plot.setXRange(0, top, padding=0.02)

    def _after_draw(self, has_data: bool) -> None:
        """Hook: adjust hints and legends once the runs are drawn."""

    def set_run_label(self, run_id: int, label: str) -> None:
        """Name a run in the legend (runs after the first need one to be told apart).

        A run whose name changes (the main run becomes "main" once a compare run appears)
        gets new plot items, named anew, at the next redraw.
        """
        if self._labels.get(run_id, "") == label:
            return
        self._labels[run_id] = label
        if run_id in self._items:
            self._remove_run_items(run_id)
            self._dirty = True

    def run_label(self, run_id: int) -> str:
        return self._labels.get(run_id, "")

    def last_step(self, run_id: int = 0) -> int | None:
        """The newest step recorded for a run (None: none yet)."""
        hist = self._histories.get(run_id)
        if hist is None:
            return None
        steps = hist.recent(1).get("step", ())
        return int(steps[-1]) if len(steps) else None

    def truncate_after(self, run_id: int, step: int) -> None:
        """Forget a run's steps after ``step`` (a rollback abandoned them)."""
        last = self.last_step(run_id)
        if last is not None and last > step:
            self._histories[run_id].truncate_after(step)
            self._dirty = True

    def curve_items(self, run_id: int = 0) -> Any:
        """The plot items of one run (tests read their data); empty ones for a new run."""
        return self._items_for(run_id)

    def _run_suffix(self, run_id: int) -> str:
        label = self._labels.get(run_id) or ("" if run_id == 0 else f"run {run_id}")
        return f" ({label})" if label else ""

    def _items_for(self, run_id: int) -> Any:
        items = self._items.get(run_id)
        if items is None:
            items = self._make_items(run_colour(run_id), self._run_suffix(run_id))
            self._items[run_id] = items
        return items

    def _remove_run_items(self, run_id: int) -> None:
        items = self._items.pop(run_id, None)
        if items is not None:
            items.remove()

    # subclasses
    def _make_items(self, colour: str, suffix: str) -> _RunItems:
        raise NotImplementedError

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray], hist: MetricHistory) -> None:
        raise NotImplementedError


class _TrainingRunItems(_RunItems):
    def __init__(
        self, ppl_plot: pg.PlotItem, speed_plot: pg.PlotItem, colour: str, label: str
    ) -> None:
        super().__init__()
        self.train = _curve(colour, 2.0, name=f"train{label}")
        self.val = pg.PlotDataItem(
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DotLine),
            symbol="o",
            symbolSize=8,
            symbolBrush=pg.mkBrush("w"),
            symbolPen=pg.mkPen(colour, width=2),
            name=f"validation{label}",
        )
        self.nonfinite = _markers("x", NONFINITE_COLOUR, 11)
        self.speed = _curve(colour, 1.5)
        self.place(ppl_plot, self.train, self.val, self.nonfinite)
        self.place(speed_plot, self.speed)


def _cache_step_axes(*plots: pg.PlotItem) -> None:
    """Keep each step axis's drawing in a pixmap until its range changes (see x_range_top)."""
    for plot in plots:
        plot.getAxis("bottom").setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class TrainingCurvesPanel(_MetricPanel):
    """Train perplexity per step, validation points, tokens/s, and the d2l reference line."""

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        return [self.ppl_plot]  # the tokens/s plot is x-linked to it

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent, capacity)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(PLOT_BACKGROUND)
        self.ppl_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=0, col=0, axisItems={"left": LogAxis("left")}
        )
        self.ppl_plot.setLogMode(x=False, y=True)
        _style_plot(self.ppl_plot, "perplexity", None)
        # a key above the plot, not a legend box over the curves: with two runs a box would
        # cover half of a short plot. Runs by colour and name, line styles once.
        self.key_label = QLabel()
        self.key_label.setObjectName("curves_key_label")
        self.key_label.setTextFormat(Qt.TextFormat.RichText)
        self._nonfinite_runs: set[int] = set()
        self.speed_plot: pg.PlotItem = self.plot_widget.addPlot(row=1, col=0)
        _style_plot(self.speed_plot, "10³ tok/s", "optimizer step")
        self.speed_plot.setXLink(self.ppl_plot)
        _cache_step_axes(self.ppl_plot, self.speed_plot)
        # the x axis is shared with the tokens/s plot right below, which carries its name
        self.plot_widget.ci.layout.setRowStretchFactor(0, 4)
        self.plot_widget.ci.layout.setRowStretchFactor(1, 1)

        # InfiniteLine knows nothing of log mode: its position is in view units (log10)
        self.reference_line = pg.InfiniteLine(
            pos=math.log10(D2L_REFERENCE_PPL),
            angle=0,
            pen=pg.mkPen(REFERENCE_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
            label=D2L_REFERENCE_LABEL,
            labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)], "color": REFERENCE_COLOUR},
        )
        self.reference_line.setZValue(-10)
        # in the bounds: the view reaches down to the target the class is aiming for
        self.ppl_plot.addItem(self.reference_line)

        self.reference_check = QCheckBox("d2l reference line")
        self.reference_check.setChecked(True)
        self.reference_check.setToolTip(
            "Show the perplexity the d2l.ai chapter reaches on The Time Machine (≈ 7.3)"
        )
        self.reference_check.toggled.connect(self._on_reference_toggled)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.key_label)
        layout.addWidget(self.plot_widget, 1)
        row = QHBoxLayout()
        row.addWidget(self.reference_check)
        row.addStretch(1)
        layout.addLayout(row)
        self._after_draw(False)

    def _after_draw(self, has_data: bool) -> None:
        # before the first step: say how to start, where the key goes (a plot title took
        # height from both plots, and the speed plot's axis label then ran into the other's)
        hint = f"<span style='color:#555; font-size:12pt'>{html.escape(EMPTY_HINT)}</span>"
        self.key_label.setText(self._key_html() if has_data else hint)
        if theme.changed(self.speed_plot, "has_data", has_data):
            # the empty speed plot spans 0..1 in a short row: pyqtgraph labelled every 0.2,
            # four crammed labels on the first screen a class sees; 0 and 1 until data comes
            axis = self.speed_plot.getAxis("left")
            axis.setTickSpacing(*(() if has_data else (1.0, 1.0)))

    def key_run_names(self) -> list[str]:
        """The runs the key names (empty while only one run is drawn: it needs no name)."""
        runs = self._drawn_runs()
        return [self._run_name(rid) for rid in runs] if len(runs) > 1 else []

    def _drawn_runs(self) -> list[int]:
        return [rid for rid in self.run_ids() if len(self._histories[rid])]

    def _run_name(self, run_id: int) -> str:
        return self._labels.get(run_id) or ("main" if run_id == 0 else f"run {run_id}")

    def _key_html(self) -> str:
        runs = self._drawn_runs()
        parts = []
        if len(runs) > 1:
            for rid in runs:
                name = html.escape(self._run_name(rid))
                parts.append(f"<span style='color:{run_colour(rid)}'>━━ <b>{name}</b></span>")
            ink = "#333333"
        else:
            ink = run_colour(runs[0] if runs else 0)
        parts.append(f"<span style='color:{ink}'>━━</span> train")
        parts.append(f"<span style='color:{ink}'>┄○┄</span> validation")
        if self._nonfinite_runs & set(runs):
            parts.append(f"<span style='color:{NONFINITE_COLOUR}'>✕</span> perplexity not finite")
        return " &nbsp; ".join(parts)

    @Slot(bool)
    def _on_reference_toggled(self, on: bool) -> None:
        self.reference_line.setVisible(on)

    def _make_items(self, colour: str, suffix: str) -> _TrainingRunItems:
        return _TrainingRunItems(self.ppl_plot, self.speed_plot, colour, suffix)

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray], hist: MetricHistory) -> None:
        items = self._items_for(run_id)
        steps = cols["step"]
        ppl = cols["ppl"]
        items.train.setData(*positive_finite(steps, ppl))
        val = cols["val_ppl"]
        has_val = np.isfinite(val)
        items.val.setData(*positive_finite(steps[has_val], val[has_val]))
        bad = cols["nonfinite"] | ~np.isfinite(ppl)
        # a skipped step, or a loss so large that exp(loss) overflows
        _mark_nonfinite(self.ppl_plot, items.nonfinite, steps, bad, ppl, val)
        if bad.any():
            self._nonfinite_runs.add(run_id)
        else:
            self._nonfinite_runs.discard(run_id)
        speed = cols["tokens_per_s"]
        ok = np.isfinite(speed)
        # thousands: "3059" fits the axis, "3059000" does not (and SI prefixes are off)
        items.speed.setData(steps[ok].astype(np.float64), speed[ok] / SPEED_SCALE)


class _GradRunItems(_RunItems):
    def __init__(self, plot: pg.PlotItem, colour: str, label: str) -> None:
        super().__init__()
        self.before = _curve(colour, 2.0, name=f"‖g‖ before clip{label}")
        after_colour = QColor(colour).darker(AFTER_CLIP_DARKER).name()
        self.after = _curve(after_colour, 1.5, Qt.PenStyle.DashLine, name=f"‖g‖ after clip{label}")
        # named in the legend only while there are any (see _legend_entry)
        self.clipped = _markers("t1", CLIP_MARKER_COLOUR, 7)
        self.nonfinite = _markers("x", NONFINITE_COLOUR, 11)
        self.params: dict[str, pg.PlotDataItem] = {}
        self.plot = plot
        self.place(plot, self.before, self.after, self.clipped, self.nonfinite)
        # a compare run's own θ, in its colour, where it differs from the main run's
        self.theta_line = pg.InfiniteLine(
            pos=0.0,
            angle=0,
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
            label=f"θ{label}",
            labelOpts={"position": 0.3, "anchors": [(0, 0), (0, 0)], "color": colour},
        )
        self.theta_line.setVisible(False)
        self.place(plot, self.theta_line)
        self.suffix = label

    def param_curve(self, name: str, colour: str) -> pg.PlotDataItem:
        item = self.params.get(name)
        if item is None:
            item = _curve(colour, 1.2, name=f"‖∂L/∂{name}‖")
            self.params[name] = item
            self.place(self.plot, item)
        return item


class GradNormPanel(_MetricPanel):
    """‖g‖ before and after clipping, θ, clip markers and rate, per-parameter norms."""

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        return [self.plot]

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent, capacity)
        self._param_names: list[str] = []
        self._param_checks: dict[str, QCheckBox] = {}
        self._theta: float | None = None
        self._clip_enabled = True
        # θ / clipping the user just chose, not yet in any record (see set_theta)
        self._theta_pending: tuple[float, bool] | None = None

        self.plot_widget = pg.PlotWidget(
            background=PLOT_BACKGROUND, axisItems={"left": LogAxis("left")}
        )
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setLogMode(x=False, y=True)
        _style_plot(self.plot, "gradient norm ‖g‖", "optimizer step")
        _cache_step_axes(self.plot)
        # a key above the plot instead of a legend box over the curves (they fill the plot)
        self.key_label = QLabel(_grad_key_html())
        self.key_label.setObjectName("grad_key_label")
        self.theta_line = pg.InfiniteLine(
            pos=0.0,
            angle=0,
            pen=pg.mkPen(THETA_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
            label="θ = 1",
            # below the line: θ is often the top of the view
            labelOpts={"position": 0.02, "anchors": [(0, 0), (0, 0)], "color": THETA_COLOUR},
        )
        self.theta_line.setVisible(False)
        # in the bounds: how far below (or above) θ the gradients are is the point
        self.plot.addItem(self.theta_line)

        # its text changes at every redraw: a SteadyLabel does not re-lay out the window
        self.stats_label = SteadyLabel("clip rate (last 100 steps): –   ‖g‖/θ: –", shrink=True)
        self.stats_label.setToolTip(
            "Share of the last 100 optimizer steps on which clipping scaled the gradient "
            "down, and the newest ratio of the unclipped gradient norm to θ"
        )
        # the row may be clipped in a narrow dock rather than force the dock (and the
        # window's other docks) wider: its width is ignored by the layout
        checks_box = QWidget()
        checks_box.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._checks_row = QHBoxLayout(checks_box)
        self._checks_row.setContentsMargins(0, 0, 0, 0)
        caption = QLabel("per parameter:")
        caption.setToolTip("Plot the gradient norm of one parameter matrix or bias alone")
        self._checks_row.addWidget(caption)
        self._checks_row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.key_label)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(checks_box)

    # ------------------------------------------------------------ public API

    def set_param_names(self, names: Sequence[str]) -> None:
        """One checkbox per parameter (off by default); called on RunInfo."""
        names = list(names)
        if names == self._param_names:
            return
        for check in self._param_checks.values():
            self._checks_row.removeWidget(check)
            check.deleteLater()
        self._param_checks.clear()
        self._param_names = names
        for i, name in enumerate(names):
            check = QCheckBox(name)
            check.setObjectName(f"param_check_{name}")
            check.setToolTip(f"Plot ‖∂L/∂{name}‖, the gradient norm of {name} alone")
            # the check box is the curve's legend: same colour
            colour = PARAM_COLOURS[i % len(PARAM_COLOURS)]
            check.setStyleSheet(f"QCheckBox {{ color: {colour}; font-weight: bold; }}")
            check.toggled.connect(self._on_param_toggled)
            self._param_checks[name] = check
            self._checks_row.insertWidget(1 + i, check)
        for items in self._items.values():
            for name in list(items.params):
                if name not in names:
                    self.plot.removeItem(items.params.pop(name))
        self._dirty = True

    def param_check(self, name: str) -> QCheckBox:
        return self._param_checks[name]

    def shown_params(self) -> list[str]:
        return [n for n, c in self._param_checks.items() if c.isChecked()]

    def set_theta(self, theta: float, clip_enabled: bool = True, *, pending: bool = False) -> None:
        """Move the θ line now (it also follows the records' clip_theta as they arrive).

        ``pending``: the user's new θ, which no record carries yet. The line moves at once
        and stays, even while records of steps from before the change still arrive.
        """
        self._theta_pending = (float(theta), bool(clip_enabled)) if pending else None
        self._show_theta(theta, clip_enabled)
        self._update_stats()

    def _show_theta(self, theta: float, clip_enabled: bool) -> None:
        self._theta = float(theta)
        self._clip_enabled = bool(clip_enabled)
        if self._theta > 0 and math.isfinite(self._theta):
            self.theta_line.setPos(math.log10(self._theta))
            self.theta_line.label.setFormat(
                f"θ = {self._theta:g}" + ("" if clip_enabled else " (clipping off)")
            )
            self.theta_line.setVisible(True)
        else:
            self.theta_line.setVisible(False)
        pen = self.theta_line.pen
        pen.setStyle(Qt.PenStyle.DashLine if clip_enabled else Qt.PenStyle.DotLine)
        self.theta_line.setPen(pen)

    @property
    def theta(self) -> float | None:
        return self._theta

    @property
    def clip_enabled(self) -> bool:
        return self._clip_enabled

    def clip_stats(self, run_id: int = 0) -> tuple[float | None, float | None]:
        """(clip rate over the last 100 steps, latest ‖g‖ before clip / θ) of a run.

        θ is the run's newest; for the main run, a θ the user has just chosen (the line
        shows it) counts at once.
        """
        if run_id not in self._histories:
            return None, None
        recent = self._histories[run_id].recent(CLIP_RATE_WINDOW)
        if len(recent.get("step", ())) == 0:
            return None, None
        rate = float(np.mean(recent["clipped"]))
        theta = float(recent["clip_theta"][-1])
        if run_id == self._stats_run() and self._theta_pending is not None:
            theta = self._theta_pending[0]
        ratio = float(recent["grad_norm_before_clip"][-1] / theta)
        return rate, ratio

    def run_stats_text(self, run_id: int) -> str:
        """One run's line of the stats: step, clip rate and ‖g‖/θ (plain text)."""
        return self._run_stats(run_id, html=False)

    # ------------------------------------------------------------ drawing

    @Slot(bool)
    def _on_param_toggled(self, _on: bool) -> None:
        self._dirty = True
        self.redraw()

    def redraw(self) -> bool:
        drew = super().redraw()
        if drew:
            self._update_stats()
        return drew

    def _stats_run(self) -> int:
        """The run the θ line speaks of: the main run (or the first one there is)."""
        return 0 if 0 in self._histories or not self._histories else min(self._histories)

    def _update_stats(self) -> None:
        run_id = self._stats_run()
        recent = self._histories[run_id].recent(1) if run_id in self._histories else {}
        if len(recent.get("step", ())):
            theta = float(recent["clip_theta"][-1])
            enabled = bool(recent["clip_enabled"][-1])
            if self._theta_pending is not None:
                if (theta, enabled) == self._theta_pending:
                    self._theta_pending = None  # the records have caught up
            elif theta != self._theta or enabled != self._clip_enabled:
                self._show_theta(theta, enabled)
        runs = [rid for rid in self.run_ids() if len(self._histories[rid])]
        if len(runs) > 1:
            # one line per run, in its colour: which run clips how often, and its step
            self.stats_label.setText("<br>".join(self._run_stats(rid, html=True) for rid in runs))
            return
        rate, ratio = self.clip_stats(run_id)
        if rate is None or ratio is None:
            self.stats_label.setText("clip rate (last 100 steps): –   ‖g‖/θ: –")
            return
        state = "" if self._clip_enabled else "   (clipping off)"
        self.stats_label.setText(
            f"clip rate (last {CLIP_RATE_WINDOW} steps): {rate:.0%}   "
            f"latest ‖g‖/θ: {_ratio_text(ratio)}{state}"
        )

    def _run_stats(self, run_id: int, *, html: bool) -> str:
        recent = self._histories[run_id].recent(1)
        rate, ratio = self.clip_stats(run_id)
        name = self._labels.get(run_id) or ("main" if run_id == 0 else f"run {run_id}")
        if rate is None or ratio is None or not len(recent.get("step", ())):
            body = "no steps yet"
        else:
            step = int(recent["step"][-1])
            enabled = bool(recent["clip_enabled"][-1])
            if run_id == self._stats_run() and self._theta_pending is not None:
                enabled = self._theta_pending[1]
            clip = f"clip rate {rate:.0%}" if enabled else "clipping off"
            body = f"step {step:,}: {clip}, ‖g‖/θ {_ratio_text(ratio)}"
        if not html:
            return f"{name} — {body}"
        colour = run_colour(run_id)
        return f"<span style='color:{colour}'>━━ <b>{name}</b></span> {body}"

    def _make_items(self, colour: str, suffix: str) -> _GradRunItems:
        return _GradRunItems(self.plot, colour, suffix)

    def _draw_run_theta(self, run_id: int, items: _GradRunItems, cols: dict[str, Any]) -> None:
        """A compare run's θ line: shown where its clipping differs from the main run's."""
        theta = cols["clip_theta"]
        if run_id == self._stats_run() or not len(theta):
            items.theta_line.setVisible(False)
            return
        own, enabled = float(theta[-1]), bool(cols["clip_enabled"][-1])
        differs = enabled and (not self._clip_enabled or own != self._theta)
        if differs and own > 0 and math.isfinite(own):
            items.theta_line.setPos(math.log10(own))
            items.theta_line.label.setFormat(f"θ = {own:g}{items.suffix}")
        items.theta_line.setVisible(differs)

    def theta_line_of(self, run_id: int) -> pg.InfiniteLine | None:
        """The θ line of a compare run (None for the main run or a run not drawn yet)."""
        items = self._items.get(run_id)
        return None if items is None or run_id == self._stats_run() else items.theta_line

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray], hist: MetricHistory) -> None:
        items = self._items_for(run_id)
        steps = cols["step"]
        before = cols["grad_norm_before_clip"]
        after = cols["grad_norm_after_clip"]
        items.before.setData(*positive_finite(steps, before))
        items.after.setData(*positive_finite(steps, after))
        clipped = cols["clipped"] & np.isfinite(before) & (before > 0)
        items.clipped.setData(steps[clipped].astype(np.float64), before[clipped])
        _legend_entry(self.plot, items.clipped, "clipping engaged", bool(clipped.any()))
        bad = cols["nonfinite"] | ~np.isfinite(before)
        theta = cols["clip_theta"]  # the θ line is in the view too: crosses go above it
        _mark_nonfinite(self.plot, items.nonfinite, steps, bad, before, after, theta)
        self._draw_run_theta(run_id, items, cols)
        shown = set(self.shown_params())
        for i, name in enumerate(self._param_names):
            column = PARAM_PREFIX + name
            if name in shown and column in cols:
                curve = items.param_curve(name, PARAM_COLOURS[i % len(PARAM_COLOURS)])
                curve.setData(*positive_finite(steps, cols[column]))
                curve.setVisible(True)
            elif name in items.params:
                items.params[name].setVisible(False)
                items.params[name].setData([], [])
