"""What the probe panels share: how they quote a character, clamp a time step, and draw a heatmap.

A module of helpers, not a panel: ``probe_text``, ``time_cursor``, ``hidden_states`` and
``softmax`` import it, and none of them imports another.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QStackedWidget, QWidget

from rnnviz.gui import plotting, theme, widgets

PLACEHOLDER = "type a string to probe"


def quoted(char: str) -> str:
    """A character as the panels write it in prose: ``'e'``, ``'␣'``."""
    return f"'{theme.display_char(char)}'"


def clamp(value: int, length: int) -> int:
    """``value`` limited to the time steps ``0 .. length-1`` (0 for an empty string)."""
    return min(max(value, 0), max(length - 1, 0))


def slider_style() -> str:
    """The time cursor's and the timeline's slider, drawn in the scheme's colours: the style's
    own groove vanished on a dark palette (Adwaita-dark, --scheme dark), leaving a lone handle
    at the left end."""
    scheme = theme.colours()
    return (
        f"QSlider::groove:horizontal {{ height: 6px; background: {scheme.missing};"
        " border-radius: 3px; }"
        f"QSlider::sub-page:horizontal {{ background: {scheme.secondary_ink};"
        " border-radius: 3px; }"
        f"QSlider::handle:horizontal {{ background: {scheme.ink}; width: 16px;"
        " margin: -6px 0; border-radius: 8px; }"
    )


def _placeholder_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setFont(theme.font(1.3))
    label.setStyleSheet(f"color: {theme.colours().placeholder_ink};")
    return label


def readout_label() -> widgets.SteadyLabel:
    # its text changes with every probe and cursor move: it must not re-lay out the window
    label = widgets.SteadyLabel(wrap=True)
    label.label().setFont(theme.font(1.1))
    return label


def graphics_with_placeholder(
    parent: QWidget, placeholder: str
) -> tuple[QStackedWidget, pg.GraphicsLayoutWidget]:
    """A stack: page 0 a placeholder sentence, page 1 the plots (shown once there is data)."""
    stack = QStackedWidget(parent)
    stack.addWidget(_placeholder_label(placeholder))
    graphics = pg.GraphicsLayoutWidget()
    graphics.setBackground(theme.colours().plot_background)
    stack.addWidget(graphics)
    return stack, graphics


class Heatmap:
    """A plot with one row-major ImageItem over cells [0, cols) × [0, rows), row 0 at the top,
    a fixed-level colour bar beside it, a cursor line and tick labels at cell centres."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        row: int,
        *,
        cmap: pg.ColorMap,
        levels: tuple[float, float],
        bar_label: str | tuple[str, str],
        left: str | tuple[str, str],
        bottom: str | tuple[str, str],
    ) -> None:
        """Labels are a name, or a name and the short name shown where the name does not fit
        (see ``plotting.label_axis``)."""
        bar_name, bar_short = bar_label if isinstance(bar_label, tuple) else (bar_label, None)
        self.plot: pg.PlotItem = layout.addPlot(row=row, col=0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.plot.invertY(True)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.levels = levels
        self._shape = (0, 0)  # (rows, time steps) of the array shown
        self.bar = pg.ColorBarItem(
            values=levels,
            colorMap=cmap,
            label=bar_name,
            interactive=False,
            colorMapMenu=False,
            width=18,
        )
        self.bar.setImageItem(self.image)
        layout.addItem(self.bar, row=row, col=1)
        self.cursor_line = pg.InfiniteLine(
            pos=0.5, angle=90, movable=False, pen=pg.mkPen(theme.colours().cursor, width=3)
        )
        self.cursor_line.setZValue(10)
        self.plot.addItem(self.cursor_line)
        # NaN cells (a diverged model) are transparent in the image: this grey shows through,
        # so a missing value never reads as the colour of 0
        self.missing_rect = QGraphicsRectItem(0.0, 0.0, 0.0, 0.0)
        self.missing_rect.setBrush(pg.mkBrush(theme.colours().missing))
        self.missing_rect.setPen(pg.mkPen(None))
        self.missing_rect.setZValue(-20)
        self.plot.addItem(self.missing_rect)
        plotting.style_plot(self.plot, left=left, bottom=bottom)
        plotting.style_colour_bar(self.bar, bar_name, bar_short)
        self.x_ticks = plotting.TickSource(
            self.plot.getAxis("bottom"), *plotting.STEP_TICK_PX, numbers_when_crowded=True
        )
        self.y_ticks = plotting.TickSource(self.plot.getAxis("left"), theme.BASE_POINT_SIZE * 1.9)
        self.plot.getViewBox().sigResized.connect(self._on_view_resized)

    def show(self, array: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> None:
        """Draw ``array`` (rows, cols) with fixed ``levels``."""
        if cmap is not self.bar.colorMap():
            self.bar.setColorMap(cmap)
        if levels != self.levels:
            self.levels = levels
            plotting.set_colour_bar_levels(self.bar, levels)
        self.image.setImage(np.ascontiguousarray(array), levels=levels, autoLevels=False)
        rows, cols = array.shape
        self.missing_rect.setRect(0.0, 0.0, float(cols), float(rows))
        self._shape = (rows, cols)
        self._on_view_resized()

    def clear(self) -> None:
        self._shape = (0, 0)
        self.image.clear()
        self.missing_rect.setRect(0.0, 0.0, 0.0, 0.0)

    def set_bar_label(self, text: str, short: str | None = None) -> None:
        plotting.style_colour_bar(self.bar, text, short)

    def set_cursor(self, t: int) -> None:
        self.cursor_line.setPos(t + 0.5)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(col, row) of the cell under a scene position, or None outside the image."""
        image = self.image.image
        if image is None or not self.plot.getViewBox().sceneBoundingRect().contains(scene_pos):
            return None
        p = self.image.mapFromScene(scene_pos)
        col, row = math.floor(p.x()), math.floor(p.y())
        rows, cols = image.shape[:2]
        if 0 <= row < rows and 0 <= col < cols:
            return col, row
        return None

    def scene_pos_of(self, col: int, row: int) -> QPointF:
        """The scene position of the centre of cell (col, row)."""
        scene_pos: QPointF = self.image.mapToScene(QPointF(col + 0.5, row + 0.5))
        return scene_pos

    def _on_view_resized(self) -> None:
        rect = self.plot.getViewBox().boundingRect()
        rows, cols = self._shape
        if cols:  # the time axis's span depends on how many characters fit its width
            span = plotting.time_span(cols, rect.width())
            if plotting.changed(self.plot, "span", (span, rows)):
                self.plot.setRange(xRange=(0, span), yRange=(0, rows), padding=0)
        self.x_ticks.refresh(rect.width())
        self.y_ticks.refresh(rect.height())
