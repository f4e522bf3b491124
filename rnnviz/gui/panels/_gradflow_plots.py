"""Drawing helpers of the gradient-flow panel: its colour scales, texts, heatmap images, plot
items, and its training page, which draws what the panel decided (the run, the colour levels).
Not a panel: only rnnviz.gui.panels.gradflow imports it.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from rnnviz.gui import plotting, theme
from rnnviz.gui.panels._metric_base import EMPTY_HINT
from rnnviz.gui.plotting import LogAxis
from rnnviz.gui.state.histories import FLOW_CAPACITY

# Fixed colour levels of the probe heatmap, in decades: ‖∂L_t/∂H_t‖ of the direct term is
# about 0.1 to 1; eight decades below that a gradient has vanished for any practical purpose,
# and four above it an exploding one is still told apart from a merely large one.
PROBE_LOG_LEVELS: tuple[float, float] = (-8.0, 4.0)
# The training flow's colours are each step's ‖∂L/∂H_t‖ relative to that step's largest
# (core.analysis.column_normalised_log10), from a robust floor (flow_colour_floor) up to 0: on
# a fixed eight-decade scale tanh on the built-in corpus, which spans ~0.2 decades across the
# window, was one flat colour. The overall size of the gradient is the gradient norm plot's.
TRAINING_TOP = 0.0

VANISHING_COLOUR = "#0072B2"
EXPLODING_COLOUR = theme.HIGHLIGHT

PROBE_PLACEHOLDER = "type a string to probe"
# a probe made while this panel was off screen (the window probes without the gradient flow
# then, and again with it as soon as the panel shows); or a text over the limit
PENDING_FLOW_PLACEHOLDER = "computing the gradient flow…"
TOO_LONG_PLACEHOLDER = (
    "no gradient flow for texts over {limit:,} characters (this one has {length:,}): "
    "shorten the probe string"
)
COLOURBAR_PROBE_LABEL = "log10 ‖∂L_t/∂H_k‖"
COLOURBAR_TRAINING_LABEL = "log10 (‖∂L/∂H_t‖ / max)"  # max: of its step (it must fit)
TRAINING_TIP = (
    "‖∂L/∂H_t‖ for each position t of the num_steps window, over the last "
    f"{FLOW_CAPACITY:,} optimizer steps. Colour: log10 of each value over its step's largest "
    "(0 = where that step's gradient is largest; the darkest colour is the 2nd percentile), so "
    "how far back into the window the gradient reaches shows whatever its overall size"
)
TRAINING_NOTE = "colour: ‖∂L/∂H_t‖ per window position t, relative to the step's largest"
EMPTY_TRAINING_STEPS = 10  # the empty step axis spans 0..10 (it showed −0.5..0.5)
EMPTY_SIGMA_RANGE = (-0.5, 0.5)  # log10 σ_max: 0.3..3 around the σ_max = 1 line

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
    "straight line when the decay is geometric; its slope is the per-step factor. With the "
    "cursor on a row with nothing to fit (t = 0), it shows the last row with a target.<br><br>"
    "On the <i>Training</i> tab, the heatmap's colour is ‖∂L/∂H_t‖ at each window position t "
    "divided by that step's largest value (log10; 0 at the top of the colour bar): it shows "
    "where in the window each step's gradient is, not how large it is (see the gradient norm "
    "plot for that).<br><br>"
    "Gradient clipping rescales g to norm ≤ θ (g ← min(1, θ/‖g‖) g): it tames an exploding "
    "gradient but cannot restore one that has vanished."
)


def log_rgba(log_values: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> np.ndarray:
    """(rows, cols, 4) uint8: ``levels`` mapped onto ``cmap``, NaN cells in the missing grey.

    The image pyqtgraph gets is always finite: no NaN ever reaches it.
    """
    lo, hi = levels
    finite = np.isfinite(log_values)
    position = np.clip((np.where(finite, log_values, lo) - lo) / (hi - lo), 0.0, 1.0)
    # a 1024-entry table indexed by position: cmap.map interpolates every cell on each
    # keystroke, a lookup is several times cheaper, and 1024 colours are finer than the eye
    # or the colour bar resolve
    lut = _lookup_table(cmap)
    rgba = lut[np.rint(position * (len(lut) - 1)).astype(np.intp)]
    missing = QColor(theme.colours().missing)
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


def heatmap_plot(
    layout: pg.GraphicsLayoutWidget, row: int, col: int, **labels: str
) -> tuple[pg.PlotItem, pg.ImageItem]:
    plot: pg.PlotItem = layout.addPlot(row=row, col=col)
    plotting.style_plot(plot, **labels)
    image = pg.ImageItem(axisOrder="row-major")
    plot.addItem(image)
    plot.hideButtons()
    return plot, image


def colour_bar(
    layout: pg.GraphicsLayoutWidget, row: int, col: int, levels: tuple[float, float], label: str
) -> pg.ColorBarItem:
    bar = pg.ColorBarItem(
        values=levels,
        colorMap=theme.SEQUENTIAL,
        interactive=False,
        width=18,
        colorMapMenu=False,
    )
    plotting.style_colour_bar(bar, label)
    layout.addItem(bar, row=row, col=col)
    return bar


def log_curve(
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
        **plotting.SMOOTH,
    )
    item.setSkipFiniteCheck(True)  # sanitised before setData
    return item


def no_flow_text(result: object) -> str:
    """What the probe tab says when it has no matrix to show for ``result``."""
    if result is None:
        return PROBE_PLACEHOLDER
    # a result exists, so core.probe (and torch) are loaded already
    from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS

    length = len(str(getattr(result, "text", "")))
    if length > MAX_GRAD_FLOW_CHARS:
        return TOO_LONG_PLACEHOLDER.format(limit=MAX_GRAD_FLOW_CHARS, length=length)
    return PENDING_FLOW_PLACEHOLDER


class TrainingPage(QWidget):
    """The "Training" tab: the flow heatmap over σ_max(W_hh), and the run to show.

    The panel chooses the run and the colour levels; the page draws them.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.training_plots = pg.GraphicsLayoutWidget()
        scheme = theme.colours()  # taken when built, as every widget's
        self.training_plots.setBackground(scheme.plot_background)
        # compact: this tab shares a dock's height between two plots, so no title (the
        # colour bar and the note below say what it is) and no x label (the σ_max plot below
        # shares the x axis and names it)
        self.training_plot, self.training_image = heatmap_plot(
            self.training_plots, 0, 0, left="t in window"
        )
        self.training_plot.getViewBox().setToolTip(TRAINING_TIP)
        self.training_bar = colour_bar(
            self.training_plots, 0, 1, (-1.0, TRAINING_TOP), COLOURBAR_TRAINING_LABEL
        )
        # before the first step, in the empty heatmap (kept out of its auto range)
        self.empty_hint = pg.TextItem(EMPTY_HINT, color=scheme.placeholder_ink, anchor=(0.5, 0.5))
        self.empty_hint.setFont(theme.font())
        self.training_plot.addItem(self.empty_hint, ignoreBounds=True)

        # log y: σ_max near 1 and an exploding one at 10⁸ in the same view
        self.sigma_plot: pg.PlotItem = self.training_plots.addPlot(
            row=1, col=0, axisItems={"left": LogAxis("left")}
        )
        self.sigma_plot.setLogMode(x=False, y=True)
        plotting.style_plot(self.sigma_plot, left="σ_max", bottom="optimizer step")
        self.sigma_plot.showGrid(x=True, y=True, alpha=0.3)
        self.sigma_plot.setXLink(self.training_plot)  # one step is one x on both plots
        self.sigma_plot.setAutoVisible(y=True)
        self.sigma_plot.getViewBox().setToolTip(HELP_TEXT)
        self.sigma_line = pg.InfiniteLine(
            pos=0.0,  # log10(1): an InfiniteLine's position is in view units
            angle=0,
            pen=pg.mkPen(theme.MUTED, width=2, style=Qt.PenStyle.DashLine),
            label="σ_max = 1",
            labelOpts={
                "position": 0.05,
                "color": scheme.secondary_ink,
                "anchors": [(0, 1), (0, 1)],
            },
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
        self.training_note = QLabel(TRAINING_NOTE)
        self.training_note.setToolTip(TRAINING_TIP)
        self.training_note.setFont(theme.font(0.95))
        self.training_note.setWordWrap(True)
        row = QHBoxLayout()
        self.run_label = QLabel("heatmap of run:")
        self.run_label.setFont(theme.font())
        row.addWidget(self.run_label)
        row.addWidget(self.run_combo)
        row.addWidget(self.training_note, 1)

        page_layout = QVBoxLayout(self)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.addWidget(self.training_plots, 1)
        page_layout.addLayout(row)
        self.sigma_items: dict[int, pg.PlotDataItem] = {}
        self.sigma_key = ""

    # ------------------------------------------------------------------ drawing

    def set_runs(self, runs: list[tuple[int, str]], current: int) -> None:
        """The runs the heatmap can show, (run_id, name); the chooser only with several."""
        several = len(runs) > 1
        self.run_combo.setVisible(several)
        self.run_label.setVisible(several)
        combo = self.run_combo
        listed = [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count())]
        if listed != runs:
            combo.blockSignals(True)
            combo.clear()
            for rid, name in runs:
                combo.addItem(name, rid)
            combo.blockSignals(False)
        combo.setCurrentIndex([rid for rid, _ in runs].index(current))

    def clear_heatmap(self, levels: tuple[float, float], rows: int, hint: str) -> None:
        """No steps: the hint, and a small fixed range (the last run's stayed, or −0.5..0.5)."""
        if plotting.changed(self.empty_hint, "text", hint):
            self.empty_hint.setText(hint)
        self.training_image.clear()
        plotting.set_colour_bar_levels(self.training_bar, levels)
        if not plotting.changed(self.training_plot, "empty", rows):
            return
        self.empty_hint.setVisible(True)
        steps = float(EMPTY_TRAINING_STEPS)
        self.training_plot.setRange(xRange=(0.0, steps), yRange=(0.0, float(rows)), padding=0.02)
        self.sigma_plot.setYRange(*EMPTY_SIGMA_RANGE, padding=0.02)
        self.empty_hint.setPos(steps / 2, rows / 2)
        plotting.set_ticks(self.training_plot.getAxis("left"), plotting.number_ticks(rows, 4))

    def draw_heatmap(
        self, steps: np.ndarray, colour_logs: np.ndarray, levels: tuple[float, float]
    ) -> None:
        """``colour_logs`` (rows = window positions, one column per step in ``steps``)."""
        if plotting.changed(self.training_plot, "empty", None):  # the first steps
            self.empty_hint.setVisible(False)
            self.training_plot.enableAutoRange()
            self.sigma_plot.enableAutoRange(y=True)
        rows = int(colour_logs.shape[0])
        plotting.set_colour_bar_levels(self.training_bar, levels)
        self.training_image.setImage(
            log_rgba(colour_logs, levels, theme.SEQUENTIAL), autoLevels=False
        )
        self.training_image.setRect(QRectF(float(steps[0]), 0.0, float(len(steps)), float(rows)))
        plotting.set_ticks(self.training_plot.getAxis("left"), plotting.number_ticks(rows, 4))

    def draw_sigma(
        self, curves: dict[int, tuple[np.ndarray, np.ndarray]], names: dict[int, str]
    ) -> None:
        """σ_max(W_hh) per run: (steps, σ_max) by run id, positive finite values only."""
        for gone in [r for r in self.sigma_items if r not in curves]:
            self.sigma_plot.removeItem(self.sigma_items.pop(gone))
        x_lo, x_hi = math.inf, -math.inf
        for run_id, (steps, sigma) in curves.items():
            item = self.sigma_items.get(run_id)
            if item is None:
                item = log_curve(theme.run_colour(run_id), width=2.0, symbol=None)
                item.setDownsampling(auto=True, method="peak")
                item.setClipToView(True)
                self.sigma_items[run_id] = item
                self.sigma_plot.addItem(item)
            item.setData(steps, sigma)
            if len(steps):
                x_lo, x_hi = min(x_lo, float(steps[0])), max(x_hi, float(steps[-1]))
        if x_lo <= x_hi:
            self.sigma_anchor.setData([x_lo, x_hi], [1.0, 1.0])
        else:
            self.sigma_anchor.setData([], [])
        # several runs are named in the plot's title (a legend box would hide half of this
        # short plot); one run needs no name
        runs = sorted(self.sigma_items)
        key = ""
        if len(runs) > 1:
            key = "σ_max(W_hh): " + " &nbsp; ".join(
                f"<span style='color:{theme.run_colour(rid)}'>"
                f"━━ <b>{html.escape(names.get(rid, str(rid)))}</b></span>"
                for rid in runs
            )
        if key != self.sigma_key:
            self.sigma_key = key
            self.sigma_plot.setTitle(
                key or None, size=f"{theme.point_size():.1f}pt", color=theme.colours().ink
            )
