"""The hidden-states panel: a heatmap of H_t (units × time steps) and one unit's trace.

The panel draws a ``core.probe.ProbeResult``; it computes nothing from the model. Plot items
are created once in ``__init__`` (a gate's curve at its first use) and updated with
``setImage`` / ``setData``; the heatmap has fixed colour levels, so the same activation has
the same colour in every probe while training goes on. Every method runs in the GUI thread;
``set_cursor`` / ``set_unit`` / ``set_layer`` never emit, so wiring panels to each other
cannot loop.

For a GRU or LSTM a selector picks what the heatmap shows (``LAYERS``): H_t, the LSTM's cell
C_t, or one gate (``core.gates``: LSTM i f g o, GRU r z n), and the selected unit's strip draws
every one of them over t. A new result draws only the layer shown and the unit's curves.
Of stacked layers (a GRU's, an LSTM's gate record, a scratch RNN's ``layer_hidden``) a second
selector picks the layer; choosing one emits ``depth_chosen`` (``set_depth`` is silent), and
the window moves the step view's and the saturation scatter's layer with it. Of a
bidirectional model a third one picks the direction (forward, backward), emitting
``direction_chosen`` (``set_direction`` is silent): the window moves the step view's, the
saturation scatter's and the gradient-flow panel's with it. Each is shown only for a result
that has a choice.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import plotting, theme
from rnnviz.gui.exports import guard_exports
from rnnviz.gui.panels._probe_common import (
    PLACEHOLDER,
    Heatmap,
    clamp,
    graphics_with_placeholder,
    quoted,
    readout_label,
)
from rnnviz.gui.widgets import direction_value, fill_layers, select_data, selector

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# the trace marks each step with a dot up to this many steps
TRACE_DOTS_MAX_STEPS = 60
# below this height of the plots' area only the heatmap shows (two plots in less were two
# strips of axes about 25 px tall, on a 1920x1080 screen at QT_SCALE_FACTOR=2)
BOTH_PLOTS_MIN_PX = 240

# what the heatmap can show, by model kind: PyTorch's letters (core.gates), "h" for H_t
LAYERS: dict[str, tuple[str, ...]] = {
    "lstm": ("h", "c", "i", "f", "g", "o"),
    "gru": ("h", "r", "z", "n"),
}
PLAIN_LAYERS: tuple[str, ...] = ("h",)
# the name on the colour bar, the selector and the unit's legend: d2l's capitals for the
# states, PyTorch's letters for the gates
SYMBOLS: dict[str, str] = {
    "h": "H_t",
    "c": "C_t",
    "i": "i_t",
    "f": "f_t",
    "g": "g_t",
    "o": "o_t",
    "r": "r_t",
    "z": "z_t",
    "n": "n_t",
}
ROLES: dict[str, str] = {
    "h": "hidden state",
    "c": "cell state",
    "i": "input gate",
    "f": "forget gate",
    "g": "candidate cell",
    "o": "output gate",
    "r": "reset gate",
    "z": "update gate",
    "n": "candidate",
}
# one Okabe-Ito colour per name, the same in every model: H keeps the trace's blue, the gate on
# the carried state (the LSTM's f, the GRU's z) is vermillion in both
_CURVE_COLOURS: dict[str, str] = {
    "h": theme.RUN_COLOURS[0],  # blue
    "c": theme.RUN_COLOURS[1],  # orange
    "i": theme.RUN_COLOURS[2],  # bluish green
    "f": theme.RUN_COLOURS[5],  # vermillion
    "g": theme.RUN_COLOURS[4],  # sky blue
    "o": theme.RUN_COLOURS[3],  # reddish purple
    "r": theme.RUN_COLOURS[3],
    "z": theme.RUN_COLOURS[5],
    "n": theme.RUN_COLOURS[4],
}
CELL_AXIS_FLOOR = 0.1  # the C_t axis of a unit whose cell stays near 0 still has a scale
SHOWN_CURVE_PX = 3.0  # the unit's curve of the layer in the heatmap
OTHER_CURVE_PX = 1.6  # the unit's other curves


# the "?" of the panel's title bar (panels.help)
HELP_TEXT = (
    "The hidden state <b>H<sub>t</sub> = φ(X<sub>t</sub> W<sub>xh</sub> + "
    "H<sub>t−1</sub> W<sub>hh</sub> + b<sub>h</sub>)</b> after each character of the "
    "probe string: one row per unit, one column per step t, on fixed colour levels (−1 to "
    "1 for tanh). Click a row to trace that unit over time and colour the text by it.<br><br>"
    "For a GRU or an LSTM, the selector at the top picks H<sub>t</sub>, the LSTM's cell state "
    "C<sub>t</sub> or one gate, in PyTorch's letters (LSTM i, f, g, o; GRU r, z, n): sigmoid "
    "gates on 0 to 1, tanh values on −1 to 1, C<sub>t</sub> symmetric around 0. The unit's "
    "strip draws them all, C<sub>t</sub> on its own axis at the right.<br><br>"
    "The GRU shown is PyTorch's, which applies the reset gate <i>after</i> the product with "
    "W<sub>hn</sub>: <b>n<sub>t</sub> = tanh(x<sub>t</sub> W<sub>in</sub> + b<sub>in</sub> + "
    "r<sub>t</sub> ⊙ (h<sub>t−1</sub> W<sub>hn</sub> + b<sub>hn</sub>))</b>. d2l's candidate "
    "is tanh(X<sub>t</sub> W<sub>xh</sub> + (R<sub>t</sub> ⊙ H<sub>t−1</sub>) W<sub>hh</sub> "
    "+ b<sub>h</sub>), the reset gate <i>before</i> it: another function of the same weights. "
    "The update h<sub>t</sub> = (1 − z<sub>t</sub>) ⊙ n<sub>t</sub> + z<sub>t</sub> ⊙ "
    "h<sub>t−1</sub> is the same in both.<br><br>"
    "A forget gate almost always right-saturated (f<sub>t</sub> &gt; 0.9 at nearly every step) "
    "keeps its cell from step to step: that unit is an <b>integrator</b>, it adds up what "
    "i<sub>t</sub> ⊙ g<sub>t</sub> writes and remembers it far back."
)

LEGEND_SCALE = 0.9  # the strip's key, a little under the text size
LEGEND_LINE = "━━"  # a curve's sample in its key
# the gap between the plots' column and the colour bar's, set rather than left to the style:
# QGraphicsGridLayout.horizontalSpacing() asks the style it cached, and View > Colours
# replaces the application's style (a resize between the two read freed memory: a crash)
COLUMN_GAP_PX = 6.0


def _set_title(plot: pg.PlotItem, title: str | None, scale: float) -> None:
    """``plot``'s title at ``scale`` times the text size, or none."""
    if not plotting.changed(plot, "title", (title, scale, theme.zoom(), theme.colours().ink)):
        return
    if title is None:
        plot.setTitle(None)
        plot.titleLabel.setText("")  # a hidden title's text still sets the plot's minimum width
    else:
        plot.setTitle(title, size=f"{theme.point_size(scale):.1f}pt", color=theme.colours().ink)


