"""Recolour a built window in place when the colour scheme changes (View ▸ Colours, or the
desktop switching between light and dark while the window is open).

Widgets take the scheme's colours when they are built (``theme.colours``), as they take their
fonts (``rescale``); rebuilding the panels would lose what they show and every connection the
window made to them. So a switch walks what is built and gives each colour of the old scheme
its twin in the new one (``theme.twin_colours``: the scheme's colours and the shades derived
from them, each with exactly one twin):

- style sheets, and the colours in a label's rich text (a legend's ``<span style=...>``);
- pyqtgraph's plot backgrounds, axes (line, tick labels, name), titles and text items, and
  the pens and brushes of curves, markers, bars, lines and shapes;
- a widget that bakes colours into something else (an image's missing cells, an icon) has
  ``recolour()``: it redraws it from ``theme.colours``, already the new scheme.

What paints itself reads ``theme.colours`` at each paint and only needs the repaint asked
here. The application palette is the caller's (``theme.apply_app_palette``).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QAbstractGraphicsShapeItem, QLabel, QWidget

from rnnviz.gui import plotting, theme

_HEX = re.compile(r"#[0-9A-Fa-f]{6}\b")


def recolour(root: QWidget, old: theme.Colours, new: theme.Colours) -> None:
    """Give every colour of scheme ``old`` under ``root`` its twin in ``new``."""
    twins = theme.twin_colours(old, new)
    plotting.configure_pyqtgraph()  # what is built from now on (a compare run's curves)
    widgets = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        sheet = widget.styleSheet()
        if sheet:
            mapped = map_text(sheet, twins)
            if mapped != sheet:
                widget.setStyleSheet(mapped)
        if isinstance(widget, QLabel):
            _recolour_label(widget, twins)
        if isinstance(widget, pg.GraphicsView):
            _recolour_view(widget, twins)
    for widget in widgets:
        hook = getattr(widget, "recolour", None)
        if callable(hook):
            hook()
        widget.update()


def _recolour_label(label: QLabel, twins: dict[str, str]) -> None:
    # A plain-text label has no colours in its text; a rich one may name them.
    if label.textFormat() == Qt.TextFormat.PlainText or "#" not in label.text():
        return
    mapped = map_text(label.text(), twins)
    if mapped != label.text():
        label.setText(mapped)


def map_text(text: str, twins: dict[str, str]) -> str:
    """``text`` with each ``#rrggbb`` that has a twin replaced by it."""
    return _HEX.sub(lambda m: twins.get(m.group(0).lower(), m.group(0)), text)


def twin(colour: QColor, twins: dict[str, str]) -> QColor | None:
    """The twin of ``colour`` (its alpha kept), or None if it has none."""
    name = twins.get(colour.name())
    if name is None:
        return None
    out = QColor(name)
    out.setAlpha(colour.alpha())
    return out


def _pen(spec: Any, twins: dict[str, str]) -> QPen | None:
    return None if spec is None else _tinted(pg.mkPen(spec), Qt.PenStyle.NoPen, twins)


def _brush(spec: Any, twins: dict[str, str]) -> QBrush | None:
    return None if spec is None else _tinted(pg.mkBrush(spec), Qt.BrushStyle.NoBrush, twins)


_Tool = TypeVar("_Tool", QPen, QBrush)


def _tinted(tool: _Tool, invisible: object, twins: dict[str, str]) -> _Tool | None:
    """``tool`` in its colour's twin; None if it draws nothing or its colour has no twin."""
    if tool.style() == invisible:
        return None
    colour = twin(tool.color(), twins)
    if colour is None:
        return None
    tool.setColor(colour)
    return tool


def _recolour_view(view: pg.GraphicsView, twins: dict[str, str]) -> None:
    background = twin(view.backgroundBrush().color(), twins)
    if background is not None:
        view.setBackground(background)
    scene = view.scene()
    if scene is None:
        return
    for item in scene.items():
        _recolour_item(item, twins)


def _recolour_item(item: Any, twins: dict[str, str]) -> None:  # noqa: C901 - one case per kind
    if isinstance(item, pg.AxisItem):
        if (pen := _pen(item.pen(), twins)) is not None:
            item.setPen(pen)
        if (pen := _pen(item.textPen(), twins)) is not None:
            item.setTextPen(pen)
        colour = item.labelStyle.get("color")
        if isinstance(colour, str) and (new := twins.get(QColor(colour).name())) is not None:
            item.labelStyle["color"] = new
            item._updateLabel()  # noqa: SLF001 - pyqtgraph's own refresh after labelStyle
    elif isinstance(item, pg.TextItem):  # an InfiniteLine's label too
        if (colour := twin(QColor(item.color), twins)) is not None:
            item.setColor(colour)
    elif isinstance(item, pg.LabelItem):
        colour = item.opts.get("color")
        text = map_text(item.text, twins)
        new = twins.get(QColor(colour).name()) if colour is not None else None
        if new is not None or text != item.text:
            item.setText(text, color=new or colour)
    elif isinstance(item, pg.PlotDataItem):
        opts = item.opts
        if (pen := _pen(opts.get("pen"), twins)) is not None:
            item.setPen(pen)
        if (pen := _pen(opts.get("symbolPen"), twins)) is not None:
            item.setSymbolPen(pen)
        if (brush := _brush(opts.get("symbolBrush"), twins)) is not None:
            item.setSymbolBrush(brush)
    elif isinstance(item, pg.PlotCurveItem | pg.ScatterPlotItem):
        if isinstance(item.parentItem(), pg.PlotDataItem):
            return  # its PlotDataItem's pens
        if (pen := _pen(item.opts.get("pen"), twins)) is not None:
            item.setPen(pen)
        if (brush := _brush(item.opts.get("brush"), twins)) is not None:
            item.setBrush(brush)
    elif isinstance(item, pg.InfiniteLine):
        if (pen := _pen(item.pen, twins)) is not None:
            item.setPen(pen)
    elif isinstance(item, pg.BarGraphItem):
        changes = {}
        for key, make in (("pen", _pen), ("brush", _brush)):
            if (value := make(item.opts.get(key), twins)) is not None:
                changes[key] = value
        if changes:
            item.setOpts(**changes)
    elif isinstance(item, QAbstractGraphicsShapeItem):
        if (pen := _pen(item.pen(), twins)) is not None:
            item.setPen(pen)
        if (brush := _brush(item.brush(), twins)) is not None:
            item.setBrush(brush)
