"""The gradient norms: ‖g‖ before and after clipping, θ, clip markers and rate, per-parameter
norms, one colour per run, read from the state's run histories.

θ is the state's configuration (``state.config.train``): its line moves the moment the user
sets θ, before any step has used it. A compare run's own θ comes from its records, drawn where
it clips differently. The clip statistics are core.analysis's.

A per-parameter curve is drawn in its run's colour with the parameter's own dash pattern (its
check box shows the pattern): colours would collide with the runs' (W_hh's orange was the
second run's orange).

All methods run in the GUI thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core import analysis
from rnnviz.core.analysis import CLIP_RATE_WINDOW, ClipStats
from rnnviz.core.config import RunConfig
from rnnviz.core.history import PARAM_PREFIX
from rnnviz.core.messages import RunInfo
from rnnviz.gui.exports import guard_exports
from rnnviz.gui.panels._metric_base import (
    NONFINITE_COLOUR,
    MetricPanel,
    RunItems,
    cache_step_axes,
    curve,
    legend_entry,
    mark_nonfinite,
    markers,
    positive_finite,
    style_metric_plot,
)
from rnnviz.gui.plotting import LogAxis
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.theme import colours, on_background, plain_number, readable, run_colour
from rnnviz.gui.widgets import SteadyLabel

CLIP_MARKER_COLOUR = "#ff9900"
THETA_COLOUR = "#d62728"


def theta_colour() -> str:
    """θ's red, lighter on a dark background (the dark red was hard to read there)."""
    return on_background(THETA_COLOUR)


AFTER_CLIP_SHADE = 160  # the after-clipping curve: the run colour, darker (lighter on dark)
# per-parameter curves: the run's colour, one dash pattern (in pen widths) per parameter; none
# is Qt's plain dash, the after-clipping curve's. Six parameters at most (GRU, LSTM).
PARAM_DASHES: tuple[tuple[float, ...], ...] = (
    (1.0, 2.0),  # dotted
    (7.0, 2.0, 1.0, 2.0),  # dash-dot
    (12.0, 3.0),  # long dash
    (7.0, 2.0, 1.0, 2.0, 1.0, 2.0),  # dash-dot-dot
    (1.0, 5.0),  # sparse dots
    (12.0, 3.0, 3.0, 3.0),  # long-short
    (3.0, 3.0),  # even
)
PARAM_WIDTH = 1.8
PARAM_ICON_SIZE = QSize(44, 12)  # two repeats of the longest pattern
PARAM_KEY = "per parameter: colour = run, line style = parameter (see the check boxes)"


def param_pen(colour: str | QColor, index: int) -> QPen:
    """The pen of parameter ``index``'s curve in a run's ``colour``."""
    pen: QPen = pg.mkPen(colour, width=PARAM_WIDTH)
    pen.setDashPattern(list(PARAM_DASHES[index % len(PARAM_DASHES)]))
    return pen