def _legend_fits(text: str, length: float) -> bool:
    font = theme.font(LEGEND_SCALE)
    return QFontMetricsF(font).horizontalAdvance(text) + 8 <= length


# the direction selector's entries: (label, the probe's name of it, tooltip); "backward" is
# the word of d2l 10.4, "reverse" PyTorch's (its tensors' _reverse)
DIRECTION_CHOICES: tuple[tuple[str, str, str], ...] = (
    ("forward", "forward", "reads the text from its first character"),
    ("backward", "reverse", "reads the text from its last character (PyTorch's _reverse)"),
)
DIRECTION_WORDS = {"forward": "forward", "reverse": "backward"}


def layers_of(result: ProbeResult | None) -> tuple[str, ...]:
    """What the heatmap can show for ``result``: H_t alone for the plain RNN."""
    if result is None or result.gates is None:
        return PLAIN_LAYERS
    return LAYERS[result.gates.kind]


def depths_of(result: ProbeResult) -> int:
    """How many stacked layers ``result``'s model has."""
    if result.gates is not None:
        return result.gates.num_layers
    return 1 if result.layer_hidden is None else len(result.layer_hidden)


def curve_colour(name: str) -> str:
    return _CURVE_COLOURS[name]


def _symmetric_levels(levels: tuple[float, float]) -> tuple[float, float]:
    """(-m, m) to the next 1-2-5 value: C_t has no bound, and levels rounded up stay put (and
    the colours with them) while a keystroke moves its largest value a little."""
    from rnnviz.core.probe import nice_ceiling  # torch is loaded once there is a result

    top = nice_ceiling(max(abs(levels[0]), abs(levels[1])))
    return (-top, top)


