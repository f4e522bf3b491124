"""The "gradient flow" dock: how far back a gradient reaches, and why.

Three views of numbers core computed:

* **Probe string** (tab 1): the matrix ``G[t, k] = ‖∂L_t/∂H_k‖`` of
  :attr:`rnnviz.core.probe.ProbeResult.grad_flow` as a heatmap on a log colour scale, with the
  characters on both axes, and for the cursor row ``t`` the curve ``G[t, t − d]`` against the
  distance ``d = t − k`` on a log axis. A geometric decay is a straight line there, so a line
  fitted to ``log10 G`` (:func:`rnnviz.core.analysis.fit_factor`) gives the *per-step factor* a
  lecturer points at: below 1 the gradient vanishes, above 1 it explodes. The probe result and
  the cursor are pushed in (``set_result``, ``set_cursor``). A cursor row with nothing to fit
  (t = 0) shows the last row with a target instead (:func:`rnnviz.core.analysis.fit_row`).
* **Training** (tab 2, top): :attr:`StepRecord.grad_flow` (``‖∂L/∂H_t‖`` per position ``t`` of
  the ``num_steps`` window) against the optimizer step, the state's ring of recent steps of a
  run (``state.histories.run(r).flow``), drawn as a heatmap of each step's values relative to
  its largest (log10, core.analysis's column normalisation and robust floor): how far back
  into the window the gradient signal gets, whatever its overall size.
* **Training** (tab 2, bottom): ``σ_max(W_hh)`` against the step, one curve per run (the
  ``w_hh_sigma_max`` column of its metric history), with the line ``σ_max = 1`` that separates
  "can only shrink" from "may grow".

A bidirectional model's G is not causal: L_t reads the forward states up to t and the
backward states from t on, so row t is filled on both sides of the diagonal, and the heatmap
shows all of it. Of the top layer (what G is of), G[t, k] for k < t is the forward half's
alone and for k > t the backward half's alone, so the distance plot follows the direction
chosen (the hidden-state panel's, set here by the window with ``set_direction``): forward,
the steps back k <= t with the forward retention; backward, the steps ahead k >= t,
d = k − t, with the backward direction's retention (its carry gate from t to k − 1). Each side
is then one recurrence, its gradient and its gates' product on one axis, and the fitted
factor is that recurrence's per-step factor; a signed axis of both sides at once would fit
one line through two different decays.

The arithmetic here is for display only: ``log10`` of positive finite values and masking. NaN,
inf and zeros never reach pyqtgraph: heatmaps are turned into RGBA images (missing cells grey)
and curves keep only their positive finite points.

All methods run in the GUI thread.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal, Slot
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QLabel,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.analysis import (
    FactorFit,
    column_normalised_log10,
    fit_factor,
    fit_row,
    flow_colour_floor,
    log10_masked,
)
from rnnviz.core.messages import RunInfo
from rnnviz.gui import plotting, theme, widgets
from rnnviz.gui.exports import guard_exports
from rnnviz.gui.panels._gradflow_plots import (
    COLOURBAR_PROBE_LABEL,
    EXPLODING_COLOUR,
    PROBE_LOG_LEVELS,
    PROBE_PLACEHOLDER,
    TRAINING_TOP,
    VANISHING_COLOUR,
    TrainingPage,
    colour_bar,
    heatmap_plot,
    log_curve,
    log_rgba,
    no_flow_text,
)
from rnnviz.gui.panels._metric_base import empty_hint
from rnnviz.gui.plotting import LogAxis
from rnnviz.gui.state.app_state import MAIN_RUN, AppState
from rnnviz.gui.state.histories import RunHistory

if TYPE_CHECKING:
    from rnnviz.core.gates import Direction
    from rnnviz.core.probe import ProbeResult

_ROW_PEN_WIDTH = 3
# why the distance plot shows another row than the cursor's
# (short: on a 1280-px projector these lines took the height the plots above need)
LAST_ROW_NOTE = "the last character has no next one to predict: showing row t = T − 2"
NOTHING_TO_FIT_NOTE = (
    "row t = {cursor} has under 2 steps back: showing row t = {row}, the last step with a "
    "target (move the cursor right)"
)


# the distance plot keeps its decades for a new row whose curves leave at most this many of
# them empty (see _fit_distance_range)
DISTANCE_SLACK_DECADES = 2


class GradFlowPanel(QWidget):
    """Gradient flow: the probe string's ‖∂L_t/∂H_k‖, the training flow, and σ_max(W_hh).

    ``export_failed(str)``: a plot's context-menu export failed (the text says why).
    """

    export_failed = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._result: ProbeResult | None = None
        self._grad_flow: np.ndarray | None = None  # (T, T) of the current result
        self._row_drawn_for: np.ndarray | None = None  # the G whose cursor row is drawn
        # (row, its character, its values) as the distance plot shows them
        self._row_drawn: tuple[int, str, np.ndarray] | None = None
        self._chars: list[str] = []
        self._cursor = 0
        self._probe_log = np.full((0, 0), np.nan)
        self._distance = (np.empty(0), np.empty(0))
        self._fit: FactorFit | None = None
        # (text, row, lo, hi): the distance plot's decades, which widen while both stay
        self._distance_decades: tuple[str, int, int, int] | None = None
        self._heatmap_run = MAIN_RUN
        # of a bidirectional result: the side of G the distance plot shows (see the module doc)
        self._direction = "forward"
        # the floor of the training colour levels (decades below each step's largest)
        self._training_floor: float | None = None
        # (run, its history, window size) the floor was found for: another one starts it again
        self._floor_for: tuple[int, RunHistory, int] | None = None
        self._training_log = np.full((0, 0), np.nan)
        self._training_colour = np.full((0, 0), np.nan)
        self._training_steps = np.empty(0, dtype=np.int64)
        self._drawn: object = None  # the _draw_key() of the training tab on screen

        self.tabs = QTabWidget()
        self.tabs.setObjectName("gradflow_tabs")
        self.tabs.setFont(theme.font())
        self.tabs.addTab(self._build_probe_tab(), "Probe string")
        self.tabs.addTab(self._build_training_tab(), "Training")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tabs)
        plotting.cache_axes(self.probe_plots)
        for view in (self.probe_plots, self.training_plots):
            guard_exports(view, self.export_failed.emit)
        self.set_result(None)
        self._page.clear_heatmap(
            self.training_levels(), state.config.train.num_steps, empty_hint(state)
        )
        # a run closed or a new run: drawn at once (nothing left of it stays on screen)
        state.runs_changed.connect(self._on_runs_changed)
        state.run_info_changed.connect(self._on_run_info)
        state.unit_changed.connect(self._on_unit_changed)

    # ------------------------------------------------------------------ building

    def _build_probe_tab(self) -> QWidget:
        self.probe_stack = QStackedWidget()
        self.probe_placeholder = QLabel(PROBE_PLACEHOLDER)
        self.probe_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.probe_placeholder.setFont(theme.font(1.3))
        scheme = theme.colours()  # taken when built, as every widget's
        self.probe_placeholder.setStyleSheet(f"color: {scheme.placeholder_ink};")
        # wrapped: an unwrapped sentence made its width the least the dock (and the tab group
        # it shares with the softmax dock) could shrink to
        self.probe_placeholder.setWordWrap(True)

        # three plots side by side: none cut off
        self.probe_plots = plotting.UnclippedLayoutWidget()
        self.probe_plots.setBackground(scheme.plot_background)
        self.probe_plot, self.probe_image = heatmap_plot(
            self.probe_plots, 0, 0, left="loss at step t", bottom="source step k"
        )
        self.probe_plot.invertY(True)  # a matrix: row t = 0 at the top, lower triangle filled
        title_size = f"{theme.point_size():.1f}pt"
        self.probe_plot.setTitle("‖∂L_t/∂H_k‖", size=title_size, color=scheme.ink)
        # characters while they fit, step numbers (0, 10, 20) once they would overlap
        self._probe_x_ticks = plotting.TickSource(
            self.probe_plot.getAxis("bottom"), *plotting.STEP_TICK_PX, numbers_when_crowded=True
        )
        self._probe_y_ticks = plotting.TickSource(
            self.probe_plot.getAxis("left"),
            *plotting.STEP_TICK_PX_VERTICAL,
            numbers_when_crowded=True,
        )
        self.probe_plot.getViewBox().sigResized.connect(self._refresh_probe_ticks)
        self.probe_bar = colour_bar(self.probe_plots, 0, 1, PROBE_LOG_LEVELS, COLOURBAR_PROBE_LABEL)
        self.row_marker = QGraphicsRectItem(0.0, 0.0, 1.0, 1.0)
        pen = QPen(pg.mkColor(theme.HIGHLIGHT))
        pen.setWidth(_ROW_PEN_WIDTH)
        pen.setCosmetic(True)
        self.row_marker.setPen(pen)
        self.row_marker.setZValue(10)
        self.probe_plot.addItem(self.row_marker)

        # plain-number log ticks that leave out a minor label with no room ("9 8 7 6" stacked)
        self.distance_plot: pg.PlotItem = self.probe_plots.addPlot(
            row=0, col=2, axisItems={"left": LogAxis("left")}
        )
        self.distance_plot.setLogMode(x=False, y=True)
        plotting.style_plot(
            self.distance_plot, left="‖∂L_t/∂H_k‖", bottom=("steps back t − k", "t − k")
        )
        self.distance_plot.showGrid(x=True, y=True, alpha=0.3)
        # "(x0.001)" next to log ticks would make a student misread every tick
        self.distance_plot.getAxis("left").enableAutoSIPrefix(False)
        self.distance_plot.setTitle(
            "selected row t", size=f"{theme.point_size():.1f}pt", color=scheme.ink
        )
        self.distance_curve = log_curve(scheme.cursor, name="‖∂L_t/∂H_{t−d}‖")
        self.fit_curve = log_curve(
            theme.HIGHLIGHT, width=2.0, symbol=None, style=Qt.PenStyle.DashLine, name="fitted line"
        )
        # a GRU's or LSTM's retention: the mean product of its keep gate along the row
        self.retention_curve = log_curve(
            theme.RUN_COLOURS[2], width=2.5, symbol=None, style=Qt.PenStyle.DotLine,
            name="mean ∏ of the keep gate",
        )  # fmt: skip
        # ... and the selected unit's own product (a unit that integrates keeps ~1)
        self.unit_retention_curve = log_curve(
            theme.RUN_COLOURS[2], width=1.5, symbol=None, style=Qt.PenStyle.DashDotLine,
            name="the selected unit's ∏",
        )  # fmt: skip
        self.distance_plot.addItem(self.distance_curve)
        self.distance_plot.addItem(self.fit_curve)
        self.distance_plot.addItem(self.retention_curve)
        self.distance_plot.addItem(self.unit_retention_curve)
        layout = self.probe_plots.ci.layout
        layout.setColumnSpacing(1, 24)  # the colour bar's label would touch the curve's axis
        layout.setColumnStretchFactor(0, 1)
        layout.setColumnStretchFactor(2, 1)
        # the stretch factors share the width, not the plots' preferred widths: the heatmap's
        # follows its tick labels, so one more character moved every column by 2 px and
        # regenerated the view's five axes at each key typed into a short text
        for plot in (self.probe_plot, self.distance_plot):
            plot.setPreferredWidth(1)
        # nor does the row's title ("t = 17 ('r')"), which changes with every key
        plotting.steady_title(self.distance_plot)

        # its text changes with every probe and cursor move: it must not re-lay out the window
        self.factor_label = widgets.SteadyLabel(wrap=True)
        self.factor_label.setObjectName("gradflow_factor")
        self.factor_label.label().setFont(theme.font(1.25, bold=True))
        self.factor_label.setToolTip(
            "A straight line fitted to log10 ‖∂L_t/∂H_k‖ against t − k for the selected row: "
            "each step back multiplies the gradient by this factor."
        )

        # its text names the row shown, which changes as a key is typed: a steady label
        # a GRU's or LSTM's retention row, in words (hidden for the plain RNN)
        self.retention_label = widgets.SteadyLabel(wrap=True)
        self.retention_label.setObjectName("gradflow_retention")
        self.retention_label.label().setFont(theme.font(0.95))
        self.retention_label.setVisible(False)
        self.retention_label.setToolTip(
            "Dotted: the mean over hidden units of the product of the forget gate f (LSTM) or "
            "the update gate z (GRU) from step k+1 to t: how much of the carried state survives "
            "t − k steps. The gradient along the cell's own path is multiplied by the same "
            "product, which is why it reaches further back than in the plain RNN."
        )
        self.row_note = widgets.SteadyLabel(LAST_ROW_NOTE, wrap=True)
        self.row_note.setObjectName("gradflow_row_note")
        self.row_note.label().setFont(theme.font(0.95))
        self.row_note.setVisible(False)

        probe_page = QWidget()
        page_layout = QVBoxLayout(probe_page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(self.probe_plots, 1)
        page_layout.addWidget(self.row_note)
        page_layout.addWidget(self.factor_label)
        page_layout.addWidget(self.retention_label)
        self.probe_stack.addWidget(self.probe_placeholder)
        self.probe_stack.addWidget(probe_page)
        return self.probe_stack

    def _build_training_tab(self) -> QWidget:
        page = self._page = TrainingPage()
        # the page's items, as this panel's (the tests and the screenshots read them here)
        self.training_plots = page.training_plots
        self.training_plot, self.training_image = page.training_plot, page.training_image
        self.training_bar = page.training_bar
        self.sigma_plot, self.sigma_line = page.sigma_plot, page.sigma_line
        self.sigma_anchor = page.sigma_anchor
        self.run_combo, self.run_label = page.run_combo, page.run_label
        self.training_note = page.training_note
        self.empty_hint = page.empty_hint
        self.run_combo.currentIndexChanged.connect(self._on_run_chosen)
        self._update_run_combo()
        return page

    # ------------------------------------------------------------------ probe string

    def set_result(self, result: ProbeResult | None) -> None:
        """Show a :class:`~rnnviz.core.probe.ProbeResult` (None: the placeholder)."""
        self._result = result
        flow = None if result is None else getattr(result, "grad_flow", None)
        if flow is None or np.asarray(flow).ndim != 2 or np.asarray(flow).shape[0] == 0:
            self._grad_flow = None
            self._chars = []
            self._probe_log = np.full((0, 0), np.nan)
            self.probe_image.clear()
            self._clear_row()
            self.probe_placeholder.setText(no_flow_text(result))
            self.probe_stack.setCurrentWidget(self.probe_placeholder)
            return
        G = np.asarray(flow, dtype=np.float64)
        T = G.shape[0]
        self._grad_flow = G
        text = str(getattr(result, "text", ""))
        self._chars = list(text[:T]) + ["?"] * max(0, T - len(text))
        # k <= t; every k of a bidirectional model, whose loss at t reads the reverse states
        # after it
        shown = np.ones(G.shape, dtype=bool)
        if not getattr(result, "bidirectional", False):
            shown = np.tril(shown)
        self._probe_log = log10_masked(G, shown)
        self.probe_image.setImage(
            log_rgba(self._probe_log, PROBE_LOG_LEVELS, theme.SEQUENTIAL), autoLevels=False
        )
        self.probe_image.setRect(QRectF(0.0, 0.0, float(T), float(T)))
        self._probe_x_ticks.set_chars(self._chars)
        self._probe_y_ticks.set_chars(self._chars)
        self._refresh_probe_ticks()  # fits the span too
        self.probe_stack.setCurrentIndex(1)
        self._draw_row()

    def recolour(self) -> None:
        """The heatmaps again: their missing cells are the scheme's grey (``gui.recolour``)."""
        if self._grad_flow is not None:
            self.probe_image.setImage(
                log_rgba(self._probe_log, PROBE_LOG_LEVELS, theme.SEQUENTIAL), autoLevels=False
            )
        self._drawn = None
        self.redraw()

    def _fit_probe_span(self) -> None:
        """The whole matrix in view, over plotting.time_span steps; a zoom in is kept while the
        span stays."""
        if self._grad_flow is None:
            return
        view = self.probe_plot.getViewBox().boundingRect()
        span = plotting.time_span(len(self._grad_flow), min(view.width(), view.height()))
        if plotting.changed(self.probe_plot, "span", span):
            self.probe_plot.setLimits(xMin=-0.5, xMax=span + 0.5, yMin=-0.5, yMax=span + 0.5)
            # explicit, not autorange: that measures every item's bounds at the next paint
            self.probe_plot.setRange(xRange=(0.0, span), yRange=(0.0, span), padding=0.02)

    @Slot()
    def _refresh_probe_ticks(self) -> None:
        self._fit_probe_span()
        rect = self.probe_plot.getViewBox().boundingRect()
        self._probe_x_ticks.refresh(rect.width())
        self._probe_y_ticks.refresh(rect.height())

    @Slot(int)
    def set_cursor(self, t: int) -> None:
        """Select row ``t`` of the probe heatmap (the loss at step t)."""
        if int(t) == self._cursor and self._row_drawn_for is self._grad_flow:
            return  # set_result drew this row already
        self._cursor = int(t)
        if self._grad_flow is not None:
            self._draw_row()

    def selected_row(self) -> int | None:
        """The row the distance curve shows: the cursor's, T − 2 at the last character, or the
        last row with a target when the cursor's has fewer than 2 points to fit (t = 0; the
        backward side of a row before the last has two)."""
        if self._grad_flow is None:
            return None
        if self._ahead():
            T = int(self._grad_flow.shape[0])
            return None if T < 2 else min(max(self._cursor, 0), T - 2)
        return fit_row(self._grad_flow, self._cursor)

    def _ahead(self) -> bool:
        """The distance plot shows the steps ahead (k >= t): the backward direction chosen on
        a bidirectional result."""
        return self._direction == "reverse" and bool(getattr(self._result, "bidirectional", False))

    def direction(self) -> str:
        """The side the distance plot shows: "forward" (k <= t) or "reverse" (k >= t)."""
        return "reverse" if self._ahead() else "forward"

    def set_direction(self, direction: str) -> None:
        """Of a bidirectional result, the distance plot shows ``direction``'s side of G and its
        retention ("forward", or "reverse"/"backward"); kept for the next bidirectional one."""
        direction = "reverse" if direction == "backward" else direction
        if direction not in ("forward", "reverse") or direction == self._direction:
            return
        self._direction = direction
        if self._grad_flow is not None:
            self._row_drawn = None
            self._draw_row()

    def _show_row_note(self, row: int) -> None:
        T = 0 if self._grad_flow is None else int(self._grad_flow.shape[0])
        if row != self._cursor:
            note = LAST_ROW_NOTE
            if 0 <= self._cursor < T - 1:  # not the last character: nothing to fit
                note = NOTHING_TO_FIT_NOTE.format(cursor=self._cursor, row=row)
            if note != self.row_note.text():
                self.row_note.setText(note)
        if self.row_note.isHidden() == (row != self._cursor):
            self.row_note.setVisible(row != self._cursor)

    def _clear_row(self) -> None:
        self._row_drawn = None
        self._distance = (np.empty(0), np.empty(0))
        self._fit = None
        self.distance_curve.setData([], [])
        self.fit_curve.setData([], [])
        self.retention_curve.setData([], [])
        self.unit_retention_curve.setData([], [])
        self.retention_label.setVisible(False)
        self.row_marker.setVisible(False)
        self.factor_label.setText("")

    def _draw_row(self) -> None:
        assert self._grad_flow is not None
        G = self._grad_flow
        self._row_drawn_for = G
        row = self.selected_row()
        if row is None:
            self._clear_row()
            self.factor_label.setText(
                "type at least two characters: the last one has no next character to predict"
            )
            return
        ahead = self._ahead()
        T = int(G.shape[0])
        if ahead:  # the cells k = t .. T − 1
            self.row_marker.setRect(QRectF(float(row), float(row), float(T - row), 1.0))
        else:
            self.row_marker.setRect(QRectF(0.0, float(row), float(row + 1), 1.0))
        self.row_marker.setVisible(True)
        if ahead:  # d = k - t for k = t .. T - 1: the backward direction's side
            distance = np.arange(T - row, dtype=np.float64)
            values = np.asarray(G[row, row:], dtype=np.float64)
        else:
            # imported here, not at the top: core.probe pulls in torch, which the window loads
            # only after it is shown; a result to draw means torch is already there
            from rnnviz.core.probe import grad_flow_to_distance

            d, flow = grad_flow_to_distance(G, row)  # d = t - k for k = t .. 0
            distance = np.asarray(d, dtype=np.float64)
            values = np.asarray(flow, dtype=np.float64)
        drawn = (row, self._chars[row], values)
        old = self._row_drawn
        if (
            old is not None
            and old[:2] == drawn[:2]
            and np.array_equal(old[2], values, equal_nan=True)
        ):
            self._show_row_note(row)
            return  # a key typed after this row changes nothing in it
        self._row_drawn = drawn
        keep = np.isfinite(values) & (values > 0)
        self._distance = (distance[keep], values[keep])
        self.distance_curve.setData(distance[keep], values[keep])
        fit = self._fit = fit_factor(row, distance, values)
        char = theme.display_char(self._chars[row])
        # the side of G shown is said by the axis ("k − t"), the row marker on the heatmap and
        # the factor line ("steps ahead"): a title saying it overhung a third of a 1280-px dock
        axis = ("steps ahead k − t", "k − t") if ahead else ("steps back t − k", "t − k")
        if plotting.changed(self.distance_plot, "bottom name", axis):
            plotting.set_axis_label(self.distance_plot, "bottom", *axis)
        plotting.set_title(
            self.distance_plot,
            f"t = {row} ('{char}')",
            size=f"{theme.point_size():.1f}pt",
            color=theme.colours().ink,
        )
        self._show_row_note(row)
        logs = np.concatenate([np.log10(values[keep]), self._draw_retention(row)])
        if fit is None:
            self.fit_curve.setData([], [])
            self._fit_distance_range(row, distance[keep], logs)
            self._set_factor_colour("")
            self.factor_label.setText("fewer than 2 steps back to fit: type a longer text")
            return
        span = distance[keep]
        fit_logs = fit.line_log10(span)
        self.fit_curve.setData(span, 10.0**fit_logs)
        self._fit_distance_range(row, span, np.concatenate([logs, fit_logs]))
        colour = {"vanishing": VANISHING_COLOUR, "exploding": EXPLODING_COLOUR}.get(fit.verdict)
        if colour is not None:
            colour = theme.on_background(colour)  # the blue vanished on a dark window
        # steady: the label's own ink, which follows the palette
        self._set_factor_colour("" if colour is None else f"color: {colour};")
        text = fit.text()
        # the backward side's d runs ahead: the same factor, said the way its axis runs
        self.factor_label.setText(text.replace("steps back", "steps ahead") if ahead else text)

    def _draw_retention(self, row: int) -> np.ndarray:
        """The retention row of a GRU or LSTM beside the gradient's; its log10 values (for
        the plot's range), none for the plain RNN."""
        gates = None if self._result is None else getattr(self._result, "gates", None)
        if gates is None:
            for curve in (self.retention_curve, self.unit_retention_curve):
                if curve.getOriginalDataset()[0] is not None:  # not empty yet
                    curve.setData([], [])  # (~0.3 ms: not at every scrub)
            self.retention_label.setVisible(False)
            return np.empty(0)
        from rnnviz.core.gates import mean_retention_row, retention_text, unit_retention_row

        # of stacked layers, the top one's: G is of the top layer's H_k (core.probe); of two
        # directions, the one whose side of G is drawn
        direction: Direction = "reverse" if self._ahead() else "forward"
        trace = gates.trace(gates.num_layers - 1, direction)
        kept = mean_retention_row(trace.carry, row, direction)
        distance = np.arange(len(kept), dtype=np.float64)
        shown = np.isfinite(kept) & (kept > 0)
        self.retention_curve.setData(distance[shown], kept[shown])
        unit = min(self._state.unit, trace.carry.shape[1] - 1)
        own = unit_retention_row(trace.carry, row, unit, direction)
        own_shown = np.isfinite(own) & (own > 0)
        self.unit_retention_curve.setData(distance[own_shown], own[own_shown])
        text = retention_text(trace.kind, distance, kept)
        if gates.num_layers > 1:
            text += f" (top layer of {gates.num_layers})"
        if gates.bidirectional:
            text += " (backward: steps ahead)" if direction == "reverse" else " (forward)"
        self.retention_label.setText(text)
        self.retention_label.setVisible(True)
        logs: np.ndarray = np.log10(np.concatenate([kept[shown], own[own_shown]]))
        return logs

    def retention_curve_data(self, unit: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(d, mean retention) as drawn, before the log axis's transform (``unit``: the
        selected unit's)."""
        curve = self.unit_retention_curve if unit else self.retention_curve
        x, y = curve.getOriginalDataset()
        return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))

    def _fit_distance_range(self, row: int, distance: np.ndarray, logs: np.ndarray) -> None:
        """The distance plot's range, set only when it changes: x to the next of 10, 12, 15,
        20, ... steps back (``plotting.time_span``), y to whole decades around the curves (log10
        view units). Its autorange measured the curves' bounds and moved the axes at every
        keystroke, a key at the end of the text being a new row.

        While the text and the row stay, the decades only widen: scrubbing the timeline shows
        one row of one text on other models, and on fixed axes the class sees its curve move.
        Another row (a key typed at the end) keeps the decades on screen while its curves fit
        in them and fill all but ``DISTANCE_SLACK_DECADES`` of them. Each new range regenerated
        both grid axes, ~4 ms of a keystroke's or a scrub's paint."""
        # at least 10 steps: a row near the start spans 0..1, with ticks 0.2, 0.4, ... crammed
        # into a plot a few characters wide
        span = max(10, plotting.time_span(int(distance.max()) + 1 if distance.size else 1, 0.0))
        finite = logs[np.isfinite(logs)]
        lo, hi = (-1, 0)
        if finite.size:  # (a hair of slack: a fitted 10**0 is not a decade above 1)
            lo, hi = math.floor(finite.min() + 1e-6), math.ceil(finite.max() - 1e-6)
        hi = max(hi, lo + 1)
        text = "" if self._result is None else self._result.text
        held = self._distance_decades
        if held is not None and held[:2] == (text, row):
            lo, hi = min(lo, held[2]), max(hi, held[3])
        elif (
            held is not None
            and held[2] <= lo
            and hi <= held[3]
            and (held[3] - held[2]) - (hi - lo) <= DISTANCE_SLACK_DECADES
        ):
            lo, hi = held[2], held[3]
        self._distance_decades = (text, row, lo, hi)
        if plotting.changed(self.distance_plot, "range", (span, lo, hi)):
            self.distance_plot.setRange(xRange=(0, span), yRange=(lo, hi), padding=0.03)

    def _set_factor_colour(self, style: str) -> None:
        if plotting.changed(self.factor_label, "style", style):  # a style sheet restyles
            self.factor_label.label().setStyleSheet(style)

    # ------------------------------------------------------------------ training

    def _draw_key(self) -> tuple[object, ...]:
        """What the training tab draws from: the histories, the heatmap's run, the runs' names."""
        histories = self._state.histories
        names = tuple(self.run_name(r) for r in histories.run_ids())
        return histories.version(), self._heatmap_run, names

    @property
    def dirty(self) -> bool:
        """Whether the next redraw() would draw."""
        return self._draw_key() != self._drawn

    def redraw(self) -> bool:
        """Draw the training views if something changed since the last draw; True if it drew."""
        if self._heatmap_run != MAIN_RUN and not self._state.histories.has(self._heatmap_run):
            self._heatmap_run = MAIN_RUN  # its run was closed: back to the main run
        key = self._draw_key()
        if key == self._drawn:
            return False
        self._drawn = key
        self._update_run_combo()
        self._draw_training_heatmap()
        self._draw_sigma()
        return True

    @Slot()
    def _on_runs_changed(self) -> None:
        self.redraw()

    @Slot(object)
    def _on_run_info(self, _info: RunInfo) -> None:
        self.redraw()

    def _on_unit_changed(self, _unit: int) -> None:
        """The selected unit's retention follows a click anywhere (a gated model only)."""
        if self._grad_flow is not None and getattr(self._result, "gates", None) is not None:
            self._row_drawn = None  # the row's gradient is the same; its retention is not
            self._draw_row()

    def run_name(self, run_id: int) -> str:
        return self._state.run_name(run_id)

    def run_ids(self) -> list[int]:
        """The runs that have a history (0 is the main run)."""
        return self._state.histories.run_ids()

    def set_heatmap_run(self, run_id: int) -> None:
        """Which run's training flow the heatmap shows (drawn at the next redraw())."""
        self._heatmap_run = int(run_id)
        self._training_floor = None
        self._floor_for = None
        self._update_run_combo()

    @Slot(int)
    def _on_run_chosen(self, index: int) -> None:
        run_id = self.run_combo.itemData(index)
        if run_id is not None and run_id != self._heatmap_run:
            self.set_heatmap_run(int(run_id))
            self.redraw()

    def _update_run_combo(self) -> None:
        histories = self._state.histories
        with_flow = {r for r in histories.run_ids() if histories.run(r).flow is not None}
        runs = sorted(with_flow | {self._heatmap_run})
        self._page.set_runs([(rid, self.run_name(rid)) for rid in runs], self._heatmap_run)

    def training_levels(self) -> tuple[float, float]:
        """The heatmap's colour levels: log10 of a value over its step's largest."""
        floor = -1.0 if self._training_floor is None else self._training_floor
        return (floor, TRAINING_TOP)

    def empty_training_hint(self) -> str:
        """The hint the empty training heatmap shows ("" once there are steps)."""
        hint = self.empty_hint
        return str(hint.toPlainText()) if hint.isVisible() else ""

    def _draw_training_heatmap(self) -> None:
        histories, run_id = self._state.histories, self._heatmap_run
        history = histories.run(run_id) if histories.has(run_id) else None
        ring = None if history is None else history.flow
        if history is None or ring is None or ring.count == 0:
            self._training_floor = self._floor_for = None
            self._training_log = np.full((0, 0), np.nan)
            self._training_colour = np.full((0, 0), np.nan)
            self._training_steps = np.empty(0, dtype=np.int64)
            self._page.clear_heatmap(
                self.training_levels(),
                self._state.config.train.num_steps,
                empty_hint(self._state),
            )
            return
        old = self._floor_for
        if old is None or old[0] != run_id or old[1] is not history or old[2] != ring.num_steps:
            self._training_floor = None  # a new run, or a new window size: a new picture
        self._floor_for = (run_id, history, ring.num_steps)
        steps, values = ring.ordered()
        colour = column_normalised_log10(values)
        self._training_floor = flow_colour_floor(colour, self._training_floor)
        self._training_log = log10_masked(values)
        self._training_colour = colour
        self._training_steps = steps
        self._page.draw_heatmap(steps, colour, self.training_levels())

    def _draw_sigma(self) -> None:
        ids = self.run_ids()
        self._page.draw_sigma(
            {run_id: self.sigma_curve_data(run_id) for run_id in ids},
            {run_id: self.run_name(run_id) for run_id in ids},
        )

    def sigma_key_text(self) -> str:
        """The σ_max plot's key: the runs by colour and name ("" with one run)."""
        return self._page.sigma_key

    # ------------------------------------------------------------------ for tests / export

    def probe_image_array(self) -> np.ndarray:
        """(T, T) log10 G[t, k] as shown; NaN where masked (k > t, G == 0 or not finite)."""
        return self._probe_log.copy()

    def probe_image_rgba(self) -> np.ndarray | None:
        """The RGBA image pyqtgraph draws for the probe heatmap."""
        image = self.probe_image.image
        return None if image is None else np.asarray(image).copy()

    def distance_curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(d, G[t, t − d]) of the selected row, positive finite points only."""
        return self._distance[0].copy(), self._distance[1].copy()

    def factor_fit(self) -> FactorFit | None:
        return self._fit

    def factor_text(self) -> str:
        return self.factor_label.text()

    def training_image_array(self) -> np.ndarray:
        """(num_steps, n) log10 ‖∂L/∂H_t‖ of the shown run's last n steps; NaN where missing."""
        return self._training_log.copy()

    def training_colour_array(self) -> np.ndarray:
        """What the heatmap's colours show: log10 of each value over its step's largest."""
        return self._training_colour.copy()

    def training_steps(self) -> np.ndarray:
        return self._training_steps.copy()

    def training_image_rgba(self) -> np.ndarray | None:
        image = self.training_image.image
        return None if image is None else np.asarray(image).copy()

    def sigma_curve_data(self, run_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(steps, σ_max) of a run, finite values only."""
        histories = self._state.histories
        if not histories.has(run_id):  # (histories.run() would add an empty run)
            return np.empty(0), np.empty(0)
        cols = histories.metrics(run_id).columns()
        steps = np.asarray(cols["step"], dtype=np.float64)
        sigma = np.asarray(
            cols.get("w_hh_sigma_max", np.full(len(steps), np.nan)), dtype=np.float64
        )
        keep = np.isfinite(sigma) & (sigma > 0)  # a log axis takes positive values only
        return steps[keep], sigma[keep]

    def sigma_item(self, run_id: int = 0) -> pg.PlotDataItem:
        return self._page.sigma_items[run_id]
