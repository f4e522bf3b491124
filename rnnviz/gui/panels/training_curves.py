"""The training curves: train perplexity per step, validation points, tokens/s, and the d2l
reference line, one colour per run, read from the state's run histories.

The reference line is drawn only for a corpus it is a fair target for (``core.analysis.
d2l_reference_applies``: prose with d2l preprocessing, not a synthetic task). Before the first
step both plots show a fixed small range, not the last run's (a divergence's 10⁻¹⁰…10¹⁰).

All methods run in the GUI thread.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from rnnviz.core import analysis
from rnnviz.core.analysis import D2L_REFERENCE_PPL, nonfinite_steps
from rnnviz.core.config import RunConfig
from rnnviz.gui import plotting
from rnnviz.gui.exports import guard_exports
from rnnviz.gui.panels._metric_base import (
    NONFINITE_COLOUR,
    MetricPanel,
    RunItems,
    cache_step_axes,
    curve,
    empty_hint,
    mark_nonfinite,
    markers,
    positive_finite,
    style_metric_plot,
)
from rnnviz.gui.plotting import LogAxis
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.theme import colours, point_size, run_colour

__all__ = ["D2L_REFERENCE_PPL", "TrainingCurvesPanel"]

D2L_REFERENCE_LABEL = f"d2l (Time Machine) ≈ {D2L_REFERENCE_PPL:g}"
REFERENCE_TIP = (
    f"Show the perplexity the d2l.ai chapter reaches on The Time Machine (≈ {D2L_REFERENCE_PPL:g})"
)
REFERENCE_NOT_APPLICABLE_TIP = (
    "The d2l reference (≈ {ppl:g}) is for English prose with d2l preprocessing (The Time Machine, "
    "the built-in corpus); this corpus is not comparable"
)
SPEED_SCALE = 1000.0  # the tokens/s plot is in thousands
# before the first step (log10 view units): perplexity about 0.7..140, where a new run starts
# (|V| ≈ 28); tokens/s 0 and 1 (thousands). Room around the end ticks: pyqtgraph drops a label
# that sticks out of its axis, and the short speed plot then had no label at all.
EMPTY_PPL_RANGE = (-0.15, 2.15)
EMPTY_SPEED_RANGE = (-0.3, 1.3)


class TrainingRunItems(RunItems):
    def __init__(
        self,
        ppl_plot: pg.PlotItem,
        speed_plot: pg.PlotItem,
        colour: str,
        suffix: str,
        background: str,
    ) -> None:
        super().__init__(suffix)
        self.train = curve(colour, 2.0, name=f"train{suffix}")
        self.val = pg.PlotDataItem(
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DotLine),
            symbol="o",
            symbolSize=8,
            symbolBrush=pg.mkBrush(background),  # hollow circles
            symbolPen=pg.mkPen(colour, width=2),
            name=f"validation{suffix}",
        )
        self.nonfinite = markers("x", NONFINITE_COLOUR, 11)
        self.speed = curve(colour, 1.5)
        self.place(ppl_plot, self.train, self.val, self.nonfinite)
        self.place(speed_plot, self.speed)


class TrainingCurvesPanel(MetricPanel):
    """Train perplexity per step, validation points, tokens/s, and the d2l reference line.

    ``export_failed(str)``: a plot's context-menu export failed (the text says why).
    """

    export_failed = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)

        self.plot_widget = pg.GraphicsLayoutWidget()
        scheme = colours()  # taken when built, as every widget's
        self.plot_widget.setBackground(scheme.plot_background)
        self.ppl_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=0, col=0, axisItems={"left": LogAxis("left")}
        )
        self.ppl_plot.setLogMode(x=False, y=True)
        style_metric_plot(self.ppl_plot, ("perplexity", "ppl"), None)
        # a key above the plot, not a legend box over the curves: with two runs a box would
        # cover half of a short plot. Runs by colour and name, line styles once.
        self.key_label = QLabel()
        self.key_label.setObjectName("curves_key_label")
        self.key_label.setTextFormat(Qt.TextFormat.RichText)
        self._nonfinite_runs: set[int] = set()
        self.speed_plot: pg.PlotItem = self.plot_widget.addPlot(row=1, col=0)
        style_metric_plot(self.speed_plot, ("10³ tok/s", "k tok/s"), "optimizer step")
        self.speed_corner = plotting.corner_name(self.speed_plot, "10³ tok/s")
        self.speed_plot.setXLink(self.ppl_plot)
        cache_step_axes(self.ppl_plot, self.speed_plot)
        # the x axis is shared with the tokens/s plot right below, which carries its name
        self.plot_widget.ci.layout.setRowStretchFactor(0, 4)
        self.plot_widget.ci.layout.setRowStretchFactor(1, 1)

        # InfiniteLine knows nothing of log mode: its position is in view units (log10)
        self.reference_line = pg.InfiniteLine(
            pos=math.log10(D2L_REFERENCE_PPL),
            angle=0,
            pen=pg.mkPen(scheme.secondary_ink, width=1.5, style=Qt.PenStyle.DashLine),
            label=D2L_REFERENCE_LABEL,
            labelOpts={
                "position": 0.02,
                "anchors": [(0, 1), (0, 1)],
                "color": scheme.secondary_ink,
            },
        )
        self.reference_line.setZValue(-10)
        # in the bounds: the view reaches down to the target the class is aiming for
        self.ppl_plot.addItem(self.reference_line)

        self.reference_check = QCheckBox("d2l reference line")
        self.reference_check.setChecked(True)
        self.reference_check.setToolTip(REFERENCE_TIP)
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
        self._grow_x_range()  # 0..10 steps before the first redraw, not pyqtgraph's 0..1
        self._show_reference()
        state.config_changed.connect(self._on_config_changed)
        guard_exports(self.plot_widget, self.export_failed.emit)

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        return [self.ppl_plot]  # the tokens/s plot is x-linked to it

    def _after_draw(self, has_data: bool) -> None:
        # before the first step: say how to start, where the key goes (a plot title took
        # height from both plots, and the speed plot's axis label then ran into the other's)
        # (the label's own ink, which follows a dark palette; a fixed grey vanished there)
        size = point_size(12 / 13)
        hint = html.escape(empty_hint(self._state))
        hint = f"<span style='font-size:{size:.1f}pt'><i>{hint}</i></span>"
        self.key_label.setText(self._key_html() if has_data else hint)
        if plotting.changed(self.speed_plot, "has_data", has_data):
            # the empty speed plot spans 0..1 in a short row: pyqtgraph labelled every 0.2,
            # four crammed labels on the first screen a class sees; 0 and 1 until data comes
            axis = self.speed_plot.getAxis("left")
            axis.setTickSpacing(*(() if has_data else (1.0, 1.0)))
            if has_data:
                for plot in (self.ppl_plot, self.speed_plot):
                    plot.enableAutoRange(y=True)
            else:
                # an empty plot keeps the range it had (after a reset, the last run's): at one
                # tick per unit a 0..3000 tokens/s axis was a smear of labels
                self.ppl_plot.setYRange(*EMPTY_PPL_RANGE, padding=0.0)
                self.speed_plot.setYRange(*EMPTY_SPEED_RANGE, padding=0.0)

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
            ink = ""  # the label's own ink: the line styles, whatever the run
        else:
            ink = f" style='color:{run_colour(runs[0] if runs else 0)}'"
        parts.append(f"<span{ink}>━━</span> train")
        parts.append(f"<span{ink}>┄○┄</span> validation")
        if self._nonfinite_runs & set(runs):
            parts.append(f"<span style='color:{NONFINITE_COLOUR}'>✕</span> perplexity not finite")
        return " &nbsp; ".join(parts)

    def reference_applies(self) -> bool:
        """Whether the d2l reference is a fair target for the configured corpus."""
        corpus = self._state.config.corpus
        return analysis.d2l_reference_applies(corpus.source, corpus.preprocess)

    @Slot(object)
    def _on_config_changed(self, _config: RunConfig) -> None:
        self._show_reference()

    @Slot(bool)
    def _on_reference_toggled(self, _on: bool) -> None:
        self._show_reference()

    def _show_reference(self) -> None:
        applies = self.reference_applies()
        # hidden, it is out of the plot's auto range too: the view is the curves' own
        self.reference_line.setVisible(applies and self.reference_check.isChecked())
        self.reference_check.setEnabled(applies)
        tip = REFERENCE_TIP if applies else REFERENCE_NOT_APPLICABLE_TIP
        self.reference_check.setToolTip(tip.format(ppl=D2L_REFERENCE_PPL))

    def _make_items(self, colour: str, suffix: str) -> TrainingRunItems:
        background = colours().plot_background
        return TrainingRunItems(self.ppl_plot, self.speed_plot, colour, suffix, background)

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
