"""The drawing of the unrolled network (d2l fig. 9.4.1 and 9.4.2), painted from a probe result.

A module of helpers, not a panel: ``unrolled`` imports it. One widget paints every column with
QPainter, only the columns in the exposed rectangle, so a long text costs one widget.

Rows, top to bottom as the book draws them (inputs at the bottom, the loss at the top)::

    MLP      the top prediction with the recurrence cut, coloured by the loss it adds
             (only when compared)
    target   the next character and the step's loss -ln p(target)   (none at the last step)
    O_t      the most likely next character and its probability
    H_t      a strip of the hidden state's units, coloured as the hidden-state heatmap
    C_t      the LSTM's cell state, the same way
    X_t      the character read and its one-hot index

Arrows X_t -> H_t, H_{t-1} -> H_t and H_t -> O_t; those into the cursor step are highlighted,
and while the panel plays through time the part of the step being computed is lit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontInfo,
    QFontMetrics,
    QHelpEvent,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QToolTip, QWidget

from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import clamp
from rnnviz.gui.panels._unrolled_text import node_lines, node_tooltip

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# the hidden-state strips take the height the view has left, within these bounds (px)
STRIP_PX = (40, 200)
GAP_PX = 22  # between two rows: room for an arrow
MAX_ZOOM = 2.5
# a picture too big for its view may shrink while its smallest text stays this high (px):
# lecture mode's floor, so a lecture's large fonts give the whole picture before a scroll
# bar, and a desk's usual ones barely shrink
MIN_TEXT_PX = 16
TOP_PX = 6


@dataclass(frozen=True)
class Phase:
    """One part of a time step's computation, lit in order while playing through time."""

    name: str  # what the caption says, in the book's notation
    lit: frozenset[str]  # what is drawn lit: rows ("input", "hidden", ...) and arrows


def _phase(name: str, *lit: str) -> Phase:
    return Phase(name, frozenset(lit))


# the steps of the language model slide, for the scratch RNN; gated models read their
# gates where the RNN adds its two products (their own pictures are the gates issue's)
RNN_PHASES = (
    _phase("Xₜ W_xh: the character read, through the input weights", "input", "x_arrow"),
    _phase("Hₜ₋₁ W_hh: the state before, through the recurrent weights", "h_arrow", "prev"),
    _phase("+ b_h: the two products and the bias, summed", "x_arrow", "h_arrow", "hidden"),
    _phase("Hₜ = φ(Xₜ W_xh + Hₜ₋₁ W_hh + b_h)", "hidden"),
    _phase("Oₜ = Hₜ W_hq + b_q: the output layer", "o_arrow", "output"),
    _phase("softmax(Oₜ): a probability for every next character", "output"),
    _phase("loss −ln p(target): how surprised the model was", "target"),
)
GATED_PHASES = (
    _phase("Xₜ: the character read", "input", "x_arrow"),
    _phase("Hₜ₋₁ (and Cₜ₋₁): the state before", "h_arrow", "prev"),
    _phase("the gates mix Xₜ and Hₜ₋₁ into Hₜ", "x_arrow", "h_arrow", "hidden", "cell"),
    _phase("Oₜ = Hₜ W_hq + b_q: the output layer", "o_arrow", "output"),
    _phase("softmax(Oₜ): a probability for every next character", "output"),
    _phase("loss −ln p(target): how surprised the model was", "target"),
)


def phases_for(kind: str) -> tuple[Phase, ...]:
    return GATED_PHASES if kind in ("gru", "lstm") else RNN_PHASES


def _row_names(result: ProbeResult | None, with_mlp: bool) -> tuple[str, ...]:
    # the MLP's row on top: its predictions come from X_t alone, not from H_t below
    rows = ["mlp"] if with_mlp else []
    rows += ["target", "output", "hidden"]
    if result is not None and result.cell is not None:
        rows.append("cell")
    rows.append("input")
    return tuple(rows)


# (name, the line under it)
ROW_LABELS = {
    "target": ("target", "loss ℓ"),
    "output": ("Oₜ", "top p"),
    "mlp": ("MLP", "Hₜ₋₁ = 0"),
    "hidden": ("Hₜ", ""),
    "cell": ("Cₜ", ""),
    "input": ("Xₜ", "index"),
}