class HiddenStatesPanel(QWidget):
    """Heatmap of the hidden state H_t: units (rows) × time steps (columns), fixed levels.

    Clicking a cell selects its unit (``unit_selected``) and asks to move the time cursor
    there (``cursor_requested``); the selected unit's trace over t is drawn below. For a GRU
    or LSTM the selector shows C_t or a gate instead of H_t, and the trace draws all of them.
    """

    unit_selected = Signal(int)
    export_failed = Signal(str)  # a plot's context-menu export failed (why)
    cursor_requested = Signal(int)
    depth_chosen = Signal(int)  # the user chose a stacked layer (from 0); set_depth is silent
    # the user chose a direction ("forward" | "reverse"); set_direction is silent
    direction_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._unit = 0
        self._layer = "h"  # kept across results while the model has it
        self._layers: tuple[str, ...] = PLAIN_LAYERS

        self._readout = readout_label()
        # no "show:" before it: the readout beside it needs the room on a 1280-px screen
        self._layer_box = QComboBox()
        self._layer_box.setFont(theme.font())
        self._layer_box.setToolTip(
            "what the heatmap shows: the hidden state, the LSTM's cell state, or one gate "
            "(PyTorch's letters); the unit's strip below draws them all"
        )
        self._layer_box.hide()
        # of stacked layers (d2l 10.3): which layer's H_t, C_t and gates; the top one first
        self._depth = -1  # the layer shown; -1: the top one, whatever the model's depth
        self._depths = 1
        self._depth_box = selector(
            "hidden_depth_box",
            "which of the stacked layers the heatmap and the strip show: layer 1 reads the "
            "characters, each layer above reads the H_t of the one below, and the output "
            "layer reads the top one",
        )
        self._depth_box.currentIndexChanged.connect(self._on_depth_chosen)
        # of a bidirectional model (d2l 10.4): which direction's states and gates; forward
        # first, the one a one-direction model has
        self._direction = "forward"
        self._bidirectional = False
        self._direction_box = selector(
            "hidden_direction_box",
            "which direction of a bidirectional model the heatmap and the strip show: the "
            "forward one reads the text from its start, the backward one from its end; the "
            "output layer reads both, side by side",
            tuple((label, value) for label, value, _ in DIRECTION_CHOICES),
        )
        for index, (_, _, tip) in enumerate(DIRECTION_CHOICES):
            self._direction_box.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        self._direction_box.currentIndexChanged.connect(self._on_direction_chosen)
        top = QHBoxLayout()
        top.addWidget(self._readout, 1)
        top.addWidget(self._direction_box)
        top.addWidget(self._depth_box)
        top.addWidget(self._layer_box)
        self._stack, self._graphics = graphics_with_placeholder(
            self, f"{PLACEHOLDER}: its hidden states H_t appear here"
        )
        guard_exports(self._graphics, self.export_failed.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self._stack, 1)

        self._heatmap = Heatmap(
            self._graphics,
            0,
            cmap=theme.DIVERGING,
            levels=(-1.0, 1.0),
            bar_label="H_t",
            left=("hidden unit", "unit"),
            bottom=("time step t (character)", "t"),
        )
        self.plot_item = self._heatmap.plot
        self.image_item = self._heatmap.image
        self.colour_bar = self._heatmap.bar
        self.cursor_line = self._heatmap.cursor_line
        self.missing_rect = self._heatmap.missing_rect
        self._title: tuple[str, ...] = ()  # the heatmap's title and its shorter forms
        self._legends: tuple[tuple[str, str], ...] = ()  # the strip's key: (rich, plain) forms
        self.unit_box = QGraphicsRectItem()
        unit_pen = pg.mkPen(theme.colours().cursor, width=2.5, style=Qt.PenStyle.DashLine)
        unit_pen.setCosmetic(True)
        self.unit_box.setPen(unit_pen)
        self.unit_box.setZValue(9)
        self.unit_box.hide()
        self.plot_item.addItem(self.unit_box)

        self.trace_plot: pg.PlotItem = self._graphics.addPlot(row=1, col=0)
        self.trace_plot.setXLink(self.plot_item)
        self.trace_plot.setMouseEnabled(x=False, y=False)
        self.trace_plot.setMenuEnabled(False)
        self.trace_plot.hideButtons()
        self.trace_plot.addItem(
            pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen(theme.MUTED, width=1))
        )
        # the unit's curve of each name; "h" is the plain RNN's one trace
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.trace_curve = self._curve("h")
        self.trace_curve.setSymbol("o")
        self.trace_cursor_line = pg.InfiniteLine(
            pos=0.5, angle=90, movable=False, pen=pg.mkPen(theme.colours().cursor, width=2)
        )
        self.trace_plot.addItem(self.trace_cursor_line)
        plotting.style_plot(self.trace_plot, left="H_t[0]", bottom=("time step t (character)", "t"))
        # the LSTM's C_t has no bound: its curve has a scale of its own, on the strip's right
        # axis, so that the gates' 0 to 1 keep the strip's height
        self._cell_view = pg.ViewBox(enableMenu=False)
        self._cell_view.setMouseEnabled(x=False, y=False)
        self._cell_view.setXLink(self.trace_plot)
        self._cell_view.hide()
        self._graphics.scene().addItem(self._cell_view)
        # placed by hand under the colour bar: an axis of the strip's own would narrow its
        # view, and its steps would no longer sit under the heatmap's columns
        self.cell_axis = pg.AxisItem("right")
        self.cell_axis.linkToView(self._cell_view)
        self.cell_axis.setTickFont(theme.font())
        self.cell_axis.setPen(theme.colours().ink)
        self.cell_axis.setTextPen(theme.colours().ink)
        self.cell_axis.setStyle(autoReduceTextSpace=False)
        self.cell_axis.enableAutoSIPrefix(False)
        self.cell_axis.hide()
        self._graphics.scene().addItem(self.cell_axis)
        self.trace_plot.getViewBox().sigResized.connect(self._place_cell_view)
        self.trace_plot.geometryChanged.connect(self._place_cell_view)  # moved, not resized
        self._cell_axis_shown = False
        # the same left-axis width keeps the trace's steps under the heatmap's columns
        for plot in (self.plot_item, self.trace_plot):
            plot.getAxis("left").setWidth(theme.LEFT_AXIS_WIDTH)
        self._trace_x_ticks = plotting.TickSource(
            self.trace_plot.getAxis("bottom"), *plotting.STEP_TICK_PX, numbers_when_crowded=True
        )
        self._set_row_stretch()
        self._graphics.ci.layout.setHorizontalSpacing(COLUMN_GAP_PX)
        self._trace_shown = True
        self._graphics.installEventFilter(self)

        scene = self._graphics.scene()
        scene.sigMouseClicked.connect(self._on_scene_clicked)
        scene.sigMouseMoved.connect(self._on_scene_mouse_moved)
        self.plot_item.getViewBox().sigResized.connect(self._on_view_resized)
        self._layer_box.currentIndexChanged.connect(self._on_layer_chosen)
        plotting.cache_axes(self._graphics)
        self.set_result(None)

    # -- public API
    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:  # the selector and its choice stay for the next result
            self._heatmap.clear()
            for curve in self._curves.values():
                curve.setData([], [])
            self.unit_box.hide()
            self._readout.setText("")
            self._stack.setCurrentIndex(0)
            return
        self._set_layers(layers_of(result))
        self._set_depths(depths_of(result))
        self._set_bidirectional(result.bidirectional)
        self._stack.setCurrentIndex(1)
        self._heatmap.x_ticks.set_chars(result.text)
        self._heatmap.y_ticks.set_count(result.hidden.shape[1])
        self._trace_x_ticks.set_chars(result.text)
        self._cursor = clamp(self._cursor, len(result.text))
        self._draw()
        self._on_view_resized()  # the trace's ticks for this text (not only on a resize)
        self._readout.setText("click a row to trace that unit")

    def set_cursor(self, t: int) -> None:
        length = 0 if self._result is None else len(self._result.text)
        self._cursor = clamp(int(t), length)
        self._heatmap.set_cursor(self._cursor)
        self.trace_cursor_line.setPos(self._cursor + 0.5)

    def set_unit(self, unit: int) -> None:
        """Select a unit row (silent: no unit_selected)."""
        self._unit = max(0, int(unit))
        if self._result is not None:
            self._draw_unit()

    def unit(self) -> int:
        return self._unit

    def set_layer(self, name: str) -> bool:
        """Show ``name`` (``LAYERS``; "h" is H_t) in the heatmap, as the selector does (silent).
        False, and nothing changes, if the result shown has no such layer; before any result
        the choice is kept for the first one that has it."""
        if self._result is None and name in SYMBOLS:
            self._layer = name
            self._select_entry()
            return True
        if name not in self._layers:
            return False
        self._choose(name)
        return True

    def layer(self) -> str:
        """What the heatmap shows: "h" (H_t), "c" (C_t) or a gate's letter."""
        return self._layer

    def layers(self) -> tuple[str, ...]:
        """What the selector offers for the result shown (("h",) for the plain RNN)."""
        return self._layers

    def layer_selector(self) -> QComboBox:
        """The selector of what the heatmap shows: visible only for a GRU or an LSTM."""
        return self._layer_box

    def heatmap_title(self) -> str:
        """The heatmap's title as shown ("" for none)."""
        text: str = self.plot_item.titleLabel.text if self.plot_item.titleLabel.isVisible() else ""
        return text

    def bar_label(self) -> str:
        """The colour bar's name (its short name where the long one does not fit)."""
        label: str = self.colour_bar.getAxis("right").labelText
        return label

    def displayed_array(self) -> np.ndarray | None:
        """What the heatmap draws: the shown layer transposed (H, T), None when cleared."""
        image: np.ndarray | None = self.image_item.image
        return image

    def displayed_levels(self) -> tuple[float, float]:
        levels = self.image_item.getLevels()
        return float(levels[0]), float(levels[1])

    def trace_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The selected unit's curve of the layer shown."""
        return self.unit_curve_data(self._layer)

    def unit_curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The selected unit's curve of ``name`` (empty arrays where none is drawn)."""
        curve = self._curves.get(name)
        if curve is None or not curve.isVisible():
            return np.array([]), np.array([])
        x, y = curve.getData()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)

    def unit_curves(self) -> tuple[str, ...]:
        """The names of the unit's curves on screen, in the legend's order."""
        return tuple(name for name in self._layers if self._curves[name].isVisible())

    def unit_legend(self) -> str:
        """The unit strip's legend (its title) as rich text; "" for the plain RNN."""
        if not self.trace_plot.titleLabel.isVisible():
            return ""
        text: str = self.trace_plot.titleLabel.text
        return text

    def unit_curve_pen(self, name: str) -> pg.QtGui.QPen:
        return self._curves[name].opts["pen"]

    def scene_pos_of_cell(self, t: int, unit: int) -> QPointF:
        return self._heatmap.scene_pos_of(t, unit)

    def graphics_view(self) -> pg.GraphicsLayoutWidget:
        return self._graphics

    def readout_text(self) -> str:
        return self._readout.text()

    def placeholder_shown(self) -> bool:
        """Whether the placeholder sentence shows instead of the plots (no result)."""
        return self._stack.currentIndex() == 0

    def trace_shown(self) -> bool:
        """Whether the unit's trace is on screen (the panel is tall enough for it)."""
        return self._trace_shown

    def hover_at_scene_pos(self, scene_pos: QPointF) -> None:
        """What the mouse moving over the heatmap does: read out the cell under it."""
        if self._result is None:
            return
        cell = self._heatmap.cell_at(scene_pos)
        if cell is None:
            return
        t, unit = cell
        values, _ = self._values(self._layer)
        self._readout.setText(
            f"t = {t}  {quoted(self._result.text[t])}   unit {unit}:  "
            f"{SYMBOLS[self._layer]} = {values[t, unit]:+.3f}"
        )

    def select_at_scene_pos(self, scene_pos: QPointF) -> bool:
        """What a click does: select the unit under the position, request its time step."""
        cell = self._heatmap.cell_at(scene_pos)
        if cell is None:
            return False
        t, unit = cell
        self.set_unit(unit)
        self.unit_selected.emit(unit)
        self.cursor_requested.emit(t)
        return True

    # -- internals
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._graphics and event.type() == QEvent.Type.Resize:
            self._show_trace(self._plots_height() >= BOTH_PLOTS_MIN_PX)
            if self._result is not None:
                self._fit_titles()
        return False

    def _plots_height(self) -> int:
        return int(self._graphics.height())

    def _show_trace(self, show: bool) -> None:
        if show == self._trace_shown:
            return
        self._trace_shown = show
        if show:
            self._graphics.ci.addItem(self.trace_plot, row=1, col=0)
            self._set_row_stretch()  # an emptied row lost its stretch
        else:
            self._graphics.ci.removeItem(self.trace_plot)
        self.trace_plot.setVisible(show)
        self._show_cell_axis("c" in self._layers)

    def _show_cell_axis(self, cell: bool) -> None:
        """The strip's C_t axis while an LSTM's strip shows."""
        show = cell and self._trace_shown
        if show == self._cell_axis_shown:
            return
        self._cell_axis_shown = show
        self._cell_view.setVisible(show)
        self.cell_axis.setVisible(show)
        self._place_cell_view()

    def _place_cell_view(self) -> None:
        view = self.trace_plot.getViewBox()
        rect = view.sceneBoundingRect()
        self._cell_view.setGeometry(rect)
        self._cell_view.linkedViewChanged(view, self._cell_view.XAxis)
        # the column of the colour bar is empty beside the strip: the axis takes its left part
        width = self.colour_bar.width() - COLUMN_GAP_PX
        self.cell_axis.setGeometry(rect.right() + 1.0, rect.top(), max(width, 1.0), rect.height())

    def _set_row_stretch(self) -> None:
        self._graphics.ci.layout.setRowStretchFactor(0, 3)
        self._graphics.ci.layout.setRowStretchFactor(1, 1)

    def _curve(self, name: str) -> pg.PlotDataItem:
        """The unit's curve of ``name``, made at its first use."""
        curve = self._curves.get(name)
        if curve is None:
            curve = pg.PlotDataItem(pen=self._curve_pen(name, True), **plotting.SMOOTH)
            curve.setSymbolBrush(curve_colour(name))
            curve.setSymbolPen(None)
            curve.setSymbolSize(7)
            (self._cell_view if name == "c" else self.trace_plot).addItem(curve)
            self._curves[name] = curve
        return curve

    @staticmethod
    def _curve_pen(name: str, shown: bool) -> pg.QtGui.QPen:
        width = SHOWN_CURVE_PX if shown else OTHER_CURVE_PX
        return pg.mkPen(curve_colour(name), width=theme.line_width(width))

    def _set_layers(self, layers: tuple[str, ...]) -> None:
        """The selector's entries for a result of a model with ``layers``; a layer the model
        lacks falls back to H_t. Nothing is rebuilt while the model kind stays."""
        if self._layer not in layers:
            self._layer = "h"
        if layers != self._layers:
            self._layers = layers
            self._layer_box.blockSignals(True)
            try:
                self._layer_box.clear()
                for name in layers:
                    self._layer_box.addItem(f"{SYMBOLS[name]}  {ROLES[name]}", name)
            finally:
                self._layer_box.blockSignals(False)
            gated = len(layers) > 1
            self._layer_box.setVisible(gated)
            for name, curve in self._curves.items():
                if name not in layers:
                    curve.hide()
            self._show_cell_axis("c" in layers)
        self._select_entry()

    def _set_depths(self, depths: int) -> None:
        """The layer selector's entries for a model of ``depths`` stacked layers (shown only
        for more than one); the layer shown stays while the model has it."""
        if depths == self._depths:
            return
        self._depths = depths
        if self._depth >= depths:
            self._depth = -1
        fill_layers(self._depth_box, depths, self.depth(), tips=True)

    def depth(self) -> int:
        """The stacked layer shown, from 0 (the bottom one); 0 for a one-layer model."""
        return self._depths - 1 if self._depth < 0 else self._depth

    def set_depth(self, layer: int) -> None:
        """Show stacked layer ``layer`` (0: the bottom one), as the selector does (silent)."""
        self._depth = max(0, min(int(layer), self._depths - 1))
        select_data(self._depth_box, self._depth)
        if self._result is not None:
            self._draw()

    def depth_selector(self) -> QComboBox:
        """The selector of the stacked layer shown: visible only for more than one layer."""
        return self._depth_box

    def _set_bidirectional(self, bidirectional: bool) -> None:
        """The direction selector, shown only for a bidirectional result; the direction chosen
        stays for the next bidirectional one, and a one-direction result shows its one."""
        self._bidirectional = bidirectional
        self._direction_box.setVisible(bidirectional)

    def direction(self) -> str:
        """The direction shown: "forward", or "reverse" (the backward one) of a bidirectional
        result; "forward" for a one-direction one."""
        return self._direction if self._bidirectional else "forward"

    def set_direction(self, direction: str) -> bool:
        """Show ``direction`` ("forward", or "reverse"/"backward"), as the selector does
        (silent). False, and nothing changes, for a direction the result shown has not;
        before any result the choice is kept for the first bidirectional one."""
        value = direction_value(direction)
        if value is None:
            return False
        if self._result is not None and value == "reverse" and not self._bidirectional:
            return False
        self._direction = value
        select_data(self._direction_box, value)
        if self._result is not None:
            self._draw()
        return True

    def direction_selector(self) -> QComboBox:
        """The selector of the direction shown: visible only for a bidirectional result."""
        return self._direction_box

    def _on_direction_chosen(self, index: int) -> None:
        if index >= 0 and self.set_direction(str(self._direction_box.itemData(index))):
            self.direction_chosen.emit(self._direction)

    def _on_depth_chosen(self, index: int) -> None:
        if index >= 0:
            self.set_depth(int(self._depth_box.itemData(index)))
            self.depth_chosen.emit(self._depth)

    def _select_entry(self) -> None:
        """The selector on the layer shown (silent)."""
        if self._layer not in self._layers:
            return
        index = self._layers.index(self._layer)
        if self._layer_box.currentIndex() != index:
            self._layer_box.blockSignals(True)
            self._layer_box.setCurrentIndex(index)
            self._layer_box.blockSignals(False)

    def _choose(self, name: str) -> None:
        self._layer = name
        self._select_entry()
        if self._result is not None:
            self._draw()

    def _values(self, name: str) -> tuple[np.ndarray, tuple[float, float]]:
        """(T, H) values of ``name`` in the result shown, and their fixed colour levels."""
        result = self._result
        assert result is not None
        top = self.depth() == depths_of(result) - 1
        direction: Literal["forward", "reverse"] = (
            "reverse" if self.direction() == "reverse" else "forward"
        )
        if name == "h" and top:
            lo, hi = result.hidden_levels
            return result.hidden_of(direction), (float(lo), float(hi))
        if result.layer_hidden is not None:  # a stacked plain RNN: a lower layer's H_t
            values = result.layer_hidden[self.depth()]
            lo, hi = result.hidden_levels
            if result.activation == "relu":  # unbounded: this layer's own largest value
                from rnnviz.core.probe import nice_ceiling

                finite = values[np.isfinite(values)]
                hi = nice_ceiling(max(float(hi), float(finite.max()) if finite.size else 0.0))
            return values, (float(lo), float(hi))
        assert result.gates is not None
        trace = result.gates.trace(self.depth(), direction)
        if name == "c":
            return trace[name], _symmetric_levels(trace.levels[name])
        lo, hi = trace.levels[name]
        return trace[name], (float(lo), float(hi))

    def _description(self, name: str) -> str:
        result = self._result
        if result is None:
            return ""
        if result.gates is None:
            depths = depths_of(result)
            return "" if depths == 1 else f"hidden state H_t, layer {self.depth() + 1} of {depths}"
        description: str = result.gates.trace(self.depth()).descriptions[name]
        if result.gates.num_layers > 1:
            description += f", layer {self.depth() + 1} of {result.gates.num_layers}"
        if self._bidirectional:
            description += f", {DIRECTION_WORDS[self.direction()]}"
        return description

    def _draw(self) -> None:
        values, levels = self._values(self._layer)
        self._heatmap.show(values.T, levels, theme.activation_colormap(levels))
        symbol = SYMBOLS[self._layer]
        description = self._description(self._layer)
        # the description, where it fits; else the gate's role and symbol; else nothing
        short = f"{ROLES[self._layer]} {symbol}"
        if self._depths > 1:
            short += f", layer {self.depth() + 1}"
        if self._bidirectional:
            short += f", {DIRECTION_WORDS[self.direction()]}"
            # the plain RNN's H_t has no description; its direction is said all the same
            description = (
                description
                or f"{ROLES[self._layer]} {symbol}, " + (DIRECTION_WORDS[self.direction()])
            )
        self._title = (description, short) if description else ()
        self._heatmap.set_bar_label(symbol)
        self._draw_unit()
        self.set_cursor(self._cursor)

    def _fit_titles(self) -> None:
        """The heatmap's title and the strip's legend in their longest form that fits over
        the plots, else none (a title's text sets its plot's minimum width: one too long
        pushed the colour bar out of the panel)."""
        room = self._title_room()
        fits = [room <= 1 or plotting.label_fits(text, room) for text in self._title]
        title = next((t for t, ok in zip(self._title, fits, strict=True) if ok), None)
        _set_title(self.plot_item, None if title is None else html.escape(title), 1.0)
        legend = next(
            (rich for rich, plain in self._legends if room <= 1 or _legend_fits(plain, room)),
            None,
        )
        _set_title(self.trace_plot, legend, LEGEND_SCALE)

    def _title_room(self) -> float:
        """The width of the heatmap's view once laid out, from the fixed widths around it
        (the view's own width grows with a title too long for it)."""
        layout = self._graphics.ci.layout
        left, _, right, _ = layout.getContentsMargins()
        fixed = left + right + COLUMN_GAP_PX + self.colour_bar.width()
        for side in ("left", "right"):
            axis = self.plot_item.getAxis(side)
            if axis.isVisible():
                fixed += axis.width()
        margins = self.plot_item.layout.getContentsMargins()
        fixed += margins[0] + margins[2]
        return float(self._graphics.viewport().width() - fixed)

    def _draw_unit(self) -> None:
        assert self._result is not None
        T, H = self._result.hidden.shape
        unit = min(self._unit, H - 1)
        x = np.arange(T) + 0.5
        gated = len(self._layers) > 1
        # a dot per step while the dots are apart, on the plain RNN's one curve; past that
        # they are a blur, and the scatter item that draws them would be redrawn on every
        # keystroke for nothing
        symbol = "o" if T <= TRACE_DOTS_MAX_STEPS and not gated else None
        lows, highs = [], []
        for name in self._layers:
            values, (lo, hi) = self._values(name)
            if name == "c":
                self._scale_cell(values[:, unit])
            else:
                lows.append(lo)
                highs.append(hi)
            curve = self._curve(name)
            shown = name == self._layer
            if plotting.changed(curve, "emphasis", (shown, theme.line_width(1.0))):
                curve.setPen(self._curve_pen(name, shown))
                curve.setZValue(2 if shown else 1)  # the heatmap's layer on top
            if plotting.changed(curve, "symbol", symbol):
                curve.setSymbol(symbol)
            curve.setData(x, values[:, unit])
            curve.show()
        levels = (min(lows), max(highs))
        if plotting.changed(self.trace_plot, "levels", levels):
            self.trace_plot.setYRange(levels[0], levels[1], padding=0.05)
            plotting.set_level_ticks(self.trace_plot.getAxis("left"), levels)
        if gated:
            plotting.set_axis_label(self.trace_plot, "left", f"unit {unit}")
            self._legends = (self._legend(long=True), self._legend(long=False))
        else:
            plotting.set_axis_label(self.trace_plot, "left", f"{SYMBOLS['h']}[{unit}]")
            self._legends = ()
        self._fit_titles()
        self.unit_box.setRect(0, unit, T, 1)
        self.unit_box.show()

    def _scale_cell(self, cell: np.ndarray) -> None:
        """The C_t axis for one unit's cell: symmetric around 0, to the next 1-2-5 value."""
        finite = np.abs(cell[np.isfinite(cell)])
        top = float(finite.max()) if finite.size else 0.0
        levels = _symmetric_levels((-top, max(top, CELL_AXIS_FLOOR)))
        if plotting.changed(self._cell_view, "levels", levels):
            self._cell_view.setYRange(levels[0], levels[1], padding=0.05)
            plotting.set_level_ticks(self.cell_axis, levels)
            plotting.label_axis(self.cell_axis, SYMBOLS["c"])

    def _legend(self, long: bool) -> tuple[str, str]:
        """The strip's key, one coloured name per curve (the heatmap's in bold), as rich text
        and as the plain text it shows; ``long`` names C_t's axis."""
        rich, plain = [], []
        for name in self._layers:
            symbol = SYMBOLS[name] if long else SYMBOLS[name].removesuffix("_t")
            where = " (right)" if long and name == "c" else ""
            text = f"{LEGEND_LINE} {symbol}{where}"
            plain.append(text)
            shown = html.escape(text).replace(" ", "&nbsp;")
            if name == self._layer:
                shown = f"<b>{shown}</b>"
            rich.append(f'<span style="color: {curve_colour(name)};">{shown}</span>')
        return "&nbsp;&nbsp; ".join(rich), "   ".join(plain)

    def _on_view_resized(self) -> None:
        self._trace_x_ticks.refresh(self.plot_item.getViewBox().boundingRect().width())
        if self._result is not None:
            self._fit_titles()

    def _on_layer_chosen(self, index: int) -> None:
        if 0 <= index < len(self._layers):
            self._choose(self._layers[index])

    def _on_scene_clicked(self, event: object) -> None:
        if self._result is None or event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        if self.select_at_scene_pos(event.scenePos()):  # type: ignore[attr-defined]
            event.accept()  # type: ignore[attr-defined]

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        self.hover_at_scene_pos(scene_pos)
