"""Rescale a built window's text and lines in place, as a browser zooms (Ctrl+= / Ctrl+−).

Widgets take their fonts and pens when they are built (``theme.font`` reads the zoom then), so
a zoom change walks what is built and multiplies each size by the change's ratio:

- every widget with a font of its own (``WA_SetFont``); the rest inherit the application
  font, which the caller sets (menus, dock titles, buttons);
- a fixed height or width (a strip as high as one line of its font);
- pyqtgraph's axes (tick font, label size, the fixed width reserved for tick labels), text
  items, and the pens of curves and lines (``line_ratio``: lecture mode draws them thicker);
- a widget that paints text with fonts it keeps, or sizes itself from them, has
  ``rezoom()``: it rebuilds them from ``theme.font`` (the zoom is already the new one).

Why not ``QT_SCALE_FACTOR``: it is read once at start, and it scales every pixel, so a
1280×720 projector becomes a 640×360 window that no layout fits (the first-use issue).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QWidget

from rnnviz.gui import plotting

QWIDGETSIZE_MAX = (1 << 24) - 1
_POINTS = re.compile(r"([0-9.]+)pt")


def scaled_font(font: QFont, ratio: float) -> QFont:
    out = QFont(font)
    if font.pointSizeF() > 0:
        out.setPointSizeF(font.pointSizeF() * ratio)
    elif font.pixelSize() > 0:
        out.setPixelSize(max(1, round(font.pixelSize() * ratio)))
    return out


def rescale(root: QWidget, font_ratio: float, line_ratio: float) -> None:
    """Multiply every font and fixed size under ``root`` by ``font_ratio`` and every plotted
    line's width by ``line_ratio``. The application font is the caller's to set (the
    widgets without a font of their own follow it)."""
    widgets = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        rezoom = getattr(widget, "rezoom", None)
        if callable(rezoom):
            continue  # after its fonts: see below
        if font_ratio != 1.0:
            _rescale_widget(widget, font_ratio)
    for widget in widgets:
        if isinstance(widget, pg.GraphicsView):
            _rescale_scene(widget, font_ratio, line_ratio)
    for widget in widgets:
        rezoom = getattr(widget, "rezoom", None)
        if callable(rezoom):
            if font_ratio != 1.0 and widget.testAttribute(Qt.WidgetAttribute.WA_SetFont):
                widget.setFont(scaled_font(widget.font(), font_ratio))
            rezoom()


def _rescale_widget(widget: QWidget, ratio: float) -> None:
    if widget.testAttribute(Qt.WidgetAttribute.WA_SetFont):
        widget.setFont(scaled_font(widget.font(), ratio))
    low, high = widget.minimumHeight(), widget.maximumHeight()
    if 0 < low == high < QWIDGETSIZE_MAX:
        widget.setFixedHeight(round(low * ratio))
    low, high = widget.minimumWidth(), widget.maximumWidth()
    if 0 < low == high < QWIDGETSIZE_MAX:
        widget.setFixedWidth(round(low * ratio))


def _items(view: pg.GraphicsView) -> Iterator[object]:
    scene = view.scene()
    return iter(scene.items()) if scene is not None else iter(())


def _rescale_scene(view: pg.GraphicsView, font_ratio: float, line_ratio: float) -> None:
    for item in _items(view):
        if isinstance(item, pg.AxisItem):
            if font_ratio != 1.0:
                _rescale_axis(item, font_ratio)
            if line_ratio != 1.0:
                item.setPen(_scaled_pen(item.pen(), line_ratio))
        elif isinstance(item, pg.TextItem) and font_ratio != 1.0:
            item.setFont(scaled_font(item.textItem.font(), font_ratio))
        elif isinstance(item, pg.LabelItem) and font_ratio != 1.0:
            size = item.opts.get("size")
            if isinstance(size, str) and _POINTS.fullmatch(size):
                points = float(size[:-2]) * font_ratio
                item.setText(item.text, size=f"{points:.1f}pt")
        elif line_ratio != 1.0:
            _rescale_pen(item, line_ratio)


def _rescale_axis(axis: pg.AxisItem, ratio: float) -> None:
    tick_font = axis.style.get("tickFont")
    if isinstance(tick_font, QFont):
        axis.setTickFont(scaled_font(tick_font, ratio))
    height = axis.style.get("tickTextHeight")
    if isinstance(height, (int, float)) and not axis.style.get("autoExpandTextSpace", True):
        axis.setStyle(tickTextHeight=round(height * ratio))
    size = axis.labelStyle.get("font-size")
    if isinstance(size, str) and _POINTS.fullmatch(size):
        axis.labelStyle["font-size"] = f"{float(size[:-2]) * ratio:.1f}pt"
        axis._updateLabel()  # noqa: SLF001 - pyqtgraph's own refresh after labelStyle
    plotting.refit_axis_label(axis)  # a larger name may no longer fit beside the axis
    if axis.orientation in ("left", "right") and axis.fixedWidth is not None:
        axis.setWidth(round(axis.fixedWidth * ratio))
    elif axis.orientation in ("top", "bottom") and axis.fixedHeight is not None:
        axis.setHeight(round(axis.fixedHeight * ratio))


def _scaled_pen(pen: object, ratio: float) -> object:
    out = pg.mkPen(pen)
    out.setWidthF(max(out.widthF(), 1.0) * ratio)
    return out


def _rescale_pen(item: Any, ratio: float) -> None:
    own_curve = isinstance(item, pg.PlotCurveItem) and not isinstance(
        item.parentItem(), pg.PlotDataItem
    )  # a PlotDataItem's curve follows its pen
    if isinstance(item, pg.PlotDataItem) or own_curve:
        pen = item.opts.get("pen")
        if pen is not None:
            item.setPen(_scaled_pen(pen, ratio))
    elif isinstance(item, pg.InfiniteLine):
        item.setPen(_scaled_pen(item.pen, ratio))
