"""The "gradient flow" dock: how far back a gradient reaches, and why.

Three views of numbers core computed:

* **Probe string** (tab 1): the matrix ``G[t, k] = ‖∂L_t/∂H_k‖`` of
  :attr:`rnnviz.core.probe.ProbeResult.grad_flow` as a heatmap on a log colour scale, with the
  characters on both axes, and for the cursor row ``t`` the curve ``G[t, t − d]`` against the
  distance ``d = t − k`` on a log axis. A geometric decay is a straight line there, so a line
  fitted to ``log10 G`` gives the *per-step factor* a lecturer points at: below 1 the
  gradient vanishes, above 1 it explodes.
* **Training** (tab 2, top): :attr:`StepRecord.grad_flow` (``‖∂L/∂H_t‖`` per position ``t`` of
  the ``num_steps`` window) against the optimizer step, a bounded ring of recent steps drawn
  as a heatmap on a log colour scale: how far back into the window any gradient signal gets.
* **Training** (tab 2, bottom): ``σ_max(W_hh)`` against the step, one curve per run, with the
  line ``σ_max = 1`` that separates "can only shrink" from "may grow".

The only arithmetic here is for display: ``log10`` of positive finite values, masking, and
``np.polyfit`` of a straight line through the logs of the selected row. NaN, inf and zeros
never reach pyqtgraph: heatmaps are turned into RGBA images (missing cells grey) and curves
keep only their positive finite points.

All methods run in the GUI thread.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from rnnviz.core.history import MetricHistory
from rnnviz.core.messages import StepRecord
from rnnviz.gui import theme
from rnnviz.gui.metric_panels import LogAxis

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# Fixed colour levels of the probe heatmap, in decades: ‖∂L_t/∂H_t‖ of the direct term is
# about 0.1 to 1; eight decades below that a gradient has vanished for any practical purpose,
# and four above it an exploding one is still told apart from a merely large one.
PROBE_LOG_LEVELS: tuple[float, float] = (-8.0, 4.0)
# The training flow is the gradient of the *mean* loss over B × num_steps predictions, so its
# scale depends on the batch and window sizes. Its colour scale spans a fixed number of decades
# below a top that is the first data's ceiling and only ever rises (until clear()): colours stay
# put while training runs, and still fit whatever batch size was chosen.
TRAINING_DECADES = 8.0
TRAINING_CAPACITY = 2000  # optimizer steps kept for the training heatmap (a ring)
SIGMA_CAPACITY = 4096  # recent steps of σ_max kept at full resolution (plus a thinned tier)
# a fitted per-step factor within 1 ± ~1% is called neither vanishing nor exploding
STEADY_LOG10_BAND = 0.005
FIT_FLOOR_LOG10 = -300.0  # 10**x underflows to 0 below about -308: a log plot cannot take 0

VANISHING_COLOUR = "#0072B2"
EXPLODING_COLOUR = theme.HIGHLIGHT
_ROW_PEN_WIDTH = 3

PROBE_PLACEHOLDER = "type a string to probe"
# a probe made while this panel was off screen (the window probes without the gradient flow
# then, and again with it as soon as the panel shows); or a text over the limit
PENDING_FLOW_PLACEHOLDER = "computing the gradient flow…"
TOO_LONG_PLACEHOLDER = (
    "no gradient flow for texts over {limit:,} characters (this one has {length:,}): "
    "shorten the probe string"
)
COLOURBAR_PROBE_LABEL = "log10 ‖∂L_t/∂H_k‖"
COLOURBAR_TRAINING_LABEL = "log10 ‖∂L/∂H_t‖"

HELP_TEXT = (
    "<b>Why σ_max(W_hh) decides between vanishing and exploding gradients</b><br><br>"
    "The gradient that reaches an earlier step k from the loss at step t passes through<br>"
    "&nbsp;&nbsp;∂H_t/∂H_k = ∏<sub>j=k+1..t</sub> diag(φ′(A_j)) W_hhᵀ,<br>"
    "a product of t − k Jacobians (A_j = X_j W_xh + H_{j−1} W_hh + b_h).<br><br>"
    "For φ = tanh, |tanh′| ≤ 1, so ‖∂H_t/∂H_k‖ ≤ σ_max(W_hh)<sup>t−k</sup>:<br>"
    "• <b>σ_max &lt; 1</b>: the product shrinks geometrically — the gradient <b>vanishes</b>; "
    "the model cannot learn what lies far back.<br>"
    "• <b>σ_max &gt; 1</b>: the product <i>can</i> grow geometrically — the gradient "
    "<b>explodes</b> — unless the tanh saturates (φ′ ≈ 0 damps it).<br>"
    "• <b>ReLU</b>: φ′ ∈ {0, 1} and no saturation, so it explodes more readily.<br><br>"
    "On the <i>Probe string</i> tab, ‖∂L_t/∂H_k‖ against the distance t − k on a log axis is a "
    "straight line when the decay is geometric; its slope is the per-step factor.<br><br>"
    "Gradient clipping rescales g to norm ≤ θ (g ← min(1, θ/‖g‖) g): it tames an exploding "
    "gradient but cannot restore one that has vanished."
)


def log10_masked(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``log10`` where a value is finite and > 0 (and ``mask`` is True), NaN elsewhere."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values) & (values > 0)
    if mask is not None:
        ok &= mask
    out = np.full(values.shape, np.nan)
    out[ok] = np.log10(values[ok])
    return out


def log_rgba(log_values: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> np.ndarray:
    """(rows, cols, 4) uint8: ``levels`` mapped onto ``cmap``, NaN cells in the missing grey.

    The image pyqtgraph gets is always finite: no NaN ever reaches it.
    """
    lo, hi = levels
    finite = np.isfinite(log_values)
    position = np.clip((np.where(finite, log_values, lo) - lo) / (hi - lo), 0.0, 1.0)
    # a 1024-entry table indexed by position: cmap.map interpolates every cell (~0.8 ms for
    # a 100 x 100 probe on each keystroke), the table lookup ~0.1 ms, and 1024 colours are
    # finer than the eye or the colour bar resolve
    lut = _lookup_table(cmap)
    rgba = lut[np.rint(position * (len(lut) - 1)).astype(np.intp)]
    missing = theme.MISSING_VALUE
    rgba[~finite] = (missing.red(), missing.green(), missing.blue(), 255)
    return rgba


_LUTS: dict[int, tuple[pg.ColorMap, np.ndarray]] = {}


def _lookup_table(cmap: pg.ColorMap) -> np.ndarray:
    """(1024, 4) uint8 colours of ``cmap`` from 0 to 1, made once per colour map."""
    entry = _LUTS.get(id(cmap))
    if entry is None or entry[0] is not cmap:
        table = np.asarray(cmap.map(np.linspace(0.0, 1.0, 1024), mode="byte"), dtype=np.uint8)
        entry = _LUTS[id(cmap)] = (cmap, table)
    return entry[1]


def pow10(exponent: float) -> float:
    """10**exponent for display: inf instead of OverflowError, 0 on underflow."""
    return math.inf if exponent > 308.0 else 10.0**exponent


@dataclass(frozen=True)
class FactorFit:
    """A straight line through ``log10 G[t, t − d]`` against ``d``: ``G ≈ a · factor**d``."""

    row: int
    slope_log10: float  # log10 of the per-step factor
    intercept_log10: float
    points: int

    @property
    def factor(self) -> float:
        return pow10(self.slope_log10)

    @property
    def verdict(self) -> str:
        if abs(self.slope_log10) < STEADY_LOG10_BAND:
            return "steady"
        return "vanishing" if self.slope_log10 < 0 else "exploding"


def fit_log_line(distance: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """(slope, intercept) of a line through log10(values) vs distance; None if < 2 points.

    Only positive finite values take part. A display fit, not model maths: it summarises a curve
    the panel already draws.
    """
    logs = log10_masked(values)
    keep = np.isfinite(logs)
    x = np.asarray(distance, dtype=np.float64)[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, logs[keep], 1)
    return float(slope), float(intercept)


def format_factor(factor: float) -> str:
    """``×0.62``; tiny or huge factors in scientific notation so they never read ``×0.00``."""
    if not math.isfinite(factor):
        return "×∞"
    if 0.01 <= factor < 100:
        return f"×{factor:.2f}"
    return f"×{factor:.1e}"


def _heatmap_plot(
    layout: pg.GraphicsLayoutWidget, row: int, col: int, **labels: str
) -> tuple[pg.PlotItem, pg.ImageItem]:
    plot: pg.PlotItem = layout.addPlot(row=row, col=col)
    theme.style_plot(plot, **labels)
    image = pg.ImageItem(axisOrder="row-major")
    plot.addItem(image)
    plot.hideButtons()
    return plot, image


def _colour_bar(
    layout: pg.GraphicsLayoutWidget, row: int, col: int, levels: tuple[float, float], label: str
) -> pg.ColorBarItem:
    bar = pg.ColorBarItem(
        values=levels,
        colorMap=theme.SEQUENTIAL,
        interactive=False,
        width=18,
        colorMapMenu=False,
    )
    theme.style_colour_bar(bar, label)
    layout.addItem(bar, row=row, col=col)
    return bar


def _log_curve(
    colour: str,
    *,
    width: float = 2.5,
    symbol: str | None = "o",
    style: Qt.PenStyle = Qt.PenStyle.SolidLine,
    name: str | None = None,
) -> pg.PlotDataItem:
    item = pg.PlotDataItem(
        pen=pg.mkPen(colour, width=width, style=style),
        symbol=symbol,
        symbolSize=7,
        symbolPen=pg.mkPen(colour),
        symbolBrush=pg.mkBrush(colour),
        name=name,
        **theme.SMOOTH,
    )
    item.setSkipFiniteCheck(True)  # sanitised before setData
    return item


class _FlowRing:
    """The last ``capacity`` steps of one run's grad_flow: a fixed (num_steps, capacity) array."""

    def __init__(self, num_steps: int, capacity: int) -> None:
        self.values = np.full((num_steps, capacity), np.nan)
        self.steps = np.zeros(capacity, dtype=np.int64)
        self.next = 0  # column the next step goes into
        self.count = 0

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def last_step(self) -> int | None:
        if self.count == 0:
            return None
        return int(self.steps[(self.next - 1) % self.values.shape[1]])

    def put(self, step: int, flow: np.ndarray) -> None:
        capacity = self.values.shape[1]
        self.values[:, self.next] = flow
        self.steps[self.next] = step
        self.next = (self.next + 1) % capacity
        self.count = min(self.count + 1, capacity)

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps (n,), values (num_steps, n)), oldest step first."""
        capacity = self.values.shape[1]
        if self.count < capacity:
            return self.steps[: self.count].copy(), self.values[:, : self.count].copy()
        order = np.r_[self.next : capacity, 0 : self.next]
        return self.steps[order], self.values[:, order]


def _no_flow_text(result: object) -> str:
    """What the probe tab says when it has no matrix to show for ``result``."""
    if result is None:
        return PROBE_PLACEHOLDER
    # a result exists, so core.probe (and torch) are loaded already
    from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS

    length = len(str(getattr(result, "text", "")))
    if length > MAX_GRAD_FLOW_CHARS:
        return TOO_LONG_PLACEHOLDER.format(limit=MAX_GRAD_FLOW_CHARS, length=length)
    return PENDING_FLOW_PLACEHOLDER


class GradFlowPanel(QWidget):
    """Gradient flow: the probe string's ‖∂L_t/∂H_k‖, the training flow, and σ_max(W_hh)."""

    def __init__(
        self, parent: QWidget | None = None, training_capacity: int = TRAINING_CAPACITY
    ) -> None:
        super().__init__(parent)
        self._training_capacity = training_capacity
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
        self._rings: dict[int, _FlowRing] = {}
        self._sigma: dict[int, MetricHistory] = {}
        self._sigma_items: dict[int, pg.PlotDataItem] = {}
        self._labels: dict[int, str] = {}
        self._heatmap_run = 0
        self._training_top: float | None = None  # top of the training colour levels (log10)
        self._training_log = np.full((0, 0), np.nan)
        self._training_steps = np.empty(0, dtype=np.int64)
        self._dirty = False

        self.tabs = QTabWidget()
        self.tabs.setObjectName("gradflow_tabs")
        self.tabs.setFont(theme.font())
        self.tabs.addTab(self._build_probe_tab(), "Probe string")
        self.tabs.addTab(self._build_training_tab(), "Training")

        self.help_button = QToolButton()
        self.help_button.setObjectName("gradflow_help")
        self.help_button.setText("?")
        self.help_button.setFont(theme.font(1.1, bold=True))
        self.help_button.setToolTip(HELP_TEXT)
        self.help_button.clicked.connect(self._on_help_clicked)
        self.tabs.setCornerWidget(self.help_button, Qt.Corner.TopRightCorner)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tabs)
        theme.cache_axes(self.probe_plots)
        self.set_result(None)

    # ------------------------------------------------------------------ building

    def _build_probe_tab(self) -> QWidget:
        self.probe_stack = QStackedWidget()
        self.probe_placeholder = QLabel(PROBE_PLACEHOLDER)
        self.probe_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.probe_placeholder.setFont(theme.font(1.3))
        self.probe_placeholder.setStyleSheet(f"color: {theme.PLACEHOLDER_INK};")
        # wrapped: an unwrapped sentence made its width the least the dock (and the tab group
        # it shares with the softmax dock) could shrink to, ~820 px
        self.probe_placeholder.setWordWrap(True)

        self.probe_plots = theme.RoomyLayoutWidget()  # three plots side by side: none cut off
        self.probe_plots.setBackground(theme.PLOT_BACKGROUND)
        self.probe_plot, self.probe_image = _heatmap_plot(
            self.probe_plots, 0, 0, left="loss at step t", bottom="source step k"
        )
        self.probe_plot.invertY(True)  # a matrix: row t = 0 at the top, lower triangle filled
        self.probe_plot.setTitle("‖∂L_t/∂H_k‖", size=f"{theme.BASE_POINT_SIZE}pt", color="#000")
        # characters while they fit, step numbers (0, 10, 20) once they would overlap
        self._probe_x_ticks = theme.TickSource(
            self.probe_plot.getAxis("bottom"), *theme.STEP_TICK_PX, numbers_when_crowded=True
        )
        self._probe_y_ticks = theme.TickSource(
            self.probe_plot.getAxis("left"),
            *theme.STEP_TICK_PX_VERTICAL,
            numbers_when_crowded=True,
        )
        self.probe_plot.getViewBox().sigResized.connect(self._refresh_probe_ticks)
        self.probe_bar = _colour_bar(
            self.probe_plots, 0, 1, PROBE_LOG_LEVELS, COLOURBAR_PROBE_LABEL
        )
        self.row_marker = QGraphicsRectItem(0.0, 0.0, 1.0, 1.0)
        pen = QPen(pg.mkColor(theme.HIGHLIGHT))
        pen.setWidth(_ROW_PEN_WIDTH)
        pen.setCosmetic(True)
        self.row_marker.setPen(pen)
        self.row_marker.setZValue(10)
        self.probe_plot.addItem(self.row_marker)

        self.distance_plot: pg.PlotItem = self.probe_plots.addPlot(row=0, col=2)
        self.distance_plot.setLogMode(x=False, y=True)
        theme.style_plot(self.distance_plot, left="‖∂L_t/∂H_k‖", bottom="steps back t − k")
        self.distance_plot.showGrid(x=True, y=True, alpha=0.3)
        # "(x0.001)" next to log ticks would make a student misread every tick
        self.distance_plot.getAxis("left").enableAutoSIPrefix(False)
        self.distance_plot.setTitle(
            "selected row t", size=f"{theme.BASE_POINT_SIZE}pt", color="#000"
        )
        self.distance_curve = _log_curve(theme.CURSOR, name="‖∂L_t/∂H_{t−d}‖")
        self.fit_curve = _log_curve(
            theme.HIGHLIGHT, width=2.0, symbol=None, style=Qt.PenStyle.DashLine, name="fitted line"
        )
        self.distance_plot.addItem(self.distance_curve)
        self.distance_plot.addItem(self.fit_curve)
        layout = self.probe_plots.ci.layout
        layout.setColumnSpacing(1, 24)  # the colour bar's label would touch the curve's axis
        layout.setColumnStretchFactor(0, 5)
        layout.setColumnStretchFactor(2, 4)

        # its text changes with every probe and cursor move: it must not re-lay out the window
        self.factor_label = theme.SteadyLabel(wrap=True)
        self.factor_label.setObjectName("gradflow_factor")
        self.factor_label.label().setFont(theme.font(1.25, bold=True))
        self.factor_label.setToolTip(
            "A straight line fitted to log10 ‖∂L_t/∂H_k‖ against t − k for the selected row: "
            "each step back multiplies the gradient by this factor."
        )

        self.row_note = QLabel(
            "the cursor is on the last character, which has no next one to predict (its row is "
            "zero): showing the row of t = T − 2"
        )
        self.row_note.setObjectName("gradflow_row_note")
        self.row_note.setFont(theme.font(0.95))
        self.row_note.setWordWrap(True)
        self.row_note.setVisible(False)

        probe_page = QWidget()
        page_layout = QVBoxLayout(probe_page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(self.probe_plots, 1)
        page_layout.addWidget(self.row_note)
        page_layout.addWidget(self.factor_label)
        self.probe_stack.addWidget(self.probe_placeholder)
        self.probe_stack.addWidget(probe_page)
        return self.probe_stack

    def _build_training_tab(self) -> QWidget:
        self.training_plots = pg.GraphicsLayoutWidget()
        self.training_plots.setBackground(theme.PLOT_BACKGROUND)
        # compact: this tab shares a dock's height between two plots, so no title (the
        # colour bar and the note below say what it is) and no x label (the σ_max plot below
        # shares the x axis and names it)
        self.training_plot, self.training_image = _heatmap_plot(
            self.training_plots, 0, 0, left="t in window"
        )
        self.training_plot.getViewBox().setToolTip(
            f"‖∂L/∂H_t‖ for each position t of the num_steps window, over the last "
            f"{self._training_capacity:,} optimizer steps (log colour scale)"
        )
        self.training_bar = _colour_bar(
            self.training_plots, 0, 1, (-TRAINING_DECADES, 0.0), COLOURBAR_TRAINING_LABEL
        )

        # log y: σ_max near 1 and an exploding one at 10⁸ in the same view
        self.sigma_plot: pg.PlotItem = self.training_plots.addPlot(
            row=1, col=0, axisItems={"left": LogAxis("left")}
        )
        self.sigma_plot.setLogMode(x=False, y=True)
        theme.style_plot(self.sigma_plot, left="σ_max", bottom="optimizer step")
        self.sigma_plot.showGrid(x=True, y=True, alpha=0.3)
        self.sigma_plot.setXLink(self.training_plot)  # one step is one x on both plots
        self.sigma_plot.setAutoVisible(y=True)
        self.sigma_plot.getViewBox().setToolTip(HELP_TEXT)
        # several runs are named in the plot's title (a legend box would hide half of
        # this short plot); one run needs no name
        self._sigma_key = ""
        self.sigma_line = pg.InfiniteLine(
            pos=0.0,  # log10(1): an InfiniteLine's position is in view units
            angle=0,
            pen=pg.mkPen(theme.MUTED, width=2, style=Qt.PenStyle.DashLine),
            label="σ_max = 1",
            labelOpts={"position": 0.05, "color": "#555555", "anchors": [(0, 1), (0, 1)]},
        )
        self.sigma_line.label.setFont(theme.font())
        self.sigma_line.setZValue(-10)
        self.sigma_plot.addItem(self.sigma_line)
        # keeps y = 1 inside the auto range, so the σ_max = 1 line is always in view
        self.sigma_anchor = pg.PlotDataItem(pen=None)
        self.sigma_plot.addItem(self.sigma_anchor)
        for plot in (self.training_plot, self.sigma_plot):
            plot.getAxis("left").setWidth(theme.LEFT_AXIS_WIDTH)
        layout = self.training_plots.ci.layout
        layout.setRowStretchFactor(0, 1)
        layout.setRowStretchFactor(1, 1)

        self.run_combo = QComboBox()
        self.run_combo.setObjectName("gradflow_run")
        self.run_combo.setFont(theme.font())
        self.run_combo.setToolTip("Which run the heatmap shows")
        self.run_combo.currentIndexChanged.connect(self._on_run_chosen)
        self.training_note = QLabel(
            "top: ‖∂L/∂H_t‖ per window position t; dark: it hardly gets there"
        )
        self.training_note.setFont(theme.font(0.95))
        self.training_note.setWordWrap(True)
        row = QHBoxLayout()
        self.run_label = QLabel("heatmap of run:")
        self.run_label.setFont(theme.font())
        row.addWidget(self.run_label)
        row.addWidget(self.run_combo)
        row.addWidget(self.training_note, 1)
        self._update_run_combo()

        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(self.training_plots, 1)
        page_layout.addLayout(row)
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
            self.probe_placeholder.setText(_no_flow_text(result))
            self.probe_stack.setCurrentWidget(self.probe_placeholder)
            return
        G = np.asarray(flow, dtype=np.float64)
        T = G.shape[0]
        self._grad_flow = G
        text = str(getattr(result, "text", ""))
        self._chars = list(text[:T]) + ["?"] * max(0, T - len(text))
        lower = np.tril(np.ones(G.shape, dtype=bool))  # k <= t
        self._probe_log = log10_masked(G, lower)
        self.probe_image.setImage(
            log_rgba(self._probe_log, PROBE_LOG_LEVELS, theme.SEQUENTIAL), autoLevels=False
        )
        self.probe_image.setRect(QRectF(0.0, 0.0, float(T), float(T)))
        self._probe_x_ticks.set_chars(self._chars)
        self._probe_y_ticks.set_chars(self._chars)
        self._refresh_probe_ticks()  # fits the span too
        self.probe_stack.setCurrentIndex(1)
        self._draw_row()

    def _fit_probe_span(self) -> None:
        """The whole matrix in view, over theme.time_span steps; a zoom in is kept while the
        span stays."""
        if self._grad_flow is None:
            return
        view = self.probe_plot.getViewBox().boundingRect()
        span = theme.time_span(len(self._grad_flow), min(view.width(), view.height()))
        if theme.changed(self.probe_plot, "span", span):
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
        """The row the distance curve shows: the cursor, or T − 2 at the last character."""
        if self._grad_flow is None:
            return None
        T = int(self._grad_flow.shape[0])
        if T < 2:
            return None
        return min(max(self._cursor, 0), T - 2)

    def _clear_row(self) -> None:
        self._row_drawn = None
        self._distance = (np.empty(0), np.empty(0))
        self._fit = None
        self.distance_curve.setData([], [])
        self.fit_curve.setData([], [])
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
        self.row_marker.setRect(QRectF(0.0, float(row), float(row + 1), 1.0))
        self.row_marker.setVisible(True)
        # imported here, not at the top: core.probe pulls in torch, which the window loads
        # only after it is shown; a result to draw means torch is already there
        from rnnviz.core.probe import grad_flow_to_distance

        d, values = grad_flow_to_distance(G, row)  # d = t - k for k = t .. 0
        distance = np.asarray(d, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        drawn = (row, self._chars[row], values)
        old = self._row_drawn
        if (
            old is not None
            and old[:2] == drawn[:2]
            and np.array_equal(old[2], values, equal_nan=True)
        ):
            self.row_note.setVisible(row != self._cursor)
            return  # a key typed after this row changes nothing in it
        self._row_drawn = drawn
        keep = np.isfinite(values) & (values > 0)
        self._distance = (distance[keep], values[keep])
        self.distance_curve.setData(distance[keep], values[keep])
        fitted = fit_log_line(distance, values)
        char = theme.display_char(self._chars[row])
        theme.set_title(
            self.distance_plot,
            f"row t = {row} ('{char}')",
            size=f"{theme.BASE_POINT_SIZE}pt",
            color="#000",
        )
        self.row_note.setVisible(row != self._cursor)
        logs = np.log10(values[keep])
        if fitted is None:
            self._fit = None
            self.fit_curve.setData([], [])
            self._fit_distance_range(distance[keep], logs)
            self._set_factor_colour("")
            self.factor_label.setText("fewer than 2 steps back to fit: move the cursor right")
            return
        slope, intercept = fitted
        self._fit = FactorFit(
            row=row, slope_log10=slope, intercept_log10=intercept, points=int(keep.sum())
        )
        span = distance[keep]
        fit_logs = np.clip(intercept + slope * span, FIT_FLOOR_LOG10, -FIT_FLOOR_LOG10)
        self.fit_curve.setData(span, 10.0**fit_logs)
        self._fit_distance_range(span, np.concatenate([logs, fit_logs]))
        verdict = self._fit.verdict
        colour = {"vanishing": VANISHING_COLOUR, "exploding": EXPLODING_COLOUR}.get(
            verdict, "#000000"
        )
        self._set_factor_colour(f"color: {colour};")
        self.factor_label.setText(
            f"per-step factor {format_factor(self._fit.factor)} ({verdict})"
            f"  ·  10 steps back ×{pow10(10 * slope):.2g}"
        )

    def _fit_distance_range(self, distance: np.ndarray, logs: np.ndarray) -> None:
        """The distance plot's range, set only when it changes: x to the next of 10, 12, 15,
        20, ... steps back (``theme.time_span``), y to whole decades around the curves (log10
        view units). Its autorange measured the curves' bounds and moved the axes at every
        keystroke, a key at the end of the text being a new row (py-spy: ~10 % of a key's
        samples; the panel alone, set and painted per key: 23 -> 6 ms of CPU)."""
        # at least 10 steps: a row near the start spans 0..1, with ticks 0.2, 0.4, ... crammed
        # into a plot a few characters wide
        span = max(10, theme.time_span(int(distance.max()) + 1 if distance.size else 1, 0.0))
        finite = logs[np.isfinite(logs)]
        lo, hi = (-1, 0)
        if finite.size:  # (a hair of slack: a fitted 10**0 is not a decade above 1)
            lo, hi = math.floor(finite.min() + 1e-6), math.ceil(finite.max() - 1e-6)
        hi = max(hi, lo + 1)
        if theme.changed(self.distance_plot, "range", (span, lo, hi)):
            self.distance_plot.setRange(xRange=(0, span), yRange=(lo, hi), padding=0.03)

    def _set_factor_colour(self, style: str) -> None:
        if theme.changed(self.factor_label, "style", style):  # a style sheet restyles
            self.factor_label.label().setStyleSheet(style)

    # ------------------------------------------------------------------ training

    def append(self, records: Sequence[StepRecord], run_id: int = 0) -> None:
        """Take a batch of step records of run ``run_id`` (drawn at the next redraw())."""
        if not records:
            return
        ring = self._rings.get(run_id)
        for record in records:
            flow = np.asarray(record.grad_flow, dtype=np.float64).ravel()
            if flow.size:
                last = None if ring is None else ring.last_step
                # a new window size, or a step that goes back (rollback): a new picture
                if (
                    ring is None
                    or ring.num_steps != flow.size
                    or (last is not None and record.step <= last)
                ):
                    ring = _FlowRing(flow.size, self._training_capacity)
                    self._rings[run_id] = ring
                    if run_id == self._heatmap_run:
                        self._training_top = None
                ring.put(int(record.step), flow)
        history = self._sigma.get(run_id)
        if history is None:
            history = self._sigma[run_id] = MetricHistory(capacity=SIGMA_CAPACITY)
        history.append(records)
        self._update_run_combo()
        self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def redraw(self) -> bool:
        """Draw the training views if something changed since the last draw; True if it drew."""
        if not self._dirty:
            return False
        self._dirty = False
        self._draw_training_heatmap()
        self._draw_sigma()
        return True

    def clear(self, run_id: int | None = None) -> None:
        """Forget the training data of every run (``run_id`` None, e.g. on RunInfo) or one run."""
        ids = set(self._rings) | set(self._sigma) if run_id is None else {run_id}
        for rid in ids:
            self._rings.pop(rid, None)
            self._sigma.pop(rid, None)
            item = self._sigma_items.pop(rid, None)
            if item is not None:
                self.sigma_plot.removeItem(item)
        if run_id is None or run_id == self._heatmap_run:
            self._training_top = None
        self._update_run_combo()
        self._dirty = True
        self.redraw()

    def remove_run(self, run_id: int) -> None:
        """A run was closed: its data, its name, and the heatmap back to the main run."""
        self._labels.pop(run_id, None)
        if run_id == self._heatmap_run and run_id != 0:
            self._heatmap_run = 0
        self.clear(run_id)

    def set_run_label(self, run_id: int, label: str) -> None:
        """Name a run in the σ_max key and the heatmap's run list ("" for the default)."""
        if self._labels.get(run_id, "") == label:
            return
        self._labels[run_id] = label
        self._update_run_combo(force=True)
        self._dirty = True

    def run_name(self, run_id: int) -> str:
        return self._labels.get(run_id) or ("main" if run_id == 0 else f"run {run_id}")

    def truncate_after(self, run_id: int, step: int) -> None:
        """Forget a run's steps after ``step`` (a rollback abandoned them)."""
        history = self._sigma.get(run_id)
        if history is not None and len(history):
            steps = history.recent(1)["step"]
            if len(steps) and int(steps[-1]) > step:
                history.truncate_after(step)
                self._dirty = True
        ring = self._rings.get(run_id)
        if ring is not None and ring.last_step is not None and ring.last_step > step:
            kept_steps, kept = ring.ordered()
            fresh = _FlowRing(ring.num_steps, self._training_capacity)
            for column in np.flatnonzero(kept_steps <= step):
                fresh.put(int(kept_steps[column]), kept[:, column])
            self._rings[run_id] = fresh
            self._dirty = True

    def set_heatmap_run(self, run_id: int) -> None:
        self._heatmap_run = int(run_id)
        self._training_top = None
        self._update_run_combo()
        self._dirty = True

    @Slot(int)
    def _on_run_chosen(self, index: int) -> None:
        run_id = self.run_combo.itemData(index)
        if run_id is not None and run_id != self._heatmap_run:
            self.set_heatmap_run(int(run_id))
            self.redraw()

    def _update_run_combo(self, force: bool = False) -> None:
        runs = sorted(set(self._rings) | {self._heatmap_run})
        several = len(runs) > 1
        self.run_combo.setVisible(several)
        self.run_label.setVisible(several)
        current = [self.run_combo.itemData(i) for i in range(self.run_combo.count())]
        if force or current != runs:
            self.run_combo.blockSignals(True)
            self.run_combo.clear()
            for rid in runs:
                self.run_combo.addItem(self.run_name(rid), rid)
            self.run_combo.blockSignals(False)
        self.run_combo.setCurrentIndex(runs.index(self._heatmap_run))

    def training_levels(self) -> tuple[float, float]:
        top = 0.0 if self._training_top is None else self._training_top
        return (top - TRAINING_DECADES, top)

    def _draw_training_heatmap(self) -> None:
        ring = self._rings.get(self._heatmap_run)
        if ring is None or ring.count == 0:
            self._training_log = np.full((0, 0), np.nan)
            self._training_steps = np.empty(0, dtype=np.int64)
            self.training_image.clear()
            return
        steps, values = ring.ordered()
        logs = log10_masked(values)
        if np.isfinite(logs).any():
            top = float(math.ceil(np.nanmax(logs)))
            if self._training_top is None or top > self._training_top:
                self._training_top = top
        levels = self.training_levels()
        self.training_bar.setLevels(levels)
        self._training_log = logs
        self._training_steps = steps
        self.training_image.setImage(log_rgba(logs, levels, theme.SEQUENTIAL), autoLevels=False)
        self.training_image.setRect(
            QRectF(float(steps[0]), 0.0, float(len(steps)), float(ring.num_steps))
        )
        theme.set_ticks(self.training_plot.getAxis("left"), theme.number_ticks(ring.num_steps, 4))

    def _draw_sigma(self) -> None:
        x_lo, x_hi = math.inf, -math.inf
        for run_id in self._sigma:
            steps, sigma = self.sigma_curve_data(run_id)
            item = self._sigma_items.get(run_id)
            if item is None:
                colour = theme.RUN_COLOURS[run_id % len(theme.RUN_COLOURS)]
                item = _log_curve(colour, width=2.0, symbol=None)
                item.setDownsampling(auto=True, method="peak")
                item.setClipToView(True)
                self._sigma_items[run_id] = item
                self.sigma_plot.addItem(item)
            item.setData(steps, sigma)
            if len(steps):
                x_lo, x_hi = min(x_lo, float(steps[0])), max(x_hi, float(steps[-1]))
        self._draw_sigma_key()
        if x_lo <= x_hi:
            self.sigma_anchor.setData([x_lo, x_hi], [1.0, 1.0])
        else:
            self.sigma_anchor.setData([], [])

    def _draw_sigma_key(self) -> None:
        runs = sorted(self._sigma_items)
        key = ""
        if len(runs) > 1:
            key = "σ_max(W_hh): " + " &nbsp; ".join(
                f"<span style='color:{theme.RUN_COLOURS[rid % len(theme.RUN_COLOURS)]}'>"
                f"━━ <b>{html.escape(self.run_name(rid))}</b></span>"
                for rid in runs
            )
        if key != self._sigma_key:
            self._sigma_key = key
            self.sigma_plot.setTitle(key or None, size=f"{theme.BASE_POINT_SIZE}pt", color="#000")

    def sigma_key_text(self) -> str:
        """The σ_max plot's key: the runs by colour and name ("" with one run)."""
        return self._sigma_key

    # ------------------------------------------------------------------ help

    @Slot()
    def _on_help_clicked(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Gradient flow: vanishing and exploding")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(HELP_TEXT)
        box.setFont(theme.font())
        box.open()
        self._help_box = box

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

    def training_steps(self) -> np.ndarray:
        return self._training_steps.copy()

    def training_image_rgba(self) -> np.ndarray | None:
        image = self.training_image.image
        return None if image is None else np.asarray(image).copy()

    def sigma_curve_data(self, run_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(steps, σ_max) of a run, finite values only."""
        history = self._sigma.get(run_id)
        if history is None:
            return np.empty(0), np.empty(0)
        cols = history.columns()
        steps = np.asarray(cols["step"], dtype=np.float64)
        sigma = np.asarray(
            cols.get("w_hh_sigma_max", np.full(len(steps), np.nan)), dtype=np.float64
        )
        keep = np.isfinite(sigma) & (sigma > 0)  # a log axis takes positive values only
        return steps[keep], sigma[keep]

    def sigma_item(self, run_id: int = 0) -> pg.PlotDataItem:
        return self._sigma_items[run_id]

    def run_ids(self) -> list[int]:
        return sorted(set(self._rings) | set(self._sigma))
