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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.history import PARAM_PREFIX, MetricHistory
from rnnviz.core.messages import StepRecord
from rnnviz.gui.theme import PLOT_BACKGROUND, RUN_COLOURS, style_plot

D2L_REFERENCE_PPL = 7.3
D2L_REFERENCE_LABEL = "d2l (Time Machine) ≈ 7.3"
CLIP_RATE_WINDOW = 100
NONFINITE_COLOUR = "#e31a1c"
# per-parameter curves: colours distinct from the run colours' first entries
PARAM_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#8c564b", "#9467bd", "#2ca02c")


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


def _style_plot(plot: pg.PlotItem, left: str, bottom: str | None) -> None:
    if bottom:
        style_plot(plot, left=left, bottom=bottom)
    else:
        style_plot(plot, left=left)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMouseEnabled(x=True, y=True)


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
    item: pg.PlotDataItem, steps: np.ndarray, bad: np.ndarray, *arrays: np.ndarray
) -> None:
    """Red crosses at the non-finite steps, at the top of the finite data of ``arrays``."""
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


class _MetricPanel(QWidget):
    """Histories per run, a dirty flag, and the append / clear / redraw protocol."""

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent)
        self._capacity = capacity
        self._histories: dict[int, MetricHistory] = {}
        self._items: dict[int, Any] = {}  # run_id -> that run's plot items
        self._labels: dict[int, str] = {}
        self._dirty = False

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
        self.history(run_id).append(records)
        self._dirty = True

    def clear(self, run_id: int | None = None) -> None:
        """Forget every run's data (``run_id`` None) or one run's."""
        ids = list(self._histories) if run_id is None else [run_id]
        for rid in ids:
            self._histories.pop(rid, None)
            self._remove_run_items(rid)
        self._dirty = True

    def redraw(self) -> bool:
        """Draw if something changed since the last draw; True if it drew."""
        if not self._dirty:
            return False
        self._dirty = False
        for run_id, hist in self._histories.items():
            self._draw_run(run_id, hist.columns(), hist)
        return True

    def set_run_label(self, run_id: int, label: str) -> None:
        """Name a run in the legend (runs after the first need one to be told apart)."""
        self._labels[run_id] = label

    def curve_items(self, run_id: int = 0) -> Any:
        """The plot items of one run (tests read their data)."""
        return self._items[run_id]

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


class TrainingCurvesPanel(_MetricPanel):
    """Train perplexity per step, validation points, tokens/s, and the d2l reference line."""

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent, capacity)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(PLOT_BACKGROUND)
        self.ppl_plot: pg.PlotItem = self.plot_widget.addPlot(row=0, col=0)
        self.ppl_plot.setLogMode(x=False, y=True)
        _style_plot(self.ppl_plot, "perplexity", None)
        self.legend = self.ppl_plot.addLegend(offset=(-10, 10))
        self.speed_plot: pg.PlotItem = self.plot_widget.addPlot(row=1, col=0)
        _style_plot(self.speed_plot, "tokens/s", "optimizer step")
        self.speed_plot.setXLink(self.ppl_plot)
        self.ppl_plot.getAxis("left").setWidth(60)
        self.speed_plot.getAxis("left").setWidth(60)
        style_plot(self.ppl_plot, bottom="optimizer step")
        self.plot_widget.ci.layout.setRowStretchFactor(0, 3)
        self.plot_widget.ci.layout.setRowStretchFactor(1, 1)

        # InfiniteLine knows nothing of log mode: its position is in view units (log10)
        self.reference_line = pg.InfiniteLine(
            pos=math.log10(D2L_REFERENCE_PPL),
            angle=0,
            pen=pg.mkPen("#888888", width=1.5, style=Qt.PenStyle.DashLine),
            label=D2L_REFERENCE_LABEL,
            labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)], "color": "#888888"},
        )
        self.reference_line.setZValue(-10)
        self.ppl_plot.addItem(self.reference_line, ignoreBounds=True)

        self.reference_check = QCheckBox("d2l reference line")
        self.reference_check.setChecked(True)
        self.reference_check.setToolTip(
            "Show the perplexity the d2l.ai chapter reaches on The Time Machine (≈ 7.3)"
        )
        self.reference_check.toggled.connect(self._on_reference_toggled)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot_widget, 1)
        row = QHBoxLayout()
        row.addWidget(self.reference_check)
        row.addStretch(1)
        layout.addLayout(row)

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
        _mark_nonfinite(items.nonfinite, steps, cols["nonfinite"] | ~np.isfinite(ppl), ppl, val)
        speed = cols["tokens_per_s"]
        ok = np.isfinite(speed)
        items.speed.setData(steps[ok].astype(np.float64), speed[ok])