class UnrolledCanvas(QWidget):
    """The unrolled network, one column a time step. ``step_clicked`` reports a click on a
    column; everything set from outside is silent."""

    step_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._unit = -1
        self._phase: Phase | None = None
        self._with_mlp = False
        self._view = (0, 0)  # the size it is seen at (the scroll area's viewport)
        self._zoom = 1.0
        # row -> an (H x T) image, one column a step; made at the first paint of a result,
        # so a result set while the panel is behind a tab costs nothing
        self._images: dict[str, QImage] | None = None
        self._set_fonts()
        self.setMouseTracking(False)
        self._relayout()

    def _set_fonts(self) -> None:
        self._big = theme.font(1.5, bold=True)
        self._small = theme.font(1.0)
        self._label_font = theme.font(1.1, bold=True)

    def rezoom(self) -> None:
        """The fonts at the new zoom (``gui.rescale``); the drawing is laid out again."""
        self._set_fonts()
        self._relayout()
        self.update()

    def fonts(self) -> tuple[QFont, ...]:
        """The fonts it paints with, at the size they are painted (times the zoom; the
        lecture-mode size test reads them)."""
        out = []
        for font in (self._big, self._small, self._label_font):
            shown = QFont(font)
            shown.setPointSizeF(font.pointSizeF() * self._zoom)
            out.append(shown)
        return tuple(out)

    # -- set from outside (silent)
    def set_result(self, result: ProbeResult | None) -> None:
        before = self._shape()
        self._result = result
        self._images = None
        self._cursor = clamp(self._cursor, 0 if result is None else len(result.text))
        if self._shape() != before:  # the same length and rows: the same size
            self._relayout()
        self.update()

    def _shape(self) -> tuple[int, bool]:
        r = self._result
        return (0, False) if r is None else (len(r.text), r.cell is not None)

    def set_cursor(self, t: int) -> None:
        n = 0 if self._result is None else len(self._result.text)
        t = clamp(t, n)
        if t != self._cursor:
            self._cursor = t
            self.update()

    def set_unit(self, unit: int) -> None:
        if unit != self._unit:
            self._unit = unit
            self.update()

    def set_phase(self, phase: Phase | None) -> None:
        self._phase = phase
        self.update()

    def set_view_size(self, width: int, height: int) -> None:
        """Fit the picture to the size the canvas is seen at: the strips take the height left,
        a short text's columns widen (up to 2.5 times), so the whole picture shows without
        scrolling where it can, as large as it can."""
        if (width, height) != self._view:
            self._view = (width, height)
            self._relayout()
            self.update()

    def set_mlp_shown(self, shown: bool) -> None:
        if shown != self._with_mlp:
            self._with_mlp = shown
            self._relayout()
            self.update()

    # -- read (tests, the panel)
    def rows(self) -> tuple[str, ...]:
        return _row_names(self._result, self._with_mlp)

    def column_width(self) -> int:
        metrics = QFontMetrics(self._small)
        least = max(72, metrics.horizontalAdvance("no next") + 20)
        n = 0 if self._result is None else len(self._result.text)
        room = int(self._view[0] / self._zoom - self.label_width() - 8) // max(n, 1)
        return max(least, min(room, int(2.5 * least)))

    def label_width(self) -> int:
        return (
            max(
                QFontMetrics(self._label_font).horizontalAdvance("target"),
                QFontMetrics(self._small).horizontalAdvance("Hₜ₋₁ = 0"),
            )
            + 24
        )

    def zoom(self) -> float:
        """How much larger than at the base font size the picture is drawn (fitted to the view:
        a short text on a projector fills the screen, in letters read from the back)."""
        return self._zoom

    def column_rect(self, t: int) -> QRect:
        """Step ``t``'s column, in the widget's pixels."""
        return self._scaled(self._column(t))

    def node_rect(self, row: str, t: int) -> QRect:
        """A node's box, in the widget's pixels."""
        return self._scaled(self._node(row, t))

    def _scaled(self, rect: QRect) -> QRect:
        z = self._zoom
        return QRect(
            round(rect.x() * z),
            round(rect.y() * z),
            round(rect.width() * z),
            round(rect.height() * z),
        )

    def _column(self, t: int) -> QRect:
        w = self.column_width()
        return QRect(self.label_width() + t * w, 0, w, int(self.height() / self._zoom) + 1)

    def _node(self, row: str, t: int) -> QRect:
        top, height = self._row_spans()[row]
        col = self._column(t)
        if row in ("hidden", "cell"):
            width = max(16, col.width() // 3)
            return QRect(col.center().x() - width // 2, top, width, height)
        return QRect(col.left() + 6, top, col.width() - 12, height)

    def node_at(self, pos: QPoint) -> tuple[str, int] | None:
        if self._result is None:
            return None
        pos = QPoint(int(pos.x() / self._zoom), int(pos.y() / self._zoom))
        t = (pos.x() - self.label_width()) // self.column_width()
        if pos.x() < self.label_width() or not 0 <= t < len(self._result.text):
            return None
        for row in self.rows():
            if self._node(row, t).adjusted(-6, -4, 6, 4).contains(pos):
                return (row, t)
        return None

    def node_lines(self, row: str, t: int) -> tuple[str, ...]:
        """What the node ``row`` of step ``t`` says in its box (the values of the probe)."""
        return node_lines(self._result, row, t)

    def node_tooltip(self, row: str, t: int) -> str:
        """The numbers of one node, as the hover shows them."""
        return node_tooltip(self._result, row, t, self._unit)

    # -- Qt
    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.minimumSizeHint()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        width, height = self._logical_size()
        return QSize(round(width * self._zoom), round(height * self._zoom))

    def _logical_size(self) -> tuple[int, int]:
        n = 0 if self._result is None else len(self._result.text)
        bottom = max(top + h for top, h in self._row_spans().values()) + TOP_PX
        return self.label_width() + max(n, 1) * self.column_width() + 8, bottom

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            assert isinstance(event, QHelpEvent)
            node = self.node_at(event.pos())
            if node is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.node_tooltip(*node), self)
            return True
        return super().event(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._result is None or event.button() != Qt.MouseButton.LeftButton:
            return
        x = event.position().x() / self._zoom
        t = int(x - self.label_width()) // self.column_width()
        if x >= self.label_width() and 0 <= t < len(self._result.text):
            self.step_clicked.emit(t)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        scheme = theme.colours()
        painter.fillRect(event.rect(), QColor(scheme.plot_background))
        r = self._result
        if r is None:
            painter.end()
            return
        if self._images is None:
            self._images = self._strip_images(r)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.scale(self._zoom, self._zoom)
        w = self.column_width()
        left, right = event.rect().left() / self._zoom, event.rect().right() / self._zoom
        first = max(0, int(left - self.label_width()) // w - 1)
        last = min(len(r.text), int(right - self.label_width()) // w + 2)
        cursor_col = self._column(self._cursor)
        tint = QColor(scheme.cursor)
        tint.setAlpha(28)
        painter.fillRect(cursor_col, tint)
        for t in range(first, last):
            self._paint_column(painter, t, scheme)
        self._paint_labels(painter, scheme)
        painter.end()

    # -- drawing
    def _relayout(self) -> None:
        self._zoom = self._fitting_zoom()
        self.setMinimumSize(self.minimumSizeHint())
        self.updateGeometry()

    def _row_spans(self) -> dict[str, tuple[int, int]]:
        """Each row's (top, height) in pixels."""
        line = self._line_height()
        rows = self.rows()
        strips = sum(row in ("hidden", "cell") for row in rows)
        fixed = (len(rows) - strips) * line + (len(rows) - 1) * GAP_PX + 2 * TOP_PX
        room = int(self._view[1] / self._zoom - fixed) // max(strips, 1)
        strip = max(STRIP_PX[0], line, min(STRIP_PX[1], room))
        spans: dict[str, tuple[int, int]] = {}
        y = TOP_PX
        for row in self.rows():
            height = strip if row in ("hidden", "cell") else line
            spans[row] = (y, height)
            y += height + GAP_PX
        return spans

    def _fitting_zoom(self) -> float:
        """The largest zoom (up to MAX_ZOOM) at which the picture at its least (the narrowest
        columns, the shortest strips) fits the view; below 1 only as far as its smallest
        text stays MIN_TEXT_PX high (beyond, the view scrolls)."""
        self._zoom, view = 1.0, self._view
        self._view = (0, 0)  # the least size
        least_w, least_h = self._logical_size()
        self._view = view
        if view[0] <= 0 or view[1] <= 0:
            return 1.0
        smallest = min(QFontInfo(f).pixelSize() for f in (self._big, self._small))
        lowest = min(1.0, MIN_TEXT_PX / max(smallest, 1))
        return max(lowest, min(MAX_ZOOM, view[0] / least_w, view[1] / least_h))

    def _line_height(self) -> int:
        """A node with text: the character and a number under it."""
        return QFontMetrics(self._big).height() + QFontMetrics(self._small).height() + 5

    def _strip_images(self, r: ProbeResult) -> dict[str, QImage]:
        levels = r.hidden_levels
        images = {"hidden": _image(r.hidden, theme.activation_colormap(levels), levels)}
        if r.cell is not None:
            images["cell"] = _image(r.cell, theme.DIVERGING, theme.CELL_STATE_LEVELS)
        return images

    def _lit(self, part: str, t: int) -> bool:
        if self._phase is None:
            return False
        if part == "prev":
            return t == self._cursor - 1 and "prev" in self._phase.lit
        return t == self._cursor and part in self._phase.lit

    def _paint_column(self, painter: QPainter, t: int, scheme: theme.Colours) -> None:
        r = self._result
        assert r is not None
        rows = self.rows()
        images = self._images or {}
        at_cursor = t == self._cursor
        for row in rows:
            rect = self._node(row, t)
            lit = self._lit(row, t) or (row == "hidden" and self._lit("prev", t + 1))
            image = images.get(row)
            if image is not None:
                painter.drawImage(rect, image, QRect(t, 0, 1, r.hidden.shape[1]))
                self._paint_unit_mark(painter, rect, r.hidden.shape[1])
                painter.setBrush(Qt.BrushStyle.NoBrush)
            else:
                painter.setBrush(self._fill(row, t, scheme))
            colour = QColor(theme.HIGHLIGHT if lit else (scheme.ink if at_cursor else theme.MUTED))
            width = 4 if lit else (2 if at_cursor else 1)
            painter.setPen(QPen(colour, theme.line_width(width)))
            painter.drawRoundedRect(rect, 4, 4)
            if image is None:
                self._paint_node_text(painter, rect, self.node_lines(row, t), row, t, scheme)
        # the arrows of the step: X_t -> H_t (through C_t), H_t -> O_t, and
        # H_{t-1} -> H_t
        hidden = self._node("hidden", t)
        below = self._node("cell" if "cell" in rows else "hidden", t)
        self._arrow(
            painter, self._node("input", t).top(), below.bottom(), t, "x_arrow", hidden, scheme
        )
        self._arrow(
            painter,
            hidden.top(),
            self._node("output", t).bottom(),
            t,
            "o_arrow",
            hidden,
            scheme,
        )
        self._recurrent_arrow(painter, t, hidden, scheme)

    def _fill(self, row: str, t: int, scheme: theme.Colours) -> QColor:
        r = self._result
        assert r is not None
        if row == "target" and t + 1 < len(r.text):
            bits = float(r.surprisal_bits[t])
            return theme.map_colours(
                theme.SURPRISAL, np.array([bits]), (0.0, theme.SURPRISAL_MAX_BITS)
            )[0]
        if row == "mlp" and t + 1 < len(r.text):
            # red where cutting the recurrence hurt (the MLP's loss is higher), blue where it
            # helped: the diverging map, one nat to either end
            saved = float(r.no_recurrence.step_loss[t] - r.step_loss[t])
            return theme.map_colours(theme.DIVERGING, np.array([saved]), (-2.0, 2.0))[0]
        return QColor(scheme.plot_background)

    def _paint_node_text(
        self,
        painter: QPainter,
        rect: QRect,
        lines: tuple[str, ...],
        row: str,
        t: int,
        scheme: theme.Colours,
    ) -> None:
        if not lines:
            return
        fill = self._fill(row, t, scheme)
        ink = (
            theme.text_colour_on(fill)
            if row in ("target", "mlp") and t + 1 < len(self._result.text)  # type: ignore[union-attr]
            else QColor(scheme.ink)
        )
        r = self._result
        assert r is not None
        if row == "input" and t in r.unknown:
            ink = QColor(theme.UNKNOWN)
        big_h = QFontMetrics(self._big).height()
        painter.setPen(ink)
        painter.setFont(self._big)
        painter.drawText(
            QRect(rect.left(), rect.top() + 2, rect.width(), big_h),
            Qt.AlignmentFlag.AlignCenter,
            lines[0],
        )
        painter.setFont(self._small)
        painter.drawText(
            QRect(rect.left(), rect.top() + 1 + big_h, rect.width(), rect.height() - big_h - 1),
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
            lines[1],
        )

    def _paint_unit_mark(self, painter: QPainter, rect: QRect, units: int) -> None:
        if not 0 <= self._unit < units:
            return
        y = rect.top() + (self._unit + 0.5) * rect.height() / units
        painter.setPen(QPen(QColor(theme.HIGHLIGHT), 2))
        painter.drawLine(QPointF(rect.right() + 2, y), QPointF(rect.right() + 8, y))

    def _arrow_pen(self, t: int, part: str, scheme: theme.Colours) -> QPen:
        if self._lit(part, t):
            return QPen(QColor(theme.HIGHLIGHT), theme.line_width(4))
        if t == self._cursor:
            return QPen(QColor(theme.HIGHLIGHT), theme.line_width(2.5))
        return QPen(QColor(scheme.secondary_ink), theme.line_width(1.5))

    def _arrow(
        self,
        painter: QPainter,
        y_from: int,
        y_to: int,
        t: int,
        part: str,
        hidden: QRect,
        scheme: theme.Colours,
    ) -> None:
        x = hidden.center().x()
        pen = self._arrow_pen(t, part, scheme)
        _draw_arrow(painter, QPointF(x, y_from - 1), QPointF(x, y_to + 2), pen)

    def _recurrent_arrow(
        self, painter: QPainter, t: int, hidden: QRect, scheme: theme.Colours
    ) -> None:
        y = hidden.center().y()
        pen = self._arrow_pen(t, "h_arrow", scheme)
        if t == 0:
            # H_{-1} = 0: a probe starts from a zero state
            start = QPointF(self._column(0).left() + 4, y)
            painter.setFont(self._small)
            painter.setPen(QColor(scheme.secondary_ink))
            painter.drawText(
                QRect(int(start.x()), int(y) - 24, 24, 20), Qt.AlignmentFlag.AlignCenter, "0"
            )
        else:
            start = QPointF(self._node("hidden", t - 1).right() + 10, y)
        _draw_arrow(painter, start, QPointF(hidden.left() - 2, y), pen)

    def _paint_labels(self, painter: QPainter, scheme: theme.Colours) -> None:
        width = self.label_width()
        height = int(self.height() / self._zoom) + 1
        painter.fillRect(QRect(0, 0, width, height), QColor(scheme.plot_background))
        left = Qt.AlignmentFlag.AlignLeft
        big_h = QFontMetrics(self._label_font).height()
        for row, (top, height) in self._row_spans().items():
            name, under = ROW_LABELS[row]
            middle = (
                top + (height - big_h - (QFontMetrics(self._small).height() if under else 0)) // 2
            )
            painter.setFont(self._label_font)
            painter.setPen(QColor(scheme.ink))
            painter.drawText(QRect(4, middle, width - 8, big_h), left, name)
            if under:
                painter.setFont(self._small)
                painter.setPen(QColor(scheme.secondary_ink))
                painter.drawText(
                    QRect(4, middle + big_h, width - 8, height),
                    left | Qt.AlignmentFlag.AlignTop,
                    under,
                )


def _image(values: np.ndarray, cmap: pg.ColorMap, levels: tuple[float, float]) -> QImage:
    """(T, H) values -> an H-high, T-wide image in the hidden-state heatmap's colours."""
    lo, hi = levels
    span = hi - lo if hi > lo else 1.0
    position = np.clip((np.nan_to_num(values.T, nan=lo) - lo) / span, 0.0, 1.0)
    rgba = np.ascontiguousarray(cmap.map(position.ravel(), mode="byte").reshape(*position.shape, 4))
    height, width = position.shape
    image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: ``rgba`` goes away


def _draw_arrow(painter: QPainter, start: QPointF, end: QPointF, pen: QPen) -> None:
    painter.setPen(pen)
    painter.drawLine(start, end)
    dx, dy = end.x() - start.x(), end.y() - start.y()
    length = math.hypot(dx, dy)
    if length < 1:
        return
    ux, uy = dx / length, dy / length
    size = 6 + pen.widthF()
    left = QPointF(end.x() - size * ux + size * 0.5 * uy, end.y() - size * uy - size * 0.5 * ux)
    right = QPointF(end.x() - size * ux - size * 0.5 * uy, end.y() - size * uy + size * 0.5 * ux)
    painter.setBrush(pen.color())
    painter.setPen(QPen(pen.color(), 1))
    painter.drawPolygon(QPolygonF([end, left, right]))
    painter.setBrush(Qt.BrushStyle.NoBrush)
