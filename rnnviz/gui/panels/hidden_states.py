"""The hidden-states panel: a heatmap of H_t (units × time steps) and one unit's trace.

The panel draws a ``core.probe.ProbeResult``; it computes nothing from the model. Plot items
are created once in ``__init__`` and updated with ``setImage`` / ``setData``; the heatmap has
fixed colour levels, so the same activation has the same colour in every probe while
training goes on. Every method runs in the GUI thread; ``set_cursor`` / ``set_unit`` never
emit, so wiring panels to each other cannot loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QGraphicsRectItem, QHBoxLayout, QVBoxLayout, QWidget

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

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# the trace marks each step with a dot up to this many steps
TRACE_DOTS_MAX_STEPS = 60
# below this height of the plots' area only the heatmap shows (two plots in less were two
# strips of axes about 25 px tall, on a 1920x1080 screen at QT_SCALE_FACTOR=2)
BOTH_PLOTS_MIN_PX = 240


class HiddenStatesPanel(QWidget):
    """Heatmap of the hidden state H_t: units (rows) × time steps (columns), fixed levels.

    Clicking a cell selects its unit (``unit_selected``) and asks to move the time cursor
    there (``cursor_requested``); the selected unit's trace over t is drawn below.
    For an LSTM a check box shows the cell state C_t instead.
    """

    unit_selected = Signal(int)
    export_failed = Signal(str)  # a plot's context-menu export failed (why)
    cursor_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._unit = 0
        self._show_cell = False

        self._readout = readout_label()
        self._cell_check = QCheckBox("show C_t (LSTM cell state)")
        self._cell_check.setFont(theme.font())
        self._cell_check.hide()
        top = QHBoxLayout()
        top.addWidget(self._readout, 1)
        top.addWidget(self._cell_check)
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
        self.trace_curve = pg.PlotDataItem(
            pen=pg.mkPen(theme.run_colour(0), width=3),
            symbol="o",
            symbolSize=7,
            symbolBrush=theme.run_colour(0),
            symbolPen=None,
            **plotting.SMOOTH,
        )
        self.trace_plot.addItem(self.trace_curve)
        self.trace_plot.addItem(
            pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen(theme.MUTED, width=1))
        )
        self.trace_cursor_line = pg.InfiniteLine(
            pos=0.5, angle=90, movable=False, pen=pg.mkPen(theme.colours().cursor, width=2)
        )
        self.trace_plot.addItem(self.trace_cursor_line)
        plotting.style_plot(self.trace_plot, left="H_t[0]", bottom=("time step t (character)", "t"))
        # the same left-axis width keeps the trace's steps under the heatmap's columns
        for plot in (self.plot_item, self.trace_plot):
            plot.getAxis("left").setWidth(theme.LEFT_AXIS_WIDTH)
        self._trace_x_ticks = plotting.TickSource(
            self.trace_plot.getAxis("bottom"), *plotting.STEP_TICK_PX, numbers_when_crowded=True
        )
        self._set_row_stretch()
        self._trace_shown = True
        self._graphics.installEventFilter(self)

        scene = self._graphics.scene()
        scene.sigMouseClicked.connect(self._on_scene_clicked)
        scene.sigMouseMoved.connect(self._on_scene_mouse_moved)
        self.plot_item.getViewBox().sigResized.connect(self._on_view_resized)
        self._cell_check.toggled.connect(self._on_cell_check_toggled)
        plotting.cache_axes(self._graphics)
        self.set_result(None)

    # -- public API
    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self._heatmap.clear()
            self.trace_curve.setData([], [])
            self.unit_box.hide()
            self._cell_check.hide()
            self._readout.setText("")
            self._stack.setCurrentIndex(0)
            return
        has_cell = result.cell is not None
        self._cell_check.setVisible(has_cell)
        if not has_cell:
            self._show_cell = False
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

    def displayed_array(self) -> np.ndarray | None:
        """What the heatmap draws: hidden.T (H, T) (or cell.T), None when cleared."""
        image: np.ndarray | None = self.image_item.image
        return image

    def displayed_levels(self) -> tuple[float, float]:
        levels = self.image_item.getLevels()
        return float(levels[0]), float(levels[1])

    def trace_data(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.trace_curve.getData()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)

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

    def cell_state_check(self) -> QCheckBox:
        """The "show C_t" check box: visible only for a result with a cell state (an LSTM)."""
        return self._cell_check

    def hover_at_scene_pos(self, scene_pos: QPointF) -> None:
        """What the mouse moving over the heatmap does: read out the cell under it."""
        if self._result is None:
            return
        cell = self._heatmap.cell_at(scene_pos)
        if cell is None:
            return
        t, unit = cell
        values, _, name = self._shown()
        self._readout.setText(
            f"t = {t}  {quoted(self._result.text[t])}   unit {unit}:  "
            f"{name} = {values[t, unit]:+.3f}"
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

    def _set_row_stretch(self) -> None:
        self._graphics.ci.layout.setRowStretchFactor(0, 3)
        self._graphics.ci.layout.setRowStretchFactor(1, 1)

    def _shown(self) -> tuple[np.ndarray, tuple[float, float], str]:
        assert self._result is not None
        if self._show_cell and self._result.cell is not None:
            return self._result.cell, theme.CELL_STATE_LEVELS, "C_t"
        lo, hi = self._result.hidden_levels
        return self._result.hidden, (float(lo), float(hi)), "H_t"

    def _draw(self) -> None:
        values, levels, name = self._shown()
        self._heatmap.show(values.T, levels, theme.activation_colormap(levels))
        self._heatmap.set_bar_label(name)
        self.trace_plot.setYRange(levels[0], levels[1], padding=0.05)
        plotting.set_level_ticks(self.trace_plot.getAxis("left"), levels)
        self._draw_unit()
        self.set_cursor(self._cursor)

    def _draw_unit(self) -> None:
        values, _, name = self._shown()
        T, H = values.shape
        unit = min(self._unit, H - 1)
        # a dot per step while the dots are apart; past that they are a blur, and the
        # scatter item that draws them would be redrawn on every keystroke for nothing
        symbol = "o" if T <= TRACE_DOTS_MAX_STEPS else None
        if plotting.changed(self.trace_curve, "symbol", symbol):
            self.trace_curve.setSymbol(symbol)
        self.trace_curve.setData(np.arange(T) + 0.5, values[:, unit])
        plotting.set_axis_label(self.trace_plot, "left", f"{name}[{unit}]")
        self.unit_box.setRect(0, unit, T, 1)
        self.unit_box.show()

    def _on_view_resized(self) -> None:
        self._trace_x_ticks.refresh(self.plot_item.getViewBox().boundingRect().width())

    def _on_cell_check_toggled(self, checked: bool) -> None:
        self._show_cell = checked
        if self._result is not None:
            self._draw()

    def _on_scene_clicked(self, event: object) -> None:
        if self._result is None or event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        if self.select_at_scene_pos(event.scenePos()):  # type: ignore[attr-defined]
            event.accept()  # type: ignore[attr-defined]

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        self.hover_at_scene_pos(scene_pos)