def param_icon(index: int, ink: QColor) -> QIcon:
    """A sample of parameter ``index``'s line style: its check box is its legend."""
    size = PARAM_ICON_SIZE
    pixmap = QPixmap(size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    pen = param_pen(ink, index)
    pen.setWidthF(1.5)
    painter.setPen(pen)
    y = size.height() / 2
    painter.drawLine(QPointF(1.0, y), QPointF(size.width() - 1.0, y))
    painter.end()
    return QIcon(pixmap)


def _grad_key_html() -> str:
    """The gradient plot's key: line styles (colours are the runs', as in the curves' legend)."""
    c = run_colour(0)
    after = readable(c, AFTER_CLIP_SHADE)
    return (
        f"<span style='color:{c}'>━━</span> ‖g‖ before clipping &nbsp; "
        f"<span style='color:{after}'>╍╍</span> after clipping &nbsp; "
        f"<span style='color:{CLIP_MARKER_COLOUR}'>▲</span> clipping engaged &nbsp; "
        f"<span style='color:{theta_colour()}'>╍╍</span> θ &nbsp; "
        f"<span style='color:{NONFINITE_COLOUR}'>✕</span> non-finite step"
    )


class GradRunItems(RunItems):
    def __init__(self, plot: pg.PlotItem, colour: str, suffix: str) -> None:
        super().__init__(suffix)
        self.before = curve(colour, 2.0, name=f"‖g‖ before clip{suffix}")
        after_colour = readable(colour, AFTER_CLIP_SHADE)
        self.after = curve(after_colour, 1.5, Qt.PenStyle.DashLine, name=f"‖g‖ after clip{suffix}")
        # named in the legend only while there are any (see legend_entry)
        self.clipped = markers("t1", CLIP_MARKER_COLOUR, 7)
        self.nonfinite = markers("x", NONFINITE_COLOUR, 11)
        self.params: dict[str, pg.PlotDataItem] = {}
        self.plot = plot
        self.colour = colour
        self.place(plot, self.before, self.after, self.clipped, self.nonfinite)
        # a compare run's own θ, in its colour, where it differs from the main run's
        self.theta_line = pg.InfiniteLine(
            pos=0.0,
            angle=0,
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
            label=f"θ{suffix}",
            labelOpts={"position": 0.3, "anchors": [(0, 0), (0, 0)], "color": colour},
        )
        self.theta_line.setVisible(False)
        self.place(plot, self.theta_line)

    def param_curve(self, name: str, index: int) -> pg.PlotDataItem:
        """The curve of parameter ``name`` (the ``index``-th): the run's colour, its dashes."""
        item = self.params.get(name)
        if item is None:
            item = curve(self.colour, PARAM_WIDTH, name=f"‖∂L/∂{name}‖{self.suffix}")
            item.setPen(param_pen(self.colour, index))
            self.params[name] = item
            self.place(self.plot, item)
        return item


class GradNormPanel(MetricPanel):
    """‖g‖ before and after clipping, θ, clip markers and rate, per-parameter norms.

    ``export_failed(str)``: a plot's context-menu export failed (the text says why).
    """

    export_failed = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._param_names: list[str] = []
        self._param_checks: dict[str, QCheckBox] = {}

        self.plot_widget = pg.PlotWidget(
            background=colours().plot_background, axisItems={"left": LogAxis("left")}
        )
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setLogMode(x=False, y=True)
        style_metric_plot(self.plot, ("gradient norm ‖g‖", "‖g‖"), "optimizer step")
        cache_step_axes(self.plot)
        # a key above the plot instead of a legend box over the curves (they fill the plot)
        self.key_label = QLabel(_grad_key_html())
        self.key_label.setObjectName("grad_key_label")
        self.key_label.setWordWrap(True)  # a second line when per-parameter curves are shown
        self.theta_line = pg.InfiniteLine(
            pos=0.0,
            angle=0,
            pen=pg.mkPen(theta_colour(), width=1.5, style=Qt.PenStyle.DashLine),
            label="θ = 1",
            # below the line: θ is often the top of the view
            labelOpts={"position": 0.02, "anchors": [(0, 0), (0, 0)], "color": theta_colour()},
        )
        self.theta_line.setVisible(False)
        # in the bounds: how far below (or above) θ the gradients are is the point
        self.plot.addItem(self.theta_line)

        # its text changes at every redraw: a SteadyLabel does not re-lay out the window
        self.stats_label = SteadyLabel(analysis.NO_CLIP_STATS_TEXT, shrink=True)
        self.stats_label.setToolTip(
            f"Share of the last {CLIP_RATE_WINDOW} optimizer steps on which clipping scaled the "
            "gradient down, and the newest ratio of the unclipped gradient norm to θ"
        )
        # the row scrolls sideways in a narrow dock rather than force the dock (and the
        # window's other docks) wider; squeezed instead, a GRU's six names and an opened
        # file's drew over one another
        checks_box = self._checks_box = QWidget()
        self._checks_row = QHBoxLayout(checks_box)
        self._checks_row.setContentsMargins(0, 0, 0, 0)
        caption = QLabel("per parameter:")
        caption.setToolTip(
            "Plot the gradient norm of one parameter matrix or bias alone: in each run's "
            "colour, with the line style its check box shows"
        )
        self._checks_row.addWidget(caption)
        self._checks_row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.key_label)
        layout.addWidget(self.plot_widget, 1)
        self._checks_scroll = QScrollArea()
        self._checks_scroll.setWidget(checks_box)
        self._checks_scroll.setWidgetResizable(True)
        self._checks_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._checks_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._checks_scroll.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        layout.addWidget(self._checks_scroll)
        self._fit_checks_height()
        self._checks_scroll.installEventFilter(self)
        checks_box.installEventFilter(self)

        state.config_changed.connect(self._on_config_changed)
        state.run_info_changed.connect(self._on_run_info)
        self._show_theta()
        info = state.run_info
        if info is not None:
            self.set_param_names(info.param_names)
        guard_exports(self.plot_widget, self.export_failed.emit)
        self._grow_x_range()  # 0..10 steps before the first redraw, not pyqtgraph's 0..1

    def _step_axis_plots(self) -> list[pg.PlotItem]:
        return [self.plot]

    def _own_key(self) -> tuple[object, ...]:
        train = self._state.config.train
        return (
            train.clip_theta,
            train.clip_enabled,
            tuple(self._param_names),
            tuple(self.shown_params()),
        )

    # ------------------------------------------------------------ public API

    def recolour(self) -> None:
        """The check boxes' line-style icons again, in the new palette's ink (``gui.recolour``)."""
        ink = self.palette().color(QPalette.ColorRole.WindowText)
        for i, check in enumerate(self._param_checks.values()):
            check.setIcon(param_icon(i, ink))

    def set_param_names(self, names: Sequence[str]) -> None:
        """One checkbox per parameter (off by default); the main run's RunInfo sets them."""
        names = list(names)
        if names == self._param_names:
            return
        for check in self._param_checks.values():
            self._checks_row.removeWidget(check)
            check.deleteLater()
        self._param_checks.clear()
        self._param_names = names
        ink = self.palette().color(QPalette.ColorRole.WindowText)
        for i, name in enumerate(names):
            check = QCheckBox(name)
            check.setObjectName(f"param_check_{name}")
            check.setToolTip(
                f"Plot ‖∂L/∂{name}‖, the gradient norm of {name} alone, in each run's colour "
                "with this line style"
            )
            # the check box is the curve's legend: its line style
            check.setIcon(param_icon(i, ink))
            check.setIconSize(PARAM_ICON_SIZE)
            check.toggled.connect(self._on_param_toggled)
            self._param_checks[name] = check
            self._checks_row.insertWidget(1 + i, check)
        self._fit_checks_height()
        for items in self._items.values():
            for name in list(items.params):
                if name not in names:
                    self.plot.removeItem(items.params.pop(name))

    def _fit_checks_height(self) -> None:
        """The row's height, and room for the scroll bar only while the names do not fit
        (always reserved, it took the softmax's height in a short window)."""
        scroll, row = self._checks_scroll, self._checks_box.sizeHint()
        overflows = row.width() > scroll.width()
        bar = scroll.horizontalScrollBar().sizeHint().height() if overflows else 0
        if scroll.height() != row.height() + bar or scroll.minimumHeight() != row.height() + bar:
            scroll.setFixedHeight(row.height() + bar)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        # the scroll area resized, or the row's check boxes shown (a new box is shown in a
        # later pass of the loop, after set_param_names has returned)
        kind = event.type()
        if (watched is self._checks_scroll and kind == QEvent.Type.Resize) or (
            watched is self._checks_box and kind == QEvent.Type.LayoutRequest
        ):
            self._fit_checks_height()
        return False

    def param_check(self, name: str) -> QCheckBox:
        return self._param_checks[name]

    def shown_params(self) -> list[str]:
        return [n for n, c in self._param_checks.items() if c.isChecked()]

    @property
    def theta(self) -> float:
        """The θ the line shows: the configured one."""
        return self._state.config.train.clip_theta

    @property
    def clip_enabled(self) -> bool:
        return self._state.config.train.clip_enabled

    def clip_stats(self, run_id: int = MAIN_RUN) -> tuple[float | None, float | None]:
        """(clip rate over the last CLIP_RATE_WINDOW steps, latest ‖g‖ before clip / θ) of a run.

        The main run's θ is the configured one, which counts at once (the line shows it); a
        compare run's is its newest record's.
        """
        stats = self._clip_stats(run_id)
        return (None, None) if stats is None else (stats.rate, stats.ratio)

    def run_stats_text(self, run_id: int) -> str:
        """One run's line of the stats: step, clip rate and ‖g‖/θ (plain text)."""
        return self._run_stats(run_id, html=False)

    def theta_line_of(self, run_id: int) -> pg.InfiniteLine | None:
        """The θ line of a compare run (None for the main run or a run not drawn yet)."""
        items = self._items.get(run_id)
        return None if items is None or run_id == self._stats_run() else items.theta_line

    # ------------------------------------------------------------ θ and the stats

    @Slot(object)
    def _on_config_changed(self, _config: RunConfig) -> None:
        self._show_theta()
        self._update_stats()

    @Slot(object)
    def _on_run_info(self, info: RunInfo) -> None:
        self.set_param_names(info.param_names)

    def _show_theta(self) -> None:
        theta, enabled = self.theta, self.clip_enabled
        if theta > 0 and math.isfinite(theta):
            self.theta_line.setPos(math.log10(theta))
            self.theta_line.label.setFormat(
                f"θ = {theta:g}" + ("" if enabled else " (clipping off)")
            )
            self.theta_line.setVisible(True)
        else:
            self.theta_line.setVisible(False)
        pen = self.theta_line.pen
        pen.setStyle(Qt.PenStyle.DashLine if enabled else Qt.PenStyle.DotLine)
        self.theta_line.setPen(pen)

    def _stats_run(self) -> int:
        """The run the θ line speaks of: the main run (or the first one there is)."""
        ids = self.run_ids()
        return MAIN_RUN if MAIN_RUN in ids or not ids else min(ids)

    def _clip_stats(self, run_id: int) -> ClipStats | None:
        history = self.history(run_id)
        if history is None:
            return None
        recent = history.recent(CLIP_RATE_WINDOW)
        if run_id == self._stats_run():
            return analysis.clip_stats(recent, self.theta, self.clip_enabled)
        return analysis.clip_stats(recent)

    def _update_stats(self) -> None:
        runs = self._drawn_runs()
        if len(runs) > 1:
            # one line per run, in its colour: which run clips how often, and its step
            self.stats_label.setText("<br>".join(self._run_stats(rid, html=True) for rid in runs))
            return
        stats = self._clip_stats(self._stats_run())
        self.stats_label.setText(
            analysis.NO_CLIP_STATS_TEXT if stats is None else stats.text(plain_number)
        )

    def _run_stats(self, run_id: int, *, html: bool) -> str:
        stats = self._clip_stats(run_id)
        name = self.run_name(run_id)
        body = analysis.NO_STEPS_TEXT if stats is None else stats.run_text(plain_number)
        if not html:
            return f"{name} — {body}"
        return f"<span style='color:{run_colour(run_id)}'>━━ <b>{name}</b></span> {body}"

    # ------------------------------------------------------------ drawing

    @Slot(bool)
    def _on_param_toggled(self, _on: bool) -> None:
        self.redraw()

    def redraw(self) -> bool:
        drew = super().redraw()
        if drew:
            self._update_stats()
            key = _grad_key_html()
            if self.shown_params():
                key += f"<br>{PARAM_KEY}"
            if key != self.key_label.text():
                self.key_label.setText(key)
        return drew

    def key_text(self) -> str:
        """The key above the plot (rich text)."""
        return self.key_label.text()

    def _make_items(self, colour: str, suffix: str) -> GradRunItems:
        return GradRunItems(self.plot, colour, suffix)

    def _draw_run_theta(self, run_id: int, items: GradRunItems, cols: dict[str, Any]) -> None:
        """A compare run's θ line: shown where its clipping differs from the main run's."""
        theta = cols["clip_theta"]
        if run_id == self._stats_run() or not len(theta):
            items.theta_line.setVisible(False)
            return
        own, enabled = float(theta[-1]), bool(cols["clip_enabled"][-1])
        differs = analysis.theta_differs(own, enabled, self.theta, self.clip_enabled)
        if differs and own > 0 and math.isfinite(own):
            items.theta_line.setPos(math.log10(own))
            items.theta_line.label.setFormat(f"θ = {own:g}{items.suffix}")
        items.theta_line.setVisible(differs)

    def _draw_run(self, run_id: int, cols: dict[str, np.ndarray]) -> None:
        items = self._items_for(run_id)
        steps = cols["step"]
        before = cols["grad_norm_before_clip"]
        after = cols["grad_norm_after_clip"]
        items.before.setData(*positive_finite(steps, before))
        items.after.setData(*positive_finite(steps, after))
        clipped = cols["clipped"] & np.isfinite(before) & (before > 0)
        items.clipped.setData(steps[clipped].astype(np.float64), before[clipped])
        legend_entry(self.plot, items.clipped, "clipping engaged", bool(clipped.any()))
        bad = analysis.nonfinite_steps(cols["nonfinite"], before)
        theta = cols["clip_theta"]  # the θ line is in the view too: crosses go above it
        mark_nonfinite(self.plot, items.nonfinite, steps, bad, before, after, theta)
        self._draw_run_theta(run_id, items, cols)
        shown = set(self.shown_params())
        for i, name in enumerate(self._param_names):
            column = PARAM_PREFIX + name
            if name in shown and column in cols:
                param = items.param_curve(name, i)
                param.setData(*positive_finite(steps, cols[column]))
                param.setVisible(True)
            elif name in items.params:
                items.params[name].setVisible(False)
                items.params[name].setData([], [])
