"""The gate-saturation panel: every unit of every gate placed by how often it is saturated.

Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015),
figure 3: one scatter per sigmoid gate (LSTM i, f, o; GRU r, z), one dot per hidden unit, at
x = the fraction of steps the gate is left-saturated (< 0.1), y = the fraction it is
right-saturated (> 0.9), on a batch of validation text. A dot near the top left is a gate
almost always open, near the bottom right almost always shut, at the origin never saturated;
x + y <= 1, the dashed diagonal being "saturated at every step". Behind each dot its trail,
the positions of a few earlier models, fading with age.

The panel draws a ``gui.state.saturation_worker.SaturationResult`` and its trail; it computes
nothing. A click on a dot selects that unit (``unit_selected``), ``set_unit`` never emits.
For the plain RNN (scratch, fast) it says what it is for instead of an empty plot. Of a
stacked GRU/LSTM the dots are one layer's, chosen in its layer selector (the top one first,
as in the hidden-state panel); ``layer_chosen`` lets the window move the other panels' layer
with it. Of a bidirectional one a direction selector picks the forward or the backward
recurrence's gates (each its own weights, so its own saturation); ``direction_chosen`` moves
the other panels' direction with it. Every method runs in the GUI thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from rnnviz.gui import exports, plotting, theme
from rnnviz.gui.panels._probe_common import graphics_with_placeholder, readout_label
from rnnviz.gui.widgets import direction_value, fill_layers, select_data, selector

if TYPE_CHECKING:
    from rnnviz.gui.state.saturation_worker import SaturationResult

GATES: dict[str, tuple[str, ...]] = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}
ROLES: dict[str, str] = {
    "i": "input gate",
    "f": "forget gate",
    "o": "output gate",
    "r": "reset gate",
    "z": "update gate",
}
# the hidden-state panel's colour of each gate (Okabe-Ito): the gate on the carried state
# (the LSTM's f, the GRU's z) vermillion in both models
GATE_COLOURS: dict[str, str] = {
    "i": theme.RUN_COLOURS[2],  # bluish green
    "f": theme.RUN_COLOURS[5],  # vermillion
    "o": theme.RUN_COLOURS[3],  # reddish purple
    "r": theme.RUN_COLOURS[3],
    "z": theme.RUN_COLOURS[5],
}
# the gate whose right saturation keeps the carried state: c_{t-1} (LSTM f), h_{t-1} (GRU z)
CARRY_GATE = {"lstm": "f", "gru": "z"}
ALL = "all"  # the selector's first entry: every gate side by side
INTEGRATOR_SHARE = 0.9  # "almost always" saturated, in the readout's words
DOT_PX = 9
RING_PX = 20
PICK_PX = 14  # a click this close to a dot selects its unit
DOT_ALPHA = 200
TRAIL_ALPHA = 150  # the newest trail segment's; older ones fade towards 0
TRAIL_PX = 2.0
RANGE = (-0.04, 1.04)
TICKS = [(0.0, "0"), (0.5, "0.5"), (1.0, "1")]
# axis names are rich text: "<" must be written as an entity. The x name is one for the row
# (a label under it, as wide as all plots); the y name is on the first plot's axis.
X_LABEL = "fraction of steps left-saturated (&lt; 0.1)"
Y_LABEL = ("fraction right-saturated (&gt; 0.9)", "right-sat. (&gt; 0.9)")
LEFT_AXIS_PX = 10  # a plot's y axis after the first: the line and its ticks, no numbers

PLAIN_MESSAGE = (
    "Gate saturation is for gated models: choose GRU or LSTM as the model in the Controls "
    "(or start with --set model.kind=lstm). The plain RNN has no gates."
)
WAITING_MESSAGE = "each gate's saturation appears here as training makes snapshots: press Play"


class _GatePlot:
    """One gate's scatter: the dots, their trails, the selected unit's ring and name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.plot = pg.PlotItem()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setXRange(*RANGE, padding=0)
        self.plot.setYRange(*RANGE, padding=0)
        self.plot.getViewBox().setDefaultPadding(0)
        self.plot.getViewBox().enableAutoRange(enable=False)
        colour = GATE_COLOURS[name]
        self.diagonal = pg.PlotCurveItem(
            [0.0, 1.0], [1.0, 0.0], pen=pg.mkPen(theme.MUTED, width=1.5, style=Qt.PenStyle.DashLine)
        )
        self.plot.addItem(self.diagonal)
        self.trails: list[pg.PlotCurveItem] = []
        self._trail_count = 0
        self.dots = pg.ScatterPlotItem(size=DOT_PX, pen=None, brush=_alpha(colour, DOT_ALPHA))
        self.dots.setZValue(5)
        self.plot.addItem(self.dots)
        self.ring = pg.ScatterPlotItem(size=RING_PX, brush=None)
        self.ring.setZValue(8)
        self.plot.addItem(self.ring)
        self.label = pg.TextItem(anchor=(0.0, 1.0))
        self.label.setFont(theme.font(0.9, bold=True))
        self.label.setZValue(9)
        self.plot.addItem(self.label)
        # the gate's name in the top right corner, above the diagonal, where no dot can be
        # (x + y <= 1): no title row taking the plots' height
        self.name_label = pg.TextItem(color=colour, anchor=(1.0, 0.0))
        self.name_label.setFont(theme.font(1.0, bold=True))
        self.name_label.setPos(RANGE[1], RANGE[1])
        self.plot.addItem(self.name_label)
        self._names = (f"{name}: {ROLES[name]}", f"{name}: {ROLES[name].split()[0]}", name)
        self.plot.getViewBox().sigResized.connect(self.fit_name)
        self.fit_name()
        self.x = np.zeros(0)
        self.y = np.zeros(0)
        plotting.style_plot(self.plot)
        for side in ("bottom", "left"):
            plotting.set_ticks(self.plot.getAxis(side), TICKS)
        self.recolour()

    def fit_name(self) -> None:
        """The gate's name, shorter in a narrow plot: "f: forget gate", "f: forget", "f"."""
        room = 0.75 * self.plot.getViewBox().width()
        metrics = QFontMetricsF(self.name_label.textItem.font())
        text = next(
            (t for t in self._names if metrics.horizontalAdvance(t) <= room), self._names[-1]
        )
        if room <= 1:  # not laid out yet
            text = self._names[0]
        if text != self.name_label.toPlainText():
            self.name_label.setText(text)

    def set_first(self, first: bool) -> None:
        """The row's first plot has the y axis's numbers and name; the others share them."""
        axis = self.plot.getAxis("left")
        axis.setStyle(showValues=first)
        axis.setWidth(None if first else LEFT_AXIS_PX)
        plotting.set_axis_label(self.plot, "left", *(Y_LABEL if first else ("",)))

    def recolour(self) -> None:
        scheme = theme.colours()
        self.ring.setPen(pg.mkPen(scheme.cursor, width=2.5))
        self.label.setColor(scheme.ink)

    def set_trail_count(self, count: int) -> None:
        """``count`` trail segments per unit, the newest the most opaque."""
        if count == self._trail_count:
            return
        self._trail_count = count
        while len(self.trails) < count:
            curve = pg.PlotCurveItem(connect="pairs")
            curve.setZValue(2)
            self.plot.addItem(curve)
            self.trails.append(curve)
        colour = GATE_COLOURS[self.name]
        for age, curve in enumerate(self.trails, start=1):
            if age > count:
                curve.setData([], [])
                continue
            alpha = int(TRAIL_ALPHA * (count + 1 - age) / count)
            curve.setPen(pg.mkPen(_alpha(colour, alpha), width=TRAIL_PX))

    def show(
        self, x: np.ndarray, y: np.ndarray, trail: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> None:
        """Dots at (x, y); ``trail`` the earlier positions, oldest first."""
        self.x, self.y = x, y
        self.dots.setData(x, y)
        self.set_trail_count(len(trail))
        newer = (x, y)
        for curve, older in zip(self.trails, reversed(trail), strict=False):
            xs = np.empty(2 * len(x))
            ys = np.empty(2 * len(x))
            xs[0::2], xs[1::2] = older[0], newer[0]
            ys[0::2], ys[1::2] = older[1], newer[1]
            curve.setData(xs, ys, connect="pairs")
            newer = older

    def clear(self) -> None:
        self.x = self.y = np.zeros(0)
        self.dots.setData([], [])
        self.ring.setData([], [])
        self.label.setText("")
        self.set_trail_count(0)

    def mark(self, unit: int) -> None:
        if not 0 <= unit < len(self.x):
            self.ring.setData([], [])
            self.label.setText("")
            return
        x, y = float(self.x[unit]), float(self.y[unit])
        self.ring.setData([x], [y])
        self.label.setText(f" unit {unit}")
        # the name inside the square: left of the ring near the right edge, below it near the top
        self.label.setAnchor((1.0 if x > 0.6 else 0.0, 0.0 if y > 0.85 else 1.0))
        self.label.setPos(x, y)

    def nearest(self, scene_pos: QPointF) -> int | None:
        """The unit whose dot is within PICK_PX of ``scene_pos``, the nearest; None if none."""
        view = self.plot.getViewBox()
        if not len(self.x) or not view.sceneBoundingRect().contains(scene_pos):
            return None
        p = view.mapSceneToView(scene_pos)
        px_w, px_h = view.viewPixelSize()
        if px_w <= 0 or px_h <= 0:
            return None
        d2 = ((self.x - p.x()) / px_w) ** 2 + ((self.y - p.y()) / px_h) ** 2
        d2 = np.where(np.isfinite(d2), d2, np.inf)
        unit = int(np.argmin(d2))
        return unit if d2[unit] <= PICK_PX**2 else None

    def scene_pos_of(self, unit: int) -> QPointF:
        """The scene position of ``unit``'s dot (tests click there)."""
        pos: QPointF = self.plot.getViewBox().mapViewToScene(
            QPointF(float(self.x[unit]), float(self.y[unit]))
        )
        return pos


def _alpha(colour: str, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


def _percent(share: float) -> str:
    return "–" if not np.isfinite(share) else f"{100 * share:.0f} %"


class SaturationPanel(QWidget):
    unit_selected = Signal(int)
    export_failed = Signal(str)
    layer_chosen = Signal(int)  # the user chose a stacked layer (from 0); set_layer is silent
    direction_chosen = Signal(str)  # "forward" | "reverse"; set_direction is silent

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._kind = ""
        self._result: SaturationResult | None = None
        self._trail: tuple[SaturationResult, ...] = ()
        self._unit = 0
        self._hover: tuple[str, int] | None = None
        self._choice = ALL
        self._on_screen = True  # the window clears it while the dock is behind a tab
        self._plots: dict[str, _GatePlot] = {}
        self._readout = readout_label()
        self._gate_label = QLabel("show")
        self._gate_label.setFont(theme.font())
        self._gate_box = QComboBox()
        self._gate_box.setFont(theme.font())
        self._gate_box.setToolTip("every gate side by side, or one gate large")
        self._gate_label.setBuddy(self._gate_box)
        self._layer = -1  # the stacked layer shown; -1: the top one, whatever the depth
        self._layers = 1
        self._layer_box = selector(
            "saturation_layer_box",
            "which of the stacked layers' gates the dots are: layer 1 reads the characters, "
            "each layer above the h_t of the one below",
        )
        self._layer_box.currentIndexChanged.connect(self._on_layer_chosen)
        self._direction = "forward"  # kept for the next bidirectional model
        self._direction_box = selector(
            "saturation_direction_box",
            "which direction of a bidirectional model the dots are: the forward recurrence "
            "or the backward one (from the text's end), each with its own gates",
            (("forward", "forward"), ("backward", "reverse")),
        )
        self._direction_box.currentIndexChanged.connect(self._on_direction_chosen)
        top = QHBoxLayout()
        top.addWidget(self._readout, 1)
        top.addWidget(self._direction_box)
        top.addWidget(self._layer_box)
        top.addWidget(self._gate_label)
        top.addWidget(self._gate_box)
        self._stack, self._graphics = graphics_with_placeholder(self, WAITING_MESSAGE)
        placeholder = self._stack.widget(0)
        assert isinstance(placeholder, QLabel)
        self._placeholder = placeholder
        self._x_label = pg.LabelItem(
            X_LABEL, size=f"{theme.point_size():.1f}pt", color=theme.colours().ink
        )
        scene = self._graphics.scene()
        scene.sigMouseClicked.connect(self._on_click)
        scene.sigMouseMoved.connect(self._on_move)
        exports.guard_exports(self._graphics, self.export_failed.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self._stack, 1)
        self._gate_box.currentIndexChanged.connect(self._on_gate_chosen)
        self.set_kind("fast")

    # ---------------------------------------------------------------- from the window

    def set_kind(self, kind: str) -> None:
        """The run's model kind: its gates' plots, or the plain RNN's sentence."""
        if kind == self._kind:
            return
        self._kind = kind
        self._result, self._trail, self._hover = None, (), None
        names = GATES.get(kind, ())
        self._gate_box.blockSignals(True)
        self._gate_box.clear()
        if names:
            self._gate_box.addItem("all gates", ALL)
            for name in names:
                self._gate_box.addItem(f"{name}: {ROLES[name]}", name)
            if self._choice not in names:
                self._choice = ALL
            self._gate_box.setCurrentIndex(max(0, self._gate_box.findData(self._choice)))
        self._gate_box.blockSignals(False)
        self._gate_label.setVisible(bool(names) and self._layers == 1)
        self._gate_box.setVisible(bool(names))
        for name in names:
            if name not in self._plots:
                self._plots[name] = _GatePlot(name)
        self._place()
        plotting.cache_axes(self._graphics)
        self._draw()

    def show_saturation(
        self, result: SaturationResult | None, trail: Sequence[SaturationResult] = ()
    ) -> None:
        """``result`` (None: nothing yet) and the results of earlier steps, oldest first."""
        if result is not None and result.kind != self._kind:
            self.set_kind(result.kind)
        if result is not None:
            self._set_layers(len(result.layers))
            self._set_bidirectional(result.bidirectional)
        self._result = result
        units = None if result is None else result.units
        depth = None if result is None else len(result.layers)
        both = None if result is None else result.bidirectional
        self._trail = tuple(
            r
            for r in trail
            if r.kind == self._kind
            and r.units == units
            and len(r.layers) == depth
            and r.bidirectional == both
        )
        self._draw()

    def show_failure(self, text: str) -> None:
        """Why there is nothing to show (the validation text could not be read, say)."""
        self._result, self._trail, self._hover = None, (), None
        for plot in self._plots.values():
            plot.clear()
        self._placeholder.setText(f"The gate saturation could not be computed: {text}")
        self._stack.setCurrentIndex(0)
        self._update_readout()

    def set_unit(self, unit: int) -> None:
        """Select a unit (silent: no unit_selected)."""
        self._unit = max(0, int(unit))
        for plot in self._shown_plots():
            plot.mark(self._unit)
        self._update_readout()

    def unit(self) -> int:
        return self._unit

    def on_screen(self) -> bool:
        """Shown and not behind another dock's tab (the window says which: ``set_on_screen``)."""
        return self.isVisible() and self._on_screen

    def set_on_screen(self, shown: bool) -> None:
        self._on_screen = bool(shown)

    def recolour(self) -> None:
        """The selected unit's ring and name in the scheme in use."""
        for plot in self._plots.values():
            plot.recolour()

    def layer(self) -> int:
        """The stacked layer shown, from 0 (the bottom one); 0 for a one-layer model."""
        return self._layers - 1 if self._layer < 0 else self._layer

    def set_layer(self, layer: int) -> None:
        """Show stacked layer ``layer`` (0: the bottom one), as the selector does (silent);
        kept for a deeper model when this one has fewer layers."""
        self._layer = max(0, int(layer))
        if self._layer < self._layers:
            select_data(self._layer_box, self._layer)
        self._hover = None
        self._draw()

    def layer_selector(self) -> QComboBox:
        """The selector of the stacked layer shown: visible only for more than one layer."""
        return self._layer_box

    def _set_layers(self, layers: int) -> None:
        if layers == self._layers:
            return
        self._layers = layers
        fill_layers(self._layer_box, layers, self.layer())
        # "show" gives its width to the layer selector: the readout keeps its three lines
        self._gate_label.setVisible(layers == 1 and bool(self.gates()))

    def _on_layer_chosen(self, index: int) -> None:
        if index >= 0:
            self.set_layer(int(self._layer_box.itemData(index)))
            self.layer_chosen.emit(self._layer)

    def _gates_of(self, result: SaturationResult) -> Mapping[str, Any]:
        """The saturation of the layer and direction shown."""
        return result.layer(self.layer(), self.direction())

    def _set_bidirectional(self, bidirectional: bool) -> None:
        if self._direction_box.isHidden() == bidirectional:
            self._direction_box.setVisible(bidirectional)
        # "show" gives its width to the selectors: the readout keeps its three lines
        self._gate_label.setVisible(self._layers == 1 and not bidirectional and bool(self.gates()))

    def direction(self) -> str:
        """The direction shown: "forward", or "reverse" of a bidirectional result."""
        both = self._result is not None and self._result.bidirectional
        return self._direction if both else "forward"

    def set_direction(self, direction: str) -> None:
        """Show ``direction`` ("forward", or "reverse"/"backward"), as the selector does
        (silent); kept for the next bidirectional result while this one has one direction."""
        value = direction_value(direction)
        if value is None:
            return
        self._direction = value
        select_data(self._direction_box, value)
        self._hover = None
        self._draw()

    def direction_selector(self) -> QComboBox:
        """The selector of the direction shown: visible only for a bidirectional result."""
        return self._direction_box

    def _on_direction_chosen(self, index: int) -> None:
        if index >= 0:
            self.set_direction(str(self._direction_box.itemData(index)))
            self.direction_chosen.emit(self._direction)

    # ---------------------------------------------------------------- what tests read

    def gates(self) -> tuple[str, ...]:
        """The gates of the model's kind; () for the plain RNN."""
        return GATES.get(self._kind, ())

    def shown_gates(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._shown_plots())

    def dots(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) of every unit's dot of gate ``name``, as drawn."""
        x, y = self._plots[name].dots.getData()
        return np.asarray(x), np.asarray(y)

    def trail_segments(self, name: str) -> int:
        """How many trail segments each unit of ``name`` has on screen."""
        return sum(1 for c in self._plots[name].trails if c.xData is not None and len(c.xData))

    def scene_pos_of(self, name: str, unit: int) -> QPointF:
        return self._plots[name].scene_pos_of(unit)

    def graphics(self) -> pg.GraphicsLayoutWidget:
        return self._graphics

    def message(self) -> str:
        """The sentence shown instead of the plots ("" while they show)."""
        return self._placeholder.text() if self._stack.currentIndex() == 0 else ""

    def readout_text(self) -> str:
        return self._readout.text()

    def choose_gate(self, name: str) -> None:
        """Show one gate (``ALL``: every gate), as the selector does."""
        index = self._gate_box.findData(name)
        if index >= 0:
            self._gate_box.setCurrentIndex(index)

    # ---------------------------------------------------------------- drawing

    def _shown_plots(self) -> list[_GatePlot]:
        names = self.gates()
        if self._choice != ALL and self._choice in names:
            names = (self._choice,)
        return [self._plots[n] for n in names]

    def _place(self) -> None:
        layout = self._graphics.ci
        layout.clear()
        shown = self._shown_plots()
        for col, plot in enumerate(shown):
            layout.addItem(plot.plot, row=0, col=col)
            plot.set_first(col == 0)
        if shown:
            layout.addItem(self._x_label, row=1, col=0, colspan=len(shown))

    def _draw(self) -> None:
        names = self.gates()
        if not names:
            self._placeholder.setText(PLAIN_MESSAGE)
            self._stack.setCurrentIndex(0)
            self._update_readout()
            return
        result = self._result
        if result is None:
            for plot in self._plots.values():
                plot.clear()
            self._placeholder.setText(WAITING_MESSAGE)
            self._stack.setCurrentIndex(0)
            self._update_readout()
            return
        self._stack.setCurrentIndex(1)
        for plot in self._shown_plots():
            sat = self._gates_of(result)[plot.name]
            trail = [
                (self._gates_of(r)[plot.name].left, self._gates_of(r)[plot.name].right)
                for r in self._trail
            ]
            plot.show(np.asarray(sat.left), np.asarray(sat.right), trail)
            plot.mark(self._unit)
        self._update_readout()

    def _update_readout(self) -> None:
        result = self._result
        if not self.gates():
            self._readout.setText("")
            return
        if result is None:
            self._readout.setText(
                "One dot per hidden unit: how often each gate is shut (&lt; 0.1, right) or "
                "open (&gt; 0.9, up) on validation text."
            )
            return
        self._readout.setToolTip(
            f"read on {result.rows} validation sequences of {result.num_steps} characters: "
            "x = the fraction of steps the gate is below 0.1, y = above 0.9"
        )
        if self._hover is not None:
            name, unit = self._hover
            if 0 <= unit < result.units:
                sat = self._gates_of(result)[name]
                left, right = float(sat.left[unit]), float(sat.right[unit])
                words = _verdict(self._kind, name, left, right)
                self._readout.setText(
                    f"<b>unit {unit}</b>, {name}: {_percent(left)} of steps &lt; 0.1, "
                    f"{_percent(right)} &gt; 0.9" + (f" — <i>{words}</i>" if words else "")
                )
                return
        unit = self._unit
        if not 0 <= unit < result.units:
            self._readout.setText(f"step {result.step:,}: no unit {unit} in this model")
            return
        parts, verdicts = [], []
        for name in result.names:
            sat = self._gates_of(result)[name]
            left, right = float(sat.left[unit]), float(sat.right[unit])
            parts.append(f"{name} ({left:.2f}, {right:.2f})")
            words = _verdict(self._kind, name, left, right)
            if words:
                verdicts.append(f"{name}: <i>{words}</i>")
        # the layer is the selector's beside it: a longer readout wraps over the plots
        self._readout.setText(
            f"<b>unit {unit}</b>, step {result.step:,}: "
            + " · ".join(parts)
            + (" — " + "; ".join(verdicts) if verdicts else "")
        )

    # ---------------------------------------------------------------- the mouse

    def _pick(self, scene_pos: QPointF) -> tuple[str, int] | None:
        if self._result is None:
            return None
        for plot in self._shown_plots():
            unit = plot.nearest(scene_pos)
            if unit is not None:
                return plot.name, unit
        return None

    def _on_click(self, event: object) -> None:
        picked = self._pick(event.scenePos())  # type: ignore[attr-defined]
        if picked is None:
            return
        self._hover = None
        self.set_unit(picked[1])
        self.unit_selected.emit(picked[1])

    def _on_move(self, scene_pos: QPointF) -> None:
        picked = self._pick(scene_pos)
        if picked != self._hover:
            self._hover = picked
            self._update_readout()

    def _on_gate_chosen(self, index: int) -> None:
        data = self._gate_box.itemData(index)
        if isinstance(data, str) and data != self._choice:
            self._choice = data
            self._hover = None
            self._place()
            self._draw()


def _verdict(kind: str, name: str, left: float, right: float) -> str:
    """What an extreme position of the carry gate means (the help says why)."""
    if name != CARRY_GATE.get(kind):
        return ""
    if right >= INTEGRATOR_SHARE:
        return "an integrator: it keeps its state"
    if left >= INTEGRATOR_SHARE:
        return "forgets at once" if kind == "lstm" else "replaced at every step"
    return ""
