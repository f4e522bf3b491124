"""The training curves: train perplexity per step, validation points, tokens/s, and the d2l
reference line, one colour per run, read from the state's run histories.

All methods run in the GUI thread.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from rnnviz.core.analysis import nonfinite_steps
from rnnviz.gui import plotting
from rnnviz.gui.panels._metric_base import (
    NONFINITE_COLOUR,
    MetricPanel,
    RunItems,
    cache_step_axes,
    curve,
    mark_nonfinite,
    markers,
    positive_finite,
    style_metric_plot,
)
from rnnviz.gui.plotting import LogAxis
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.theme import PLOT_BACKGROUND, run_colour

D2L_REFERENCE_PPL = 7.3
D2L_REFERENCE_LABEL = "d2l (Time Machine) ≈ 7.3"
EMPTY_HINT = "no steps yet: press ▶ Play (Space) or Step (→)"
REFERENCE_COLOUR = "#555555"
SPEED_SCALE = 1000.0  # the tokens/s plot is in thousands


class TrainingRunItems(RunItems):
    def __init__(
        self, ppl_plot: pg.PlotItem, speed_plot: pg.PlotItem, colour: str, suffix: str
    ) -> None:
        super().__init__(suffix)
        self.train = curve(colour, 2.0, name=f"train{suffix}")
        self.val = pg.PlotDataItem(
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DotLine),
            symbol="o",
            symbolSize=8,
            symbolBrush=pg.mkBrush("w"),
            symbolPen=pg.mkPen(colour, width=2),
            name=f"validation{suffix}",
        )
        self.nonfinite = markers("x", NONFINITE_COLOUR, 11)
        self.speed = curve(colour, 1.5)
        self.place(ppl_plot, self.train, self.val, self.nonfinite)
        self.place(speed_plot, self.speed)


class TrainingCurvesPanel(MetricPanel):
    """Train perplexity per step, validation points, tokens/s, and the d2l reference line."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(PLOT_BACKGROUND)
        self.ppl_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=0, col=0, axisItems={"left": LogAxis("left")}
        )
        self.ppl_plot.setLogMode(x=False, y=True)
        style_metric_plot(self.ppl_plot, "perplexity", None)
        # a key above the plot, not a legend box over the curves: with two runs a box would
        # cover half of a short plot. Runs by colour and name, line styles once.
        self.key_label = QLabel()
        self.key_label.setObjectName("curves_key_label")
        self.key_label.setTextFormat(Qt.TextFormat.RichText)
        self._nonfinite_runs: set[int] = set()
        self.speed_plot: pg.PlotItem = self.plot_widget.addPlot(row=1, col=0)
        style_metric_plot(self.speed_plot, "10³ tok/s", "optimizer step")
        self.speed_plot.setXLink(self.ppl_plot)
        cache_step_axes(self.ppl_plot, self.speed_plot)
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

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        return [self.ppl_plot]  # the tokens/s plot is x-linked to it

    def _after_draw(self, has_data: bool) -> None:
        # before the first step: say how to start, where the key goes (a plot title took
        # height from both plots, and the speed plot's axis label then ran into the other's)
        hint = f"<span style='color:#555; font-size:12pt'>{html.escape(EMPTY_HINT)}</span>"
        self.key_label.setText(self._key_html() if has_data else hint)
        if plotting.changed(self.speed_plot, "has_data", has_data):
            # the empty speed plot spans 0..1 in a short row: pyqtgraph labelled every 0.2,
            # four crammed labels on the first screen a class sees; 0 and 1 until data comes
            axis = self.speed_plot.getAxis("left")
            axis.setTickSpacing(*(() if has_data else (1.0, 1.0)))

    def key_run_names(self) -> list[str]:
        """The runs the key names (empty while only one run is drawn: it needs no name)."""
        runs = self._drawn_runs()
        return [self.run_name(rid) for rid in runs] if len(runs) > 1 else []

    def _key_html(self) -> str:
        runs = self._drawn_runs()
        parts = []
        if len(runs) > 1:
            for rid in runs:
                name = html.escape(self.run_name(rid))
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

    def _make_items(self, colour: str, suffix: str) -> TrainingRunItems:
        return TrainingRunItems(self.ppl_plot, self.speed_plot, colour, suffix)

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray]) -> None:
        items = self._items_for(run_id)
        steps = cols["step"]
        ppl = cols["ppl"]
        items.train.setData(*positive_finite(steps, ppl))
        val = cols["val_ppl"]
        has_val = np.isfinite(val)
        items.val.setData(*positive_finite(steps[has_val], val[has_val]))
        # a skipped step, or a loss so large that exp(loss) overflows
        bad = nonfinite_steps(cols["nonfinite"], ppl)
        mark_nonfinite(self.ppl_plot, items.nonfinite, steps, bad, ppl, val)
        if bad.any():
            self._nonfinite_runs.add(run_id)
        else:
            self._nonfinite_runs.discard(run_id)
        speed = cols["tokens_per_s"]
        ok = np.isfinite(speed)
        # thousands: "3059" fits the axis, "3059000" does not (and SI prefixes are off)
        items.speed.setData(steps[ok].astype(np.float64), speed[ok] / SPEED_SCALE)