class _GradRunItems(_RunItems):
    def __init__(self, plot: pg.PlotItem, colour: str, label: str) -> None:
        super().__init__()
        self.before = _curve(colour, 2.0, name=f"‖g‖ before clip{label}")
        after_colour = QColor(colour).darker(160).name()
        self.after = _curve(after_colour, 1.5, Qt.PenStyle.DashLine, name=f"‖g‖ after clip{label}")
        self.clipped = _markers("t1", "#ff9900", 7, name="clipping engaged")
        self.nonfinite = _markers("x", NONFINITE_COLOUR, 11, name="non-finite step")
        self.params: dict[str, pg.PlotDataItem] = {}
        self.plot = plot
        self.place(plot, self.before, self.after, self.clipped, self.nonfinite)

    def param_curve(self, name: str, colour: str) -> pg.PlotDataItem:
        item = self.params.get(name)
        if item is None:
            item = _curve(colour, 1.2, name=f"‖∂L/∂{name}‖")
            self.params[name] = item
            self.place(self.plot, item)
        return item


class GradNormPanel(_MetricPanel):
    """‖g‖ before and after clipping, θ, clip markers and rate, per-parameter norms."""

    def __init__(self, parent: QWidget | None = None, capacity: int = 4096) -> None:
        super().__init__(parent, capacity)
        self._param_names: list[str] = []
        self._param_checks: dict[str, QCheckBox] = {}
        self._theta: float | None = None
        self._clip_enabled = True

        self.plot_widget = pg.PlotWidget(background=PLOT_BACKGROUND)
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setLogMode(x=False, y=True)
        _style_plot(self.plot, "gradient norm ‖g‖", "optimizer step")
        self.plot.getAxis("left").setWidth(60)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.theta_line = pg.InfiniteLine(
            pos=0.0,
            angle=0,
            pen=pg.mkPen("#d62728", width=1.5, style=Qt.PenStyle.DashLine),
            label="θ = 1",
            labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)], "color": "#d62728"},
        )
        self.theta_line.setVisible(False)
        self.plot.addItem(self.theta_line, ignoreBounds=True)

        self.stats_label = QLabel("clip rate (last 100 steps): –   ‖g‖/θ: –")
        self.stats_label.setToolTip(
            "Share of the last 100 optimizer steps on which clipping scaled the gradient "
            "down, and the newest ratio of the unclipped gradient norm to θ"
        )
        self._checks_row = QHBoxLayout()
        self._checks_row.setContentsMargins(0, 0, 0, 0)
        checks_box = QWidget()
        checks_box.setLayout(self._checks_row)
        scroll = QScrollArea()
        scroll.setWidget(checks_box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedHeight(checks_box.sizeHint().height() + 20)
        self._checks_scroll = scroll
        self._checks_row.addWidget(QLabel("per parameter:"))
        self._checks_row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(scroll)

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

    def set_theta(self, theta: float, clip_enabled: bool = True) -> None:
        """Move the θ line (also follows the records' clip_theta as they arrive)."""
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

    def clip_stats(self, run_id: int = 0) -> tuple[float | None, float | None]:
        """(clip rate over the last 100 steps, latest ‖g‖ before clip / θ) of a run."""
        if run_id not in self._histories:
            return None, None
        recent = self._histories[run_id].recent(CLIP_RATE_WINDOW)
        if len(recent.get("step", ())) == 0:
            return None, None
        rate = float(np.mean(recent["clipped"]))
        ratio = float(recent["grad_norm_before_clip"][-1] / recent["clip_theta"][-1])
        return rate, ratio

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

    def _update_stats(self) -> None:
        # the stats speak of the main run (or the first one there is)
        run_id = 0 if 0 in self._histories or not self._histories else min(self._histories)
        recent = self._histories[run_id].recent(1) if run_id in self._histories else {}
        if len(recent.get("step", ())):
            theta = float(recent["clip_theta"][-1])
            enabled = bool(recent["clip_enabled"][-1])
            if theta != self._theta or enabled != self._clip_enabled:
                self.set_theta(theta, enabled)
        rate, ratio = self.clip_stats(run_id)
        if rate is None or ratio is None:
            self.stats_label.setText("clip rate (last 100 steps): –   ‖g‖/θ: –")
            return
        ratio_text = f"{ratio:.3g}" if math.isfinite(ratio) else "non-finite"
        state = "" if self._clip_enabled else "   (clipping off)"
        self.stats_label.setText(
            f"clip rate (last {CLIP_RATE_WINDOW} steps): {rate:.0%}   "
            f"latest ‖g‖/θ: {ratio_text}{state}"
        )

    def _make_items(self, colour: str, suffix: str) -> _GradRunItems:
        return _GradRunItems(self.plot, colour, suffix)

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray], hist: MetricHistory) -> None:
        items = self._items_for(run_id)
        steps = cols["step"]
        before = cols["grad_norm_before_clip"]
        after = cols["grad_norm_after_clip"]
        items.before.setData(*positive_finite(steps, before))
        items.after.setData(*positive_finite(steps, after))
        clipped = cols["clipped"] & np.isfinite(before) & (before > 0)
        items.clipped.setData(steps[clipped].astype(np.float64), before[clipped])
        bad = cols["nonfinite"] | ~np.isfinite(before)
        _mark_nonfinite(items.nonfinite, steps, bad, before, after)
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
